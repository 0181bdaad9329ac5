//! The connection timeline: a bounded log of notable events with their time,
//! for a "what happened to my connection" panel.

use std::collections::VecDeque;
use std::fmt;

use super::{FailureReason, MessageId, Millis, Transport};

/// Refused frames of one kind arriving within this long of the first one of
/// their burst are counted in that burst's entry instead of logged anew.
pub(crate) const BURST_WINDOW: Millis = 10_000;

/// One line of the connection timeline: what happened, and when (the core's
/// clock, `Date.now()` in the browser).
///
/// ```
/// use heartline::core::{TimelineEntry, TimelineEvent};
/// let entry = TimelineEntry { at: 1_000, event: TimelineEvent::Reconnecting { attempt: 3, delay: 1_200 } };
/// assert_eq!(entry.event.to_string(), "reconnecting in 1.2 s (attempt 3)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When it happened (for a burst of refused frames: its first frame).
    pub at: Millis,
    /// What happened.
    pub event: TimelineEvent,
}

/// Kinds of inbound frames the core refuses (see
/// [`TimelineEvent::FramesRefused`]).
///
/// ```
/// use heartline::core::RefusedKind;
/// assert_eq!(RefusedKind::Oversized.to_string(), "oversized");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusedKind {
    /// Text frames that are not JSON.
    Malformed,
    /// JSON without a string `socketType`.
    MissingType,
    /// A `socketType` nobody handles.
    UnknownType,
    /// Frames over `max_frame_bytes`.
    Oversized,
    /// Binary frames (the protocol is text only).
    Binary,
}

impl RefusedKind {
    pub(crate) const COUNT: usize = 5;

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RefusedKind {
    /// A word for a log line.
    ///
    /// ```
    /// assert_eq!(heartline::core::RefusedKind::UnknownType.to_string(), "unknown-type");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusedKind::Malformed => "malformed",
            RefusedKind::MissingType => "untyped",
            RefusedKind::UnknownType => "unknown-type",
            RefusedKind::Oversized => "oversized",
            RefusedKind::Binary => "binary",
        })
    }
}

/// How a link (or an attempt at one) ended, in a
/// [`TimelineEvent::Lost`] entry.
///
/// ```
/// use heartline::core::LinkLoss;
/// let loss = LinkLoss::Closed { code: 1006, reason: String::new() };
/// assert_eq!(loss.to_string(), "closed (1006)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkLoss {
    /// The socket closed (by the server or the network).
    Closed {
        /// The close code (1006: abnormal, no close frame).
        code: u16,
        /// The close reason, often empty.
        reason: String,
    },
    /// The socket reported an error.
    Error,
    /// An attempt did not open within `connect_timeout`.
    ConnectTimeout,
}

impl fmt::Display for LinkLoss {
    /// Part of a log line.
    ///
    /// ```
    /// use heartline::core::LinkLoss;
    /// assert_eq!(LinkLoss::ConnectTimeout.to_string(), "connect timeout");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkLoss::Closed { code, reason } if reason.is_empty() => write!(f, "closed ({code})"),
            LinkLoss::Closed { code, reason } => write!(f, "closed ({code}: {reason})"),
            LinkLoss::Error => f.write_str("socket error"),
            LinkLoss::ConnectTimeout => f.write_str("connect timeout"),
        }
    }
}

/// A notable event of the connection, as logged in its timeline.
///
/// ```
/// use heartline::core::TimelineEvent;
/// assert_eq!(
///     TimelineEvent::HeartbeatLost { silent_for: 14_000 }.to_string(),
///     "heartbeat lost: no frame for 14 s"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimelineEvent {
    /// A connection attempt started.
    Connecting {
        /// Attempt number since the last healthy connection, from 1.
        attempt: u32,
    },
    /// The socket opened.
    Open {
        /// It replaced a lost connection.
        reconnect: bool,
    },
    /// The link (or the attempt) was lost.
    Lost {
        /// How.
        cause: LinkLoss,
    },
    /// The heartbeat declared a silent link dead and closed it.
    HeartbeatLost {
        /// How long nothing had arrived, ms.
        silent_for: Millis,
    },
    /// A reconnect is scheduled.
    Reconnecting {
        /// The attempt it will be.
        attempt: u32,
        /// The wait before it, ms.
        delay: Millis,
    },
    /// The browser is offline: retries pause.
    Offline,
    /// Closed by the app.
    Closed,
    /// The core gave up.
    Failed {
        /// Why.
        reason: FailureReason,
    },
    /// The open link became slow (`on`) or recovered.
    Degraded {
        /// Degraded now.
        on: bool,
    },
    /// Inbound frames were refused: one entry per kind per burst, whose
    /// count keeps growing while the burst lasts.
    FramesRefused {
        /// What was wrong with them.
        kind: RefusedKind,
        /// How many, so far.
        count: u64,
    },
    /// The server refused one of our messages (final).
    MessageRefused {
        /// The message.
        id: MessageId,
        /// The server's error code.
        code: String,
    },
    /// The server refused frames as `rate_limited`; the outbox paused.
    /// Refusals in a burst share one entry.
    RateLimited {
        /// The server's retry hint (the longest in the burst), ms.
        retry_after: Millis,
        /// Refusals, so far.
        count: u64,
    },
    /// Messages that waited for the link (a backlog after an outage, or a
    /// restored outbox) were all acknowledged.
    OutboxDrained {
        /// Messages acknowledged since the backlog formed.
        messages: u64,
    },
    /// After a failed attempt or a lost link, the next attempt goes to
    /// another server (see [`Endpoints`](super::Endpoints)).
    ///
    /// ```
    /// use heartline::core::TimelineEvent;
    /// let event = TimelineEvent::Failover { url: "wss://b.example/ws".into(), index: 1, of: 2 };
    /// assert_eq!(event.to_string(), "switching to wss://b.example/ws (server 2 of 2)");
    /// ```
    Failover {
        /// The URL the next attempt opens.
        url: String,
        /// Its position in the list, from 0.
        index: usize,
        /// How many URLs the list has.
        of: usize,
    },
    /// A link opened on another transport than the last one (or the first
    /// link is long-polling).
    ///
    /// ```
    /// use heartline::core::{TimelineEvent, Transport};
    /// let event = TimelineEvent::Transport { transport: Transport::LongPoll };
    /// assert_eq!(event.to_string(), "on long-polling");
    /// ```
    Transport {
        /// The transport now in use.
        transport: Transport,
    },
    /// A WebSocket probe opened while long-polling: the poll session is
    /// closed and a WebSocket opened in its place.
    ///
    /// ```
    /// use heartline::core::TimelineEvent;
    /// assert_eq!(TimelineEvent::Upgrading.to_string(), "WebSocket works again: switching back");
    /// ```
    Upgrading,
}

/// `1.2 s`, `14 s`, `250 ms`.
fn duration(ms: Millis) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1_000) || ms >= 10_000 {
        format!("{} s", (ms + 500) / 1_000)
    } else {
        // Integer arithmetic: no float formatting code in the wasm.
        let tenths = (ms + 50) / 100;
        format!("{}.{} s", tenths / 10, tenths % 10)
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl fmt::Display for TimelineEvent {
    /// One human-readable line.
    ///
    /// ```
    /// use heartline::core::{RefusedKind, TimelineEvent};
    /// let flood = TimelineEvent::FramesRefused { kind: RefusedKind::Malformed, count: 1_000 };
    /// assert_eq!(flood.to_string(), "refused 1000 malformed frames");
    /// assert_eq!(TimelineEvent::OutboxDrained { messages: 1 }.to_string(), "outbox drained (1 message)");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimelineEvent::Connecting { attempt: 1 } => f.write_str("connecting"),
            TimelineEvent::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            TimelineEvent::Open { reconnect: false } => f.write_str("connected"),
            TimelineEvent::Open { reconnect: true } => f.write_str("reconnected"),
            TimelineEvent::Lost { cause } => write!(f, "connection lost: {cause}"),
            TimelineEvent::HeartbeatLost { silent_for } => {
                write!(f, "heartbeat lost: no frame for {}", duration(*silent_for))
            }
            TimelineEvent::Reconnecting { attempt, delay } => write!(
                f,
                "reconnecting in {} (attempt {attempt})",
                duration(*delay)
            ),
            TimelineEvent::Offline => f.write_str("offline: waiting for the network"),
            TimelineEvent::Closed => f.write_str("closed by the app"),
            TimelineEvent::Failed { reason } => write!(f, "gave up: {reason}"),
            TimelineEvent::Degraded { on: true } => f.write_str("link degraded"),
            TimelineEvent::Degraded { on: false } => f.write_str("link recovered"),
            // Frames of a type nobody handles are kept for `last`, not
            // dropped: say so rather than "refused".
            TimelineEvent::FramesRefused {
                kind: RefusedKind::UnknownType,
                count,
            } => write!(
                f,
                "{} no handler",
                plural(*count, "frame of a type with", "frames of types with")
            ),
            TimelineEvent::FramesRefused { kind, count } => {
                write!(
                    f,
                    "refused {}",
                    plural(*count, &format!("{kind} frame"), &format!("{kind} frames"))
                )
            }
            TimelineEvent::MessageRefused { id, code } => {
                write!(f, "server refused message {id}: {code}")
            }
            TimelineEvent::RateLimited { retry_after, count } => write!(
                f,
                "rate limited ({}), retrying after {}",
                plural(*count, "refusal", "refusals"),
                duration(*retry_after)
            ),
            TimelineEvent::OutboxDrained { messages } => write!(
                f,
                "outbox drained ({})",
                plural(*messages, "message", "messages")
            ),
            TimelineEvent::Failover { url, index, of } => {
                write!(f, "switching to {url} (server {} of {of})", index + 1)
            }
            TimelineEvent::Transport { transport } => write!(f, "on {transport}"),
            TimelineEvent::Upgrading => f.write_str("WebSocket works again: switching back"),
        }
    }
}

/// Burst bookkeeping: which entry (by sequence number) a kind's burst counts
/// into, and when the burst began.
#[derive(Debug, Clone, Copy)]
struct Burst {
    seq: u64,
    started: Millis,
}

/// The bounded log kept by the connection.
#[derive(Debug)]
pub(crate) struct Timeline {
    entries: VecDeque<TimelineEntry>,
    limit: usize,
    /// Entries ever logged: the sequence number of the next one.
    logged: u64,
    refused: [Option<Burst>; RefusedKind::COUNT],
    rate_limited: Option<Burst>,
}

impl Timeline {
    pub(crate) fn new(limit: usize) -> Self {
        Timeline {
            entries: VecDeque::new(),
            limit,
            logged: 0,
            refused: [None; RefusedKind::COUNT],
            rate_limited: None,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.trim();
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &TimelineEntry> {
        self.entries.iter()
    }

    pub(crate) fn logged(&self) -> u64 {
        self.logged
    }

    pub(crate) fn push(&mut self, at: Millis, event: TimelineEvent) -> u64 {
        let seq = self.logged;
        self.logged += 1;
        self.entries.push_back(TimelineEntry { at, event });
        self.trim();
        seq
    }

    fn trim(&mut self) {
        while self.entries.len() > self.limit {
            self.entries.pop_front();
        }
    }

    /// The entry with sequence number `seq`, if still kept.
    fn get_mut(&mut self, seq: u64) -> Option<&mut TimelineEntry> {
        let first = self.logged - self.entries.len() as u64;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get_mut(index)
    }

    /// Counts a refused frame: into the open burst of its kind, or a new
    /// entry.
    pub(crate) fn refused(&mut self, now: Millis, kind: RefusedKind) {
        let slot = kind.index();
        if let Some(burst) = self.refused[slot]
            && now.saturating_sub(burst.started) < BURST_WINDOW
            && let Some(TimelineEntry {
                event: TimelineEvent::FramesRefused { count, .. },
                ..
            }) = self.get_mut(burst.seq)
        {
            *count += 1;
            return;
        }
        let seq = self.push(now, TimelineEvent::FramesRefused { kind, count: 1 });
        self.refused[slot] = Some(Burst { seq, started: now });
    }

    /// Counts a `rate_limited` refusal, like [`Self::refused`].
    pub(crate) fn rate_limited(&mut self, now: Millis, wait: Millis) {
        if let Some(burst) = self.rate_limited
            && now.saturating_sub(burst.started) < BURST_WINDOW
            && let Some(TimelineEntry {
                event: TimelineEvent::RateLimited { count, retry_after },
                ..
            }) = self.get_mut(burst.seq)
        {
            *count += 1;
            *retry_after = (*retry_after).max(wait);
            return;
        }
        let seq = self.push(
            now,
            TimelineEvent::RateLimited {
                retry_after: wait,
                count: 1,
            },
        );
        self.rate_limited = Some(Burst { seq, started: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(1_200), "1.2 s");
        assert_eq!(duration(14_000), "14 s");
        assert_eq!(duration(14_400), "14 s");
    }

    #[test]
    fn bursts_share_an_entry_until_the_window_ends() {
        let mut t = Timeline::new(10);
        for i in 0..100 {
            t.refused(i, RefusedKind::Malformed);
        }
        t.refused(50, RefusedKind::Binary);
        assert_eq!(t.entries().count(), 2);
        t.refused(BURST_WINDOW + 1, RefusedKind::Malformed);
        assert_eq!(t.entries().count(), 3);
        let first = t.entries().next().map(|e| e.event.clone());
        assert_eq!(
            first,
            Some(TimelineEvent::FramesRefused {
                kind: RefusedKind::Malformed,
                count: 100
            })
        );
    }

    #[test]
    fn an_evicted_burst_entry_starts_a_new_one() {
        let mut t = Timeline::new(1);
        t.refused(0, RefusedKind::Malformed);
        t.push(1, TimelineEvent::Offline);
        t.refused(2, RefusedKind::Malformed);
        assert_eq!(t.entries().count(), 1);
        assert_eq!(t.logged(), 3);
    }
}
