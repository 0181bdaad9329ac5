//! The connection state machine: events in, actions out.

use std::fmt;

use serde_json::{Map, Value};

use super::backoff::{Backoff, SplitMix64};
use super::heartbeat::Heartbeat;
use super::outbox::Outbox;
use super::pacer::Pacer;
use super::streams::Streams;
use super::timeline::Timeline;
use super::{
    Config, ConnectionStatus, DeliveryState, Endpoints, FailureReason, Inbound, MessageId, Millis,
    Registry, Report, SocketId, Stats, TimelineEntry, TimelineEvent, Transport,
};

mod api;
mod events;
mod fallback;
mod heartbeat;
mod lifecycle;
mod outbox_flow;
mod streams;

/// A timer fired this much after its time is treated as throttled: the
/// verdict it would bring is re-checked instead of trusted.
const LATE_TIMER_SLACK: Millis = 1_000;
/// How often the socket's send buffer is re-checked while it holds bytes.
const FLUSH_POLL: Millis = 100;
/// The drain pause after a `rate_limited` refusal that gave no hint.
const DEFAULT_RETRY_AFTER: Millis = 1_000;
/// The `error` code of a frame the server did not handle because the
/// connection is over its rate: send it again after `retry_after_ms`.
const RATE_LIMITED: &str = "rate_limited";

/// The core's timers; at most one of each kind is pending.
///
/// ```
/// use heartline::core::TimerKind;
/// assert_eq!(TimerKind::ALL.len(), 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// The next reconnect attempt.
    Reconnect,
    /// Abandon a socket that has not opened.
    ConnectTimeout,
    /// Check for silence and send a ping.
    Heartbeat,
    /// The wait for a pong (or any frame) after a ping.
    PongTimeout,
    /// Re-check the socket's send buffer: armed after writes while the
    /// core's estimate of `bufferedAmount` is above zero. A driver that can
    /// read the real value reports [`Event::BufferedAmount`] instead of
    /// firing it (and the core arms it again until the buffer drains).
    Flush,
    /// The earliest time-to-live of a queued message.
    Ttl,
    /// The earliest stream gap to give up on.
    StreamGap,
    /// The outbox may write again: the pacing bucket has a token, or the
    /// pause after a `rate_limited` refusal is over.
    Pace,
    /// While on long-polling: the next WebSocket probe, or the deadline of
    /// the one running.
    Probe,
}

impl TimerKind {
    /// Every kind, e.g. to cancel all of a driver's timers.
    ///
    /// ```
    /// use heartline::core::TimerKind;
    /// assert!(TimerKind::ALL.contains(&TimerKind::PongTimeout));
    /// ```
    pub const ALL: [TimerKind; 9] = [
        TimerKind::Reconnect,
        TimerKind::ConnectTimeout,
        TimerKind::Heartbeat,
        TimerKind::PongTimeout,
        TimerKind::Flush,
        TimerKind::Ttl,
        TimerKind::StreamGap,
        TimerKind::Pace,
        TimerKind::Probe,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The payload of a received frame.
///
/// ```
/// use heartline::core::FrameData;
/// assert_eq!(FrameData::Text("ping".into()).len(), 4);
/// assert_eq!(FrameData::Binary(10).len(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameData {
    /// A text frame.
    Text(String),
    /// A binary frame of this many bytes (the protocol is text only, so its
    /// content is not needed).
    Binary(usize),
}

impl FrameData {
    /// Size in bytes.
    ///
    /// ```
    /// assert_eq!(heartline::core::FrameData::Text("é".into()).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            FrameData::Text(text) => text.len(),
            FrameData::Binary(len) => *len,
        }
    }

    /// True for an empty frame.
    ///
    /// ```
    /// assert!(heartline::core::FrameData::Binary(0).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What happened, as the driver saw it. Socket events carry the
/// [`SocketId`] the core chose in [`Action::Open`]; events of any other
/// socket are ignored.
///
/// ```
/// use heartline::core::{Event, SocketId, FrameData};
/// let event = Event::Frame { socket: SocketId(1), data: FrameData::Text("{}".into()) };
/// assert!(matches!(event, Event::Frame { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connect (from idle, closed or failed), to
    /// [`Connection::endpoint`] (or the driver's own URL when it gave the
    /// core none).
    Start,
    /// The socket's `open` event.
    Opened {
        /// The socket.
        socket: SocketId,
    },
    /// The socket's `message` event.
    Frame {
        /// The socket.
        socket: SocketId,
        /// What arrived.
        data: FrameData,
    },
    /// The socket's `close` event.
    Closed {
        /// The socket.
        socket: SocketId,
        /// Close code (1006 for an abnormal close).
        code: u16,
        /// Close reason.
        reason: String,
        /// `CloseEvent.wasClean`.
        was_clean: bool,
    },
    /// The socket's `error` event. With the following `close` it schedules
    /// one reconnect, not two.
    Error {
        /// The socket.
        socket: SocketId,
    },
    /// A timer set by [`Action::SetTimer`] fired.
    TimerFired(TimerKind),
    /// The socket's real `bufferedAmount`, reported after each batch of
    /// [`Action::SendFrame`]s and in place of a [`TimerKind::Flush`] fire;
    /// while it is above zero the core asks to poll again.
    BufferedAmount {
        /// The socket.
        socket: SocketId,
        /// Bytes queued by the browser, not yet on the wire.
        bytes: u64,
    },
    /// The browser's `online` event.
    Online,
    /// The browser's `offline` event.
    Offline,
    /// The page became visible.
    Visible,
    /// The page was hidden.
    Hidden,
    /// The user asked to reconnect now (skip the wait, or start afresh after
    /// giving up).
    RetryNow,
    /// The app closes the connection on purpose: no reconnect.
    Stop,
    /// The browser cannot create a WebSocket at all: with the
    /// [fallback](crate::core::FallbackConfig) on, every attempt uses
    /// long-polling; otherwise the connection fails.
    Unsupported,
    /// The probe socket of [`Action::Probe`] opened (and was closed by the
    /// driver): WebSocket works again.
    ProbeOpened {
        /// The probe.
        probe: SocketId,
    },
    /// The probe socket erred or closed before it opened.
    ProbeFailed {
        /// The probe.
        probe: SocketId,
    },
}

/// What the driver must do, in order.
///
/// ```
/// use heartline::core::{Action, SocketId, Transport};
/// let action = Action::Open { socket: SocketId(1), transport: Transport::WebSocket };
/// assert!(matches!(action, Action::Open { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a new link to the URL and report its events with `socket`.
    /// The URL is [`Connection::endpoint`] (read it when carrying out this
    /// action), or the driver's own when it gave the core none.
    /// Any earlier socket has been closed by a preceding [`Action::Close`].
    Open {
        /// The id to tag its events with.
        socket: SocketId,
        /// A WebSocket, or a long-poll session at the URL's
        /// [poll base](crate::core::poll::poll_base).
        transport: Transport,
    },
    /// Open a WebSocket to [`Connection::endpoint`] only to see whether the
    /// upgrade works (while the live link is long-polling): close it as
    /// soon as it opens and report [`Event::ProbeOpened`], or
    /// [`Event::ProbeFailed`] if it fails first. Nothing is sent on it.
    Probe {
        /// The id to tag its report with.
        probe: SocketId,
    },
    /// Close the probe socket if it is still there, and forget it.
    EndProbe {
        /// The probe.
        probe: SocketId,
    },
    /// Write a text frame.
    SendFrame {
        /// The socket.
        socket: SocketId,
        /// The frame.
        text: String,
    },
    /// Close the socket and forget it (its later events are ignored).
    Close {
        /// The socket.
        socket: SocketId,
        /// 1000 or 4000-range.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Fire [`Event::TimerFired`]`(kind)` at `at`, replacing any pending
    /// timer of that kind.
    SetTimer {
        /// Which timer.
        kind: TimerKind,
        /// When (same clock as the events).
        at: Millis,
    },
    /// Forget the pending timer of this kind.
    CancelTimer(TimerKind),
    /// A server message for the handlers of its type
    /// (`Registry::dispatch`).
    Deliver(Inbound),
    /// The status changed; re-render the banner.
    StatusChanged(ConnectionStatus),
    /// A reliable message moved.
    MessageState {
        /// Its id.
        id: MessageId,
        /// Where it is now.
        state: DeliveryState,
    },
    /// A diagnostic for logs and stats.
    Report(Report),
}

/// Options of a reliable send.
///
/// ```
/// use heartline::core::SendOptions;
/// let options = SendOptions { ttl: Some(30_000) };
/// assert_eq!(SendOptions::default().ttl, None);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Time-to-live overriding [`Config::default_ttl`].
    pub ttl: Option<Millis>,
}

/// Why a message was not accepted.
///
/// ```
/// use heartline::core::SendError;
/// assert_eq!(SendError::QueueFull { limit: 5 }.to_string(), "the outbox is full (5 messages)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The message is not a JSON object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// The object has no string `socketType`.
    #[error("a message needs a string socketType")]
    MissingSocketType,
    /// The frame would exceed `max_frame_bytes`.
    #[error("the message is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Frame size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The outbox holds `outbox_limit` messages already.
    #[error("the outbox is full ({limit} messages)")]
    QueueFull {
        /// The limit.
        limit: usize,
    },
    /// The app stopped the connection; `Start` it first.
    #[error("the connection was closed by the app")]
    Closed,
    /// A volatile message needs an open link.
    #[error("not connected")]
    NotOpen,
    /// A volatile message while the socket's buffer is over the high-water
    /// mark.
    #[error("the connection is congested")]
    Congested,
    /// A volatile message over the pace the server announced (or while the
    /// server refuses frames as `rate_limited`); a token is there again
    /// after `retry_in` ms.
    #[error("over the server's rate limit; retry in {retry_in} ms")]
    RateLimited {
        /// Wait until a frame may be written again.
        retry_in: Millis,
    },
}

/// Why a cancel did nothing.
///
/// ```
/// use heartline::core::CancelError;
/// assert_eq!(CancelError::NotFound.to_string(), "no such message in the outbox");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// Not in the outbox (acked, failed, or never sent).
    #[error("no such message in the outbox")]
    NotFound,
    /// Already written on the live socket; the server may handle it.
    #[error("the message is already on its way")]
    InFlight,
}

/// Why an exported outbox was not restored (nothing was restored).
///
/// ```
/// use heartline::core::{Config, Connection, RestoreError};
/// let mut conn = Connection::new(Config::default(), 1);
/// assert!(matches!(conn.restore_outbox(0, "nope"), Err(RestoreError::Json(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Not the export format.
    #[error("not an exported outbox: {0}")]
    Json(String),
    /// Written by an incompatible version.
    #[error("unsupported outbox version {0}")]
    Version(u32),
    /// A message is not a JSON object with a string `socketType`.
    #[error("message {0} is not a valid frame")]
    InvalidMessage(MessageId),
    /// The outbox cannot hold them all.
    #[error("the outbox cannot take {needed} more messages (limit {limit})")]
    QueueFull {
        /// Messages that would be added.
        needed: usize,
        /// The limit.
        limit: usize,
    },
}

/// Builds the greeting sent first on every open; called afresh for each
/// attempt so an expired token is never reused. `None` sends no greeting.
///
/// ```
/// use heartline::core::GreetingProvider;
/// use serde_json::json;
/// let token = std::rc::Rc::new(std::cell::RefCell::new(Some("t-1".to_owned())));
/// let current = token.clone();
/// let mut provider: GreetingProvider =
///     Box::new(move || Some(json!({"socketType":"hello","name":"ada","token":current.borrow().clone()})));
/// assert_eq!(provider().unwrap()["token"], "t-1");
/// *token.borrow_mut() = Some("t-2".into()); // refreshed: the next attempt uses it
/// assert_eq!(provider().unwrap()["token"], "t-2");
/// ```
pub type GreetingProvider = Box<dyn FnMut() -> Option<Value>>;

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    Connecting {
        socket: SocketId,
        attempt: u32,
        started_at: Millis,
    },
    Open {
        socket: SocketId,
        opened_at: Millis,
    },
    /// Waiting for the reconnect timer.
    Waiting {
        attempt: u32,
        at: Millis,
    },
    Offline,
    Closed,
    Failed(FailureReason),
}

/// How a link was lost.
#[derive(Debug)]
enum Loss {
    Closed { code: u16, reason: String },
    Error,
    ConnectTimeout,
    HeartbeatLost,
}

#[derive(Debug, Clone)]
struct Standing {
    key: String,
    value: Value,
    resume_stream: Option<String>,
}

/// The sans-IO connection: feed it [`Event`]s with the current time, carry
/// out the [`Action`]s it returns. See the [module docs](super) for the
/// driver contract.
///
/// ```
/// use heartline::core::{Action, Config, Connection, Event};
/// let mut conn = Connection::new(Config::default(), 42);
/// let actions = conn.handle(0, Event::Start);
/// let Some(Action::Open { socket, .. }) = actions.first().cloned() else { panic!() };
/// let actions = conn.handle(5, Event::Opened { socket });
/// assert!(conn.status().is_open());
/// # let _ = actions;
/// ```
pub struct Connection {
    config: Config,
    /// The server URLs and the one in use.
    endpoints: Endpoints,
    phase: Phase,
    next_socket: u64,
    /// Failed attempts since the last healthy connection.
    failures: u32,
    ever_opened: bool,
    online: bool,
    backoff: Backoff,
    rng: SplitMix64,
    id_prefix: String,
    next_message: u64,
    outbox: Outbox,
    standing: Vec<Standing>,
    streams: Streams,
    heartbeat: Heartbeat,
    timers: [Option<Millis>; TimerKind::ALL.len()],
    /// Estimate of the browser's `bufferedAmount`: grows with each write,
    /// corrected by `BufferedAmount` events.
    buffered: u64,
    /// Pacing under the server's `limits`, once announced.
    pacer: Option<Pacer>,
    /// The server's `max_frame_bytes`, once announced.
    server_max_frame: Option<usize>,
    /// The outbox writes nothing before this (a `rate_limited` refusal).
    drain_paused_until: Option<Millis>,
    /// Frames written on the live socket since it opened.
    link_frames: u64,
    /// The latest time passed in; methods without a `now` use it.
    now: Millis,
    stats: Stats,
    greeting: Option<GreetingProvider>,
    registry: Option<Registry>,
    actions: Vec<Action>,
    last_status: ConnectionStatus,
    /// Notable events, bounded by `Config::timeline_limit`.
    timeline: Timeline,
    /// Acks counted since a backlog formed (messages waiting when a link
    /// opened, or restored); `None` when there is none.
    backlog_acked: Option<u64>,
    /// The choice between WebSocket and long-polling.
    fallback: fallback::FallbackState,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("endpoint", &self.endpoints.current())
            .field("failures", &self.failures)
            .field("online", &self.online)
            .field("outbox", &self.outbox.len())
            .field("standing", &self.standing.len())
            .field("timers", &self.timers)
            .field("greeting", &self.greeting.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in [`ConnectionStatus::Idle`]. `seed` drives the jitter
    /// and the message-id prefix: pass something random in the browser
    /// (`Math.random`, `Date.now`), a constant in tests.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, ConnectionStatus};
    /// let conn = Connection::new(Config::default(), 7);
    /// assert_eq!(conn.status(), ConnectionStatus::Idle);
    /// ```
    pub fn new(config: Config, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let backoff = Backoff::new(config.backoff.clone(), rng.next_u64());
        // 48 random bits: ids of a restored outbox from an earlier page load
        // will not collide with new ones.
        let id_prefix = format!("{:012x}", rng.next_u64() & 0xFFFF_FFFF_FFFF);
        let fallback = fallback::FallbackState::new(&config.fallback, rng.next_u64());
        Connection {
            fallback,
            timeline: Timeline::new(config.timeline_limit),
            backlog_acked: None,
            config,
            endpoints: Endpoints::default(),
            phase: Phase::Idle,
            next_socket: 1,
            failures: 0,
            ever_opened: false,
            online: true,
            backoff,
            rng,
            id_prefix,
            next_message: 1,
            outbox: Outbox::default(),
            standing: Vec::new(),
            streams: Streams::default(),
            heartbeat: Heartbeat::default(),
            timers: [None; TimerKind::ALL.len()],
            buffered: 0,
            pacer: None,
            server_max_frame: None,
            drain_paused_until: None,
            link_frames: 0,
            now: 0,
            stats: Stats::default(),
            greeting: None,
            registry: None,
            actions: Vec::new(),
            last_status: ConnectionStatus::Idle,
        }
    }

    /// Feeds one event at time `now`; returns the actions to carry out, in
    /// order (including any left by earlier method calls).
    ///
    /// ```
    /// use heartline::core::{Action, Config, Connection, Event, TimerKind};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let actions = conn.handle(0, Event::Start);
    /// assert!(actions.contains(&Action::SetTimer { kind: TimerKind::ConnectTimeout, at: 10_000 }));
    /// ```
    pub fn handle(&mut self, now: Millis, event: Event) -> Vec<Action> {
        self.tick(now);
        self.process(now, event);
        self.drain_actions()
    }

    /// Takes the actions queued by method calls (`send`, `cancel`,
    /// `add_standing`, `restore_outbox`, …). Call it after them.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.send(0, serde_json::json!({"socketType":"chat.send"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.drain_actions().len(), 1); // MessageState Queued
    /// assert!(conn.drain_actions().is_empty());
    /// ```
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.emit_status();
        std::mem::take(&mut self.actions)
    }

    /// The current status.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, ConnectionStatus, Event};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.handle(0, Event::Start);
    /// assert_eq!(conn.status(), ConnectionStatus::Connecting { attempt: 1 });
    /// ```
    pub fn status(&self) -> ConnectionStatus {
        match &self.phase {
            Phase::Idle => ConnectionStatus::Idle,
            Phase::Connecting { attempt, .. } => ConnectionStatus::Connecting { attempt: *attempt },
            Phase::Open { .. } => ConnectionStatus::Open {
                degraded: self.is_degraded(),
                transport: self.fallback.transport(),
            },
            Phase::Waiting { attempt, at } => ConnectionStatus::Reconnecting {
                attempt: *attempt,
                at: *at,
            },
            Phase::Offline => ConnectionStatus::Offline,
            Phase::Closed => ConnectionStatus::Closed,
            Phase::Failed(reason) => ConnectionStatus::Failed(reason.clone()),
        }
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let conn = Connection::new(Config::default(), 1);
    /// assert_eq!(conn.stats().frames_in, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        let (queued, in_flight) = self.outbox.counts(self.open_socket());
        Stats {
            last_rtt: self.heartbeat.last_rtt,
            smoothed_rtt: self.heartbeat.smoothed_rtt_ms(),
            queued,
            in_flight,
            ..self.stats.clone()
        }
    }

    /// The policy in force.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// assert_eq!(Connection::new(Config::default(), 1).config(), &Config::default());
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the policy (a changed Yew prop). It applies to later
    /// decisions; pending timers keep their times.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_config(Config { max_retries: None, ..Config::default() });
    /// assert_eq!(conn.config().max_retries, None);
    /// ```
    pub fn set_config(&mut self, config: Config) {
        if config.backoff != self.config.backoff {
            self.backoff = Backoff::new(config.backoff.clone(), self.rng.next_u64());
        }
        if config.fallback != self.config.fallback {
            self.fallback
                .set_config(&config.fallback, self.rng.next_u64());
        }
        self.timeline.set_limit(config.timeline_limit);
        self.config = config;
    }

    /// The connection timeline, oldest first: state changes, scheduled
    /// retries, heartbeat losses, degradation, refused frames (one entry per
    /// kind per burst), refusals by the server, rate limiting, drained
    /// backlogs. At most [`Config::timeline_limit`] entries.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, Event, TimelineEvent};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.handle(0, Event::Start);
    /// let events: Vec<String> = conn.timeline().map(|e| e.event.to_string()).collect();
    /// assert_eq!(events, ["connecting"]);
    /// assert_eq!(conn.timeline().next().map(|e| e.at), Some(0));
    /// ```
    pub fn timeline(&self) -> impl Iterator<Item = &TimelineEntry> {
        self.timeline.entries()
    }

    /// Timeline entries ever logged (including those evicted): changes
    /// exactly when a new entry is added, so a UI can re-render on growth
    /// only. (A burst's count grows in place without changing it.)
    ///
    /// ```
    /// use heartline::core::{Config, Connection, Event};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// assert_eq!(conn.timeline_version(), 0);
    /// conn.handle(0, Event::Start);
    /// assert_eq!(conn.timeline_version(), 1);
    /// ```
    pub fn timeline_version(&self) -> u64 {
        self.timeline.logged()
    }

    /// The last 60 round-trip times (ms), oldest first, for a sparkline.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// assert!(Connection::new(Config::default(), 1).rtt_history().is_empty());
    /// ```
    pub fn rtt_history(&self) -> Vec<f64> {
        self.heartbeat.rtt_history.iter().copied().collect()
    }

    /// Gives the connection its server URLs, in rotation order (see
    /// [`Endpoints`] for the failover policy). Each [`Action::Open`] is for
    /// [`endpoint`](Self::endpoint). When the URL in use is in the new list
    /// the connection stays on it, otherwise the next attempt opens the new
    /// list's first URL; a live socket is not closed by this.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// assert_eq!(conn.endpoint(), None); // the driver keeps the URL itself
    /// conn.set_endpoints(["wss://a.example/ws", "wss://b.example/ws"]);
    /// assert_eq!(conn.endpoint(), Some("wss://a.example/ws"));
    /// conn.set_endpoints("wss://solo.example/ws"); // one URL works too
    /// assert_eq!(conn.endpoints().len(), 1);
    /// ```
    pub fn set_endpoints(&mut self, endpoints: impl Into<Endpoints>) {
        let mut endpoints = endpoints.into();
        if let Some(current) = self.endpoints.current() {
            endpoints.select(current);
        }
        self.endpoints = endpoints;
    }

    /// The server URLs and which one is in use.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_endpoints(["ws://a/ws", "ws://b/ws"]);
    /// assert_eq!(conn.endpoints().index(), 0);
    /// assert_eq!(conn.endpoints().urls().len(), 2);
    /// ```
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The URL of the socket connecting or open, or of the next attempt:
    /// the one to open on [`Action::Open`], and the server a status view
    /// names. `None` when no URLs were given.
    ///
    /// ```
    /// use heartline::core::{Action, Config, Connection, Event};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_endpoints(["ws://a/ws", "ws://b/ws"]);
    /// let Some(Action::Open { socket, .. }) = conn.handle(0, Event::Start).first().cloned() else { panic!() };
    /// assert_eq!(conn.endpoint(), Some("ws://a/ws"));
    /// // The attempt fails: the retry goes to the next server.
    /// conn.handle(10, Event::Closed { socket, code: 1006, reason: String::new(), was_clean: false });
    /// assert_eq!(conn.endpoint(), Some("ws://b/ws"));
    /// ```
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoints.current()
    }

    /// The socket currently connecting or open.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, Event, SocketId};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// assert_eq!(conn.socket(), None);
    /// conn.handle(0, Event::Start);
    /// assert_eq!(conn.socket(), Some(SocketId(1)));
    /// ```
    pub fn socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Connecting { socket, .. } | Phase::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    /// Lets the machine ask whether a type has handlers, to count and report
    /// unknown types. Without a registry no type counts as unknown.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, Registry};
    /// let registry = Registry::new();
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_registry(Some(registry.clone()));
    /// ```
    pub fn set_registry(&mut self, registry: Option<Registry>) {
        self.registry = registry;
    }

    /// Sets the greeting provider, called on every open before anything
    /// else is sent.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_greeting(Some(Box::new(|| Some(serde_json::json!({"socketType":"hello","name":"ada"})))));
    /// ```
    pub fn set_greeting(&mut self, provider: Option<GreetingProvider>) {
        self.greeting = provider;
    }
    // ---- timers and helpers ----

    pub(super) fn open_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    /// Every entry point passes the time; methods without one use the last.
    pub(super) fn tick(&mut self, now: Millis) {
        self.now = now;
    }

    /// The largest frame to write: ours, or the server's if smaller.
    pub(super) fn max_out_frame(&self) -> usize {
        self.server_max_frame
            .map_or(self.config.max_frame_bytes, |server| {
                server.min(self.config.max_frame_bytes)
            })
    }

    pub(super) fn is_degraded(&self) -> bool {
        let thresholds = &self.config.degraded;
        let slow = self
            .heartbeat
            .smoothed_rtt_ms()
            .is_some_and(|rtt| rtt >= thresholds.rtt);
        let missing =
            thresholds.missed_pongs > 0 && self.heartbeat.missed_in_row >= thresholds.missed_pongs;
        slow || missing
    }

    pub(super) fn set_timer(&mut self, kind: TimerKind, at: Millis) {
        if self.timers[kind.index()] == Some(at) {
            return;
        }
        self.timers[kind.index()] = Some(at);
        self.actions.push(Action::SetTimer { kind, at });
    }

    pub(super) fn cancel_timer(&mut self, kind: TimerKind) {
        if self.timers[kind.index()].take().is_some() {
            self.actions.push(Action::CancelTimer(kind));
        }
    }

    pub(super) fn close_socket(&mut self, socket: SocketId, code: u16, reason: &str) {
        self.actions.push(Action::Close {
            socket,
            code,
            reason: reason.to_owned(),
        });
    }

    pub(super) fn message_state(&mut self, id: MessageId, state: DeliveryState) {
        self.actions.push(Action::MessageState { id, state });
    }

    pub(super) fn report(&mut self, report: Report) {
        self.actions.push(Action::Report(report));
    }

    pub(super) fn emit_status(&mut self) {
        let status = self.status();
        if status != self.last_status {
            let previous = std::mem::replace(&mut self.last_status, status.clone());
            self.log_status(&previous, &status);
            self.actions.push(Action::StatusChanged(status));
        }
    }

    pub(super) fn log(&mut self, event: TimelineEvent) {
        self.timeline.push(self.now, event);
    }

    fn log_status(&mut self, previous: &ConnectionStatus, status: &ConnectionStatus) {
        let event = match status {
            ConnectionStatus::Idle => return,
            ConnectionStatus::Connecting { attempt } => {
                TimelineEvent::Connecting { attempt: *attempt }
            }
            ConnectionStatus::Open { degraded, .. } => match previous {
                ConnectionStatus::Open { .. } => TimelineEvent::Degraded { on: *degraded },
                _ => TimelineEvent::Open {
                    reconnect: self.stats.reconnects > 0,
                },
            },
            ConnectionStatus::Reconnecting { attempt, at } => TimelineEvent::Reconnecting {
                attempt: *attempt,
                delay: at.saturating_sub(self.now),
            },
            ConnectionStatus::Offline => TimelineEvent::Offline,
            ConnectionStatus::Closed => TimelineEvent::Closed,
            ConnectionStatus::Failed(reason) => TimelineEvent::Failed {
                reason: reason.clone(),
            },
        };
        self.log(event);
        // Opened straight into degraded (a slow link remembered from before).
        if let (ConnectionStatus::Open { degraded: true, .. }, false) =
            (status, matches!(previous, ConnectionStatus::Open { .. }))
        {
            self.log(TimelineEvent::Degraded { on: true });
        }
    }

    /// A reliable message left the outbox: when a backlog was draining and
    /// the outbox is now empty, log it.
    pub(super) fn check_drained(&mut self) {
        if self.outbox.len() == 0
            && let Some(messages) = self.backlog_acked.take()
            && messages > 0
        {
            self.log(TimelineEvent::OutboxDrained { messages });
        }
    }

    /// Messages are waiting for a link: count their acks until it drains.
    pub(super) fn note_backlog(&mut self) {
        if self.outbox.len() > 0 && self.backlog_acked.is_none() {
            self.backlog_acked = Some(0);
        }
    }
}

/// An outgoing message must be an object with a string `socketType`.
fn validate(value: Value) -> Result<Map<String, Value>, SendError> {
    let Value::Object(object) = value else {
        return Err(SendError::NotAnObject);
    };
    if !object.get("socketType").is_some_and(Value::is_string) {
        return Err(SendError::MissingSocketType);
    }
    Ok(object)
}
