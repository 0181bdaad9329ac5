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
    Config, ConnectionStatus, DeliveryState, Endpoints, FailureReason, MessageId, Millis, Registry,
    Report, SocketId, Stats, TimelineEntry, TimelineEvent,
};

mod api;
mod events;
mod fallback;
mod heartbeat;
mod lifecycle;
mod outbox_flow;
mod streams;
mod types;

pub use types::{
    Action, CancelError, Event, FrameData, GreetingProvider, RestoreError, SendError, SendOptions,
    TimerKind,
};

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
