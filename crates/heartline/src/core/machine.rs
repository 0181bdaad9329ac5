//! The connection state machine: events in, actions out.

use std::fmt;

use serde_json::{Map, Value};

use super::backoff::{Backoff, SplitMix64};
use super::heartbeat::{Heartbeat, Ping, json_pong_rtt, ping_frame};
use super::outbox::{DUMP_VERSION, Dump, Entry, Outbox};
use super::streams::{Accepted, Streams};
use super::{
    CLOSE_AUTH_REFUSED, CLOSE_HEARTBEAT_LOST, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, Config,
    ConnectionStatus, DeliveryState, FailureReason, HeartbeatStyle, Inbound, MessageFailure,
    MessageId, Millis, ParseError, Registry, Report, SocketId, Stats,
};

/// A timer fired this much after its time is treated as throttled: the
/// verdict it would bring is re-checked instead of trusted.
const LATE_TIMER_SLACK: Millis = 1_000;
/// How often a back-pressured outbox re-checks the socket's buffer.
const FLUSH_POLL: Millis = 100;

/// The core's timers; at most one of each kind is pending.
///
/// ```
/// use heartline::core::TimerKind;
/// assert_eq!(TimerKind::ALL.len(), 7);
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
    /// Re-check the socket's send buffer (back-pressure). A driver may report
    /// [`Event::BufferedAmount`] instead of firing it.
    Flush,
    /// The earliest time-to-live of a queued message.
    Ttl,
    /// The earliest stream gap to give up on.
    StreamGap,
}

impl TimerKind {
    /// Every kind, e.g. to cancel all of a driver's timers.
    ///
    /// ```
    /// use heartline::core::TimerKind;
    /// assert!(TimerKind::ALL.contains(&TimerKind::PongTimeout));
    /// ```
    pub const ALL: [TimerKind; 7] = [
        TimerKind::Reconnect,
        TimerKind::ConnectTimeout,
        TimerKind::Heartbeat,
        TimerKind::PongTimeout,
        TimerKind::Flush,
        TimerKind::Ttl,
        TimerKind::StreamGap,
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
    /// Connect (from idle, closed or failed); the driver knows the URL.
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
    /// The socket's `bufferedAmount`, reported after sends or when
    /// [`TimerKind::Flush`] fires.
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
    /// The browser cannot create a WebSocket at all.
    Unsupported,
}

/// What the driver must do, in order.
///
/// ```
/// use heartline::core::{Action, SocketId};
/// let action = Action::Open { socket: SocketId(1) };
/// assert!(matches!(action, Action::Open { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a new WebSocket to the URL and report its events with `socket`.
    /// Any earlier socket has been closed by a preceding [`Action::Close`].
    Open {
        /// The id to tag its events with.
        socket: SocketId,
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
/// let Some(Action::Open { socket }) = actions.first().cloned() else { panic!() };
/// let actions = conn.handle(5, Event::Opened { socket });
/// assert!(conn.status().is_open());
/// # let _ = actions;
/// ```
pub struct Connection {
    config: Config,
    phase: Phase,
    next_socket: u64,
    /// Failed attempts since the last healthy connection.
    failures: u32,
    ever_opened: bool,
    online: bool,
    visible: bool,
    backoff: Backoff,
    rng: SplitMix64,
    id_prefix: String,
    next_message: u64,
    outbox: Outbox,
    standing: Vec<Standing>,
    streams: Streams,
    heartbeat: Heartbeat,
    timers: [Option<Millis>; 7],
    /// Estimate of the browser's `bufferedAmount`: grows with each write,
    /// corrected by `BufferedAmount` events.
    buffered: u64,
    stats: Stats,
    greeting: Option<GreetingProvider>,
    registry: Option<Registry>,
    actions: Vec<Action>,
    last_status: ConnectionStatus,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("failures", &self.failures)
            .field("online", &self.online)
            .field("visible", &self.visible)
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
        Connection {
            config,
            phase: Phase::Idle,
            next_socket: 1,
            failures: 0,
            ever_opened: false,
            online: true,
            visible: true,
            backoff,
            rng,
            id_prefix,
            next_message: 1,
            outbox: Outbox::default(),
            standing: Vec::new(),
            streams: Streams::default(),
            heartbeat: Heartbeat::default(),
            timers: [None; 7],
            buffered: 0,
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
        self.config = config;
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

    /// Adds (or replaces, keeping its place) a standing subscription under
    /// `key`: `value` is re-sent on every open, after the greeting and
    /// before the outbox. With `resume_stream`, a `since` field is set to
    /// the last sequence number delivered on that stream. Sent at once when
    /// open.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// use serde_json::json;
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.add_standing("room:lobby", json!({"socketType":"join","room":"lobby"}), Some("lobby".into()))
    ///     .unwrap();
    /// assert!(conn.add_standing("bad", json!(3), None).is_err());
    /// ```
    pub fn add_standing(
        &mut self,
        key: impl Into<String>,
        value: Value,
        resume_stream: Option<String>,
    ) -> Result<(), SendError> {
        let object = validate(value)?;
        let len = Value::Object(object.clone()).to_string().len();
        // `since` adds at most ~30 bytes; refuse now rather than on every open.
        if len + 30 > self.config.max_frame_bytes {
            return Err(SendError::TooLarge {
                len,
                max: self.config.max_frame_bytes,
            });
        }
        let key = key.into();
        let entry = Standing {
            key: key.clone(),
            value: Value::Object(object),
            resume_stream,
        };
        let index = match self.standing.iter().position(|s| s.key == key) {
            Some(index) => {
                self.standing[index] = entry;
                index
            }
            None => {
                self.standing.push(entry);
                self.standing.len() - 1
            }
        };
        if let Some(socket) = self.open_socket() {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
        Ok(())
    }

    /// Stops re-sending the standing subscription `key`; returns its value.
    /// (Send the matching `leave`/`unsubscribe` yourself.)
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.add_standing("m", serde_json::json!({"socketType":"metrics.subscribe"}), None).unwrap();
    /// assert!(conn.remove_standing("m").is_some());
    /// assert!(conn.remove_standing("m").is_none());
    /// ```
    pub fn remove_standing(&mut self, key: &str) -> Option<Value> {
        let index = self.standing.iter().position(|s| s.key == key)?;
        Some(self.standing.remove(index).value)
    }

    /// The last sequence number delivered on `stream`.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", Some(41));
    /// assert_eq!(conn.last_seq("lobby"), Some(41));
    /// ```
    pub fn last_seq(&self, stream: &str) -> Option<u64> {
        self.streams.last_seq(stream)
    }

    /// Sets where `stream` resumes (e.g. from history cached across a
    /// reload); `None` accepts whatever comes first.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", None);
    /// assert_eq!(conn.last_seq("lobby"), None);
    /// ```
    pub fn set_last_seq(&mut self, stream: &str, seq: Option<u64>) {
        self.streams.set_last_seq(stream, seq);
    }

    /// Forgets a stream entirely (after leaving a room for good).
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// conn.set_last_seq("lobby", Some(3));
    /// conn.forget_stream("lobby");
    /// assert_eq!(conn.last_seq("lobby"), None);
    /// ```
    pub fn forget_stream(&mut self, stream: &str) {
        self.streams.forget(stream);
    }

    /// Sends a reliable message: the core sets its `id` (overwriting any),
    /// keeps it until the server's `ack`, writes it now when open and
    /// otherwise queues it. Also accepted while idle, reconnecting, offline
    /// or failed; refused after `Stop`.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendError, SendOptions};
    /// use serde_json::json;
    /// let mut conn = Connection::new(Config { outbox_limit: 1, ..Config::default() }, 1);
    /// let id = conn.send(0, json!({"socketType":"chat.send","text":"hi"}), SendOptions::default()).unwrap();
    /// assert!(!id.as_str().is_empty());
    /// let full = conn.send(0, json!({"socketType":"chat.send"}), SendOptions::default());
    /// assert_eq!(full, Err(SendError::QueueFull { limit: 1 }));
    /// ```
    pub fn send(
        &mut self,
        now: Millis,
        value: Value,
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        if self.phase == Phase::Closed {
            return Err(SendError::Closed);
        }
        let mut object = validate(value)?;
        if self.outbox.len() >= self.config.outbox_limit {
            return Err(SendError::QueueFull {
                limit: self.config.outbox_limit,
            });
        }
        let id = self.new_message_id();
        object.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
        let frame = Value::Object(object).to_string();
        if frame.len() > self.config.max_frame_bytes {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max: self.config.max_frame_bytes,
            });
        }
        let ttl = options.ttl.or(self.config.default_ttl);
        self.outbox.push(Entry {
            id: id.clone(),
            frame,
            expires_at: ttl.map(|ttl| now.saturating_add(ttl)),
            sent_on: None,
        });
        self.message_state(id.clone(), DeliveryState::Queued);
        self.flush(now);
        self.arm_ttl();
        Ok(id)
    }

    /// Sends a volatile message (typing, cursor): written only when open and
    /// not congested, never queued, never re-sent.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendError};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let typing = serde_json::json!({"socketType":"typing","room":"lobby"});
    /// assert_eq!(conn.send_volatile(typing), Err(SendError::NotOpen));
    /// ```
    pub fn send_volatile(&mut self, value: Value) -> Result<(), SendError> {
        let object = validate(value)?;
        let text = Value::Object(object).to_string();
        if text.len() > self.config.max_frame_bytes {
            return Err(SendError::TooLarge {
                len: text.len(),
                max: self.config.max_frame_bytes,
            });
        }
        let Some(socket) = self.open_socket() else {
            return Err(SendError::NotOpen);
        };
        if self.buffered > self.config.high_water_mark {
            return Err(SendError::Congested);
        }
        self.write(socket, text);
        Ok(())
    }

    /// Cancels a queued reliable message; it fails with
    /// [`MessageFailure::Cancelled`]. One already written on the live socket
    /// cannot be called back.
    ///
    /// ```
    /// use heartline::core::{CancelError, Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.cancel(&id), Ok(()));
    /// assert_eq!(conn.cancel(&id), Err(CancelError::NotFound));
    /// ```
    pub fn cancel(&mut self, id: &MessageId) -> Result<(), CancelError> {
        let live = self.open_socket();
        let entry = self.outbox.get(id).ok_or(CancelError::NotFound)?;
        if live.is_some() && entry.sent_on == live {
            return Err(CancelError::InFlight);
        }
        if let Some(entry) = self.outbox.remove(id) {
            self.fail_message(entry.id, MessageFailure::Cancelled);
        }
        self.arm_ttl();
        Ok(())
    }

    /// Where a reliable message is while it is in the outbox (`Queued` or
    /// `Sent`); `None` once it left.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, DeliveryState, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.delivery_state(&id), Some(DeliveryState::Queued));
    /// ```
    pub fn delivery_state(&self, id: &MessageId) -> Option<DeliveryState> {
        let entry = self.outbox.get(id)?;
        let live = self.open_socket();
        Some(if live.is_some() && entry.sent_on == live {
            DeliveryState::Sent
        } else {
            DeliveryState::Queued
        })
    }

    /// Ids in the outbox, in send order.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let id = conn.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// assert_eq!(conn.outbox_ids(), vec![id]);
    /// ```
    pub fn outbox_ids(&self) -> Vec<MessageId> {
        self.outbox.iter().map(|e| e.id.clone()).collect()
    }

    /// The outbox as JSON (every unacked message, in order), for
    /// localStorage.
    ///
    /// ```
    /// use heartline::core::{Config, Connection, SendOptions};
    /// let mut a = Connection::new(Config::default(), 1);
    /// let id = a.send(0, serde_json::json!({"socketType":"x"}), SendOptions::default()).unwrap();
    /// let saved = a.export_outbox();
    ///
    /// let mut b = Connection::new(Config::default(), 2); // after a reload
    /// assert_eq!(b.restore_outbox(10, &saved), Ok(vec![id.clone()]));
    /// assert_eq!(b.outbox_ids(), vec![id]);
    /// ```
    pub fn export_outbox(&self) -> String {
        // A dump of strings and integers always serializes.
        serde_json::to_string(&self.outbox.export())
            .unwrap_or_else(|_| format!(r#"{{"version":{DUMP_VERSION},"messages":[]}}"#))
    }

    /// Restores an exported outbox, appending the messages not already in
    /// it (same id = same message), keeping their ids so the server's
    /// de-duplication makes them count once. Expired ones fail at once. All
    /// or nothing: on error nothing is restored.
    ///
    /// ```
    /// use heartline::core::{Config, Connection};
    /// let mut conn = Connection::new(Config::default(), 1);
    /// let dump = r#"{"version":1,"messages":[{"id":"a-1","frame":"{\"socketType\":\"x\",\"id\":\"a-1\"}"}]}"#;
    /// assert_eq!(conn.restore_outbox(0, dump).unwrap().len(), 1);
    /// assert_eq!(conn.restore_outbox(0, dump).unwrap().len(), 0); // already there
    /// ```
    pub fn restore_outbox(
        &mut self,
        now: Millis,
        json: &str,
    ) -> Result<Vec<MessageId>, RestoreError> {
        let dump: Dump =
            serde_json::from_str(json).map_err(|e| RestoreError::Json(e.to_string()))?;
        if dump.version != DUMP_VERSION {
            return Err(RestoreError::Version(dump.version));
        }
        let mut fresh: Vec<Entry> = Vec::new();
        for message in dump.messages {
            if self.outbox.contains(&message.id) || fresh.iter().any(|e| e.id == message.id) {
                continue;
            }
            let valid = serde_json::from_str::<Value>(&message.frame)
                .ok()
                .is_some_and(|v| validate(v).is_ok());
            if !valid || message.frame.len() > self.config.max_frame_bytes {
                return Err(RestoreError::InvalidMessage(message.id));
            }
            fresh.push(Entry {
                id: message.id,
                frame: message.frame,
                expires_at: message.expires_at,
                sent_on: None,
            });
        }
        if self.outbox.len() + fresh.len() > self.config.outbox_limit {
            return Err(RestoreError::QueueFull {
                needed: fresh.len(),
                limit: self.config.outbox_limit,
            });
        }
        let ids: Vec<MessageId> = fresh.iter().map(|e| e.id.clone()).collect();
        for entry in fresh {
            self.message_state(entry.id.clone(), DeliveryState::Queued);
            self.outbox.push(entry);
        }
        self.expire(now);
        self.flush(now);
        Ok(ids)
    }

    // ---- event processing ----

    fn process(&mut self, now: Millis, event: Event) {
        match event {
            Event::Start => self.start(now),
            Event::Opened { socket } => self.on_opened(now, socket),
            Event::Frame { socket, data } => self.on_frame(now, socket, data),
            Event::Closed {
                socket,
                code,
                reason,
                was_clean: _,
            } => {
                if self.socket() == Some(socket) {
                    self.lose_link(now, Loss::Closed { code, reason });
                }
            }
            Event::Error { socket } => {
                if self.socket() == Some(socket) {
                    // Closing it ourselves makes the socket stale now, so its
                    // coming `close` event cannot schedule a second reconnect.
                    self.close_socket(socket, CLOSE_NORMAL, "socket error");
                    self.lose_link(now, Loss::Error);
                }
            }
            Event::TimerFired(kind) => self.on_timer(now, kind),
            Event::BufferedAmount { socket, bytes } => {
                if self.open_socket() == Some(socket) {
                    self.buffered = bytes;
                    if bytes <= self.config.high_water_mark {
                        self.cancel_timer(TimerKind::Flush);
                        self.flush(now);
                    } else {
                        self.arm_flush(now);
                    }
                }
            }
            Event::Online => {
                self.online = true;
                match self.phase {
                    Phase::Offline | Phase::Waiting { .. } => self.begin_attempt(now),
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Offline => {
                self.online = false;
                match self.phase {
                    Phase::Waiting { .. } => {
                        self.cancel_timer(TimerKind::Reconnect);
                        self.phase = Phase::Offline;
                    }
                    Phase::Connecting { socket, .. } => {
                        self.close_socket(socket, CLOSE_NORMAL, "offline");
                        self.cancel_timer(TimerKind::ConnectTimeout);
                        self.phase = Phase::Offline;
                    }
                    // The link may survive a short blip: check it instead.
                    Phase::Open { .. } => self.probe(now),
                    _ => {}
                }
            }
            Event::Visible => {
                self.visible = true;
                match self.phase {
                    Phase::Open { .. } => self.probe(now),
                    // The reconnect timer was throttled while hidden.
                    Phase::Waiting { at, .. } if at <= now => self.begin_attempt(now),
                    _ => {}
                }
            }
            Event::Hidden => self.visible = false,
            Event::RetryNow => match self.phase {
                Phase::Waiting { .. } => self.begin_attempt(now),
                Phase::Offline => {
                    // The user overrides the browser's opinion.
                    self.online = true;
                    self.begin_attempt(now);
                }
                Phase::Failed(_) => self.start_afresh(now),
                _ => {}
            },
            Event::Stop => {
                if let Some(socket) = self.socket() {
                    self.close_socket(socket, CLOSE_NORMAL, "closed by the app");
                }
                self.drop_link_state();
                self.cancel_timer(TimerKind::Reconnect);
                self.phase = Phase::Closed;
            }
            Event::Unsupported => {
                if let Some(socket) = self.socket() {
                    self.close_socket(socket, CLOSE_NORMAL, "unsupported");
                }
                self.drop_link_state();
                self.fail(FailureReason::Unsupported);
            }
        }
    }

    fn start(&mut self, now: Millis) {
        if matches!(self.phase, Phase::Idle | Phase::Closed | Phase::Failed(_)) {
            self.start_afresh(now);
        }
    }

    fn start_afresh(&mut self, now: Millis) {
        self.failures = 0;
        self.backoff.reset();
        self.heartbeat.losses_in_row = 0;
        self.begin_attempt(now);
    }

    fn begin_attempt(&mut self, now: Millis) {
        self.cancel_timer(TimerKind::Reconnect);
        if !self.online {
            self.phase = Phase::Offline;
            return;
        }
        let socket = SocketId(self.next_socket);
        self.next_socket += 1;
        self.stats.connect_attempts += 1;
        self.phase = Phase::Connecting {
            socket,
            attempt: self.failures.saturating_add(1),
            started_at: now,
        };
        self.actions.push(Action::Open { socket });
        self.set_timer(
            TimerKind::ConnectTimeout,
            now.saturating_add(self.config.connect_timeout),
        );
    }

    fn on_opened(&mut self, now: Millis, socket: SocketId) {
        let Phase::Connecting {
            socket: current, ..
        } = self.phase
        else {
            return;
        };
        if current != socket {
            return;
        }
        self.cancel_timer(TimerKind::ConnectTimeout);
        if self.ever_opened {
            self.stats.reconnects += 1;
        }
        self.ever_opened = true;
        self.phase = Phase::Open {
            socket,
            opened_at: now,
        };
        self.heartbeat.on_open(now);
        self.buffered = 0;
        // Session replay: greeting, standing subscriptions, then the outbox.
        let greeting = self.greeting.as_mut().and_then(|provider| provider());
        if let Some(greeting) = greeting {
            self.write(socket, greeting.to_string());
        }
        for index in 0..self.standing.len() {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
        // Gaps get a fresh wait: the resume just asked for what is missing.
        self.streams.restart_gap_clocks(now);
        self.arm_gap();
        self.expire(now);
        self.flush(now);
        self.arm_heartbeat();
    }

    fn on_frame(&mut self, now: Millis, socket: SocketId, data: FrameData) {
        if self.open_socket() != Some(socket) {
            return;
        }
        let len = data.len();
        self.stats.frames_in += 1;
        self.stats.bytes_in += len as u64;
        self.heartbeat.last_inbound = now;
        let max = self.config.max_frame_bytes;
        if len > max {
            self.stats.invalid_frames += 1;
            self.stats.oversized += 1;
            self.report(Report::Oversized { len, max });
            return;
        }
        let text = match data {
            FrameData::Text(text) => text,
            FrameData::Binary(len) => {
                self.stats.invalid_frames += 1;
                self.stats.binary_frames += 1;
                self.report(Report::Binary { len });
                return;
            }
        };
        if let HeartbeatStyle::Text { ping, pong } = &self.config.heartbeat.style {
            if text == *pong {
                let rtt = self.heartbeat.ping.map(|p| now.saturating_sub(p.sent_at));
                self.on_pong(rtt);
                return;
            }
            if text == *ping {
                let reply = pong.clone();
                self.write(socket, reply);
                return;
            }
        }
        match Inbound::parse(&text) {
            Ok(message) => self.on_message(now, socket, message),
            Err(ParseError::Malformed(error)) => {
                self.stats.invalid_frames += 1;
                self.stats.malformed += 1;
                self.report(Report::Malformed { len, error });
            }
            Err(ParseError::MissingType) => {
                self.stats.invalid_frames += 1;
                self.stats.missing_type += 1;
                self.report(Report::MissingType { len });
            }
        }
    }

    fn on_message(&mut self, now: Millis, socket: SocketId, message: Inbound) {
        match &*message.socket_type {
            "pong" => {
                let rtt = json_pong_rtt(&message.value, now, self.heartbeat.ping);
                self.on_pong(rtt);
                return;
            }
            "ping" => {
                let t = message.value.get("t").cloned().unwrap_or(Value::Null);
                let reply = serde_json::json!({"socketType": "pong", "t": t});
                self.write(socket, reply.to_string());
                return;
            }
            "ack" => {
                if let Some(id) = message.str_field("id") {
                    self.on_ack(MessageId::from(id));
                }
                return;
            }
            "error" => {
                // A refusal of one of our messages: it must never be retried.
                if let Some(id) = message.str_field("id").map(MessageId::from)
                    && let Some(entry) = self.outbox.remove(&id)
                {
                    let failure = MessageFailure::Refused {
                        code: message.str_field("code").unwrap_or_default().to_owned(),
                        message: message.str_field("message").unwrap_or_default().to_owned(),
                    };
                    self.fail_message(entry.id, failure);
                    self.arm_ttl();
                }
                // Also delivered (to handlers that want it), never "unknown".
            }
            other => {
                let unknown = self
                    .registry
                    .as_ref()
                    .is_some_and(|registry| !registry.has_handlers(other));
                if unknown {
                    self.stats.unknown_types += 1;
                    let socket_type = other.to_owned();
                    self.report(Report::UnknownType { socket_type });
                }
            }
        }
        let Some(position) = message.stream.clone() else {
            self.actions.push(Action::Deliver(message));
            return;
        };
        let limit = self.config.stream_buffer_limit;
        let stream = &*position.stream;
        match self
            .streams
            .accept(stream, position.seq, message, now, limit)
        {
            Accepted::Deliver(messages) => {
                self.actions
                    .extend(messages.into_iter().map(Action::Deliver));
            }
            Accepted::Duplicate => {
                self.stats.duplicates += 1;
                self.report(Report::Duplicate {
                    stream: stream.to_owned(),
                    seq: position.seq,
                });
            }
            Accepted::Held { expected, new_gap } => {
                self.report(Report::Gap {
                    stream: stream.to_owned(),
                    expected,
                    got: position.seq,
                });
                if new_gap {
                    self.request_resume(socket, stream);
                }
                self.arm_gap();
            }
            Accepted::Skipped { from, to, deliver } => {
                self.stats.gaps_skipped += 1;
                self.report(Report::GapSkipped {
                    stream: stream.to_owned(),
                    from,
                    to,
                });
                self.actions
                    .extend(deliver.into_iter().map(Action::Deliver));
                self.arm_gap();
            }
        }
    }

    fn on_ack(&mut self, id: MessageId) {
        match self.outbox.remove(&id) {
            Some(entry) => {
                self.stats.acked += 1;
                self.message_state(entry.id, DeliveryState::Acked);
                self.arm_ttl();
            }
            None => self.report(Report::UnknownAck {
                id: id.as_str().to_owned(),
            }),
        }
    }

    fn on_pong(&mut self, rtt: Option<Millis>) {
        let Some(rtt) = rtt else {
            return; // an unsolicited text pong proves life, nothing more
        };
        self.heartbeat.record_rtt(rtt);
        self.cancel_timer(TimerKind::PongTimeout);
        self.arm_heartbeat();
    }

    /// Asks again for a stream from its last delivered message, by
    /// re-sending the standing subscription that resumes it.
    fn request_resume(&mut self, socket: SocketId, stream: &str) {
        let indexes: Vec<usize> = (0..self.standing.len())
            .filter(|&i| self.standing[i].resume_stream.as_deref() == Some(stream))
            .collect();
        for index in indexes {
            let text = self.standing_frame(index);
            self.write(socket, text);
        }
    }

    fn on_timer(&mut self, now: Millis, kind: TimerKind) {
        // A fire of a timer not pending (cancelled, replaced) is stale.
        let Some(at) = self.timers[kind.index()].take() else {
            return;
        };
        let late_by = now.saturating_sub(at);
        match kind {
            TimerKind::Reconnect => {
                if matches!(self.phase, Phase::Waiting { .. }) {
                    self.begin_attempt(now);
                }
            }
            TimerKind::ConnectTimeout => {
                if let Phase::Connecting {
                    socket, started_at, ..
                } = self.phase
                {
                    let deadline = started_at.saturating_add(self.config.connect_timeout);
                    if now < deadline {
                        self.set_timer(TimerKind::ConnectTimeout, deadline);
                    } else {
                        self.close_socket(socket, CLOSE_NORMAL, "connect timeout");
                        self.lose_link(now, Loss::ConnectTimeout);
                    }
                }
            }
            TimerKind::Heartbeat => self.heartbeat_tick(now),
            TimerKind::PongTimeout => self.pong_deadline(now, late_by),
            TimerKind::Flush => {
                // No fresher report came: assume the buffer drained.
                self.buffered = 0;
                self.flush(now);
            }
            TimerKind::Ttl => {
                self.expire(now);
                self.arm_ttl();
            }
            TimerKind::StreamGap => {
                // Only give up on a gap while a resume could still fill it.
                if self.open_socket().is_some() {
                    let timeout = self.config.stream_gap_timeout;
                    for (stream, from, to, deliver) in self.streams.skip_stale_gaps(now, timeout) {
                        self.stats.gaps_skipped += 1;
                        self.report(Report::GapSkipped { stream, from, to });
                        self.actions
                            .extend(deliver.into_iter().map(Action::Deliver));
                    }
                    self.arm_gap();
                }
            }
        }
    }

    fn heartbeat_tick(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        if self.heartbeat.ping.is_some() {
            return; // the pong deadline decides
        }
        // Judge by real silence, not by how often this timer managed to fire.
        let due = self.heartbeat.next_ping_due(self.config.heartbeat.interval);
        if now < due {
            self.set_timer(TimerKind::Heartbeat, due);
        } else {
            self.send_ping(now, socket, self.config.heartbeat.timeout);
        }
    }

    fn pong_deadline(&mut self, now: Millis, late_by: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        let Some(ping) = self.heartbeat.ping else {
            self.arm_heartbeat();
            return;
        };
        if self.heartbeat.last_inbound > ping.sent_at {
            // Frames arrived since the ping, so the link lives; the pong is
            // just missing (slow server): a hint of degradation.
            self.heartbeat.ping = None;
            self.heartbeat.missed_in_row += 1;
            self.stats.missed_pongs += 1;
            self.arm_heartbeat();
            return;
        }
        if now < ping.deadline {
            self.set_timer(TimerKind::PongTimeout, ping.deadline);
            return;
        }
        if late_by > LATE_TIMER_SLACK && !ping.extended {
            // A throttled tab woke up: frames may be queued behind this
            // timer. Give the link one short grace instead of a verdict.
            self.report(Report::LateTimer {
                kind: TimerKind::PongTimeout,
                late_by,
            });
            let deadline = now.saturating_add(self.config.heartbeat.probe_timeout);
            self.heartbeat.ping = Some(Ping {
                deadline,
                extended: true,
                ..ping
            });
            self.set_timer(TimerKind::PongTimeout, deadline);
            return;
        }
        self.stats.missed_pongs += 1;
        self.close_socket(socket, CLOSE_HEARTBEAT_LOST, "heartbeat lost");
        self.lose_link(now, Loss::HeartbeatLost);
    }

    /// A liveness check with the short probe timeout (on `online`, `offline`
    /// or `visible` while the socket claims to be open).
    fn probe(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        if self.config.heartbeat.style == HeartbeatStyle::Disabled {
            return;
        }
        let deadline = now.saturating_add(self.config.heartbeat.probe_timeout);
        match self.heartbeat.ping {
            Some(mut ping) => {
                // A ping is out already: shorten its wait, or renew one whose
                // deadline passed while its timer was throttled.
                if ping.deadline > deadline || ping.deadline <= now {
                    ping.deadline = deadline;
                }
                ping.extended = true;
                self.heartbeat.ping = Some(ping);
                self.set_timer(TimerKind::PongTimeout, ping.deadline);
            }
            None => {
                self.cancel_timer(TimerKind::Heartbeat);
                self.send_ping(now, socket, self.config.heartbeat.probe_timeout);
                if let Some(ping) = self.heartbeat.ping.as_mut() {
                    ping.extended = true;
                }
            }
        }
    }

    fn send_ping(&mut self, now: Millis, socket: SocketId, wait: Millis) {
        let Some(text) = ping_frame(&self.config.heartbeat.style, now) else {
            return;
        };
        self.write(socket, text);
        self.heartbeat.last_ping_at = now;
        let deadline = now.saturating_add(wait);
        self.heartbeat.ping = Some(Ping {
            sent_at: now,
            deadline,
            extended: false,
        });
        self.set_timer(TimerKind::PongTimeout, deadline);
    }

    /// The live socket went away (closed, errored, abandoned or declared
    /// dead): decide between giving up and one reconnect.
    fn lose_link(&mut self, now: Millis, loss: Loss) {
        let uptime = match self.phase {
            Phase::Open { opened_at, .. } => Some(now.saturating_sub(opened_at)),
            Phase::Connecting { .. } => None,
            _ => return,
        };
        self.drop_link_state();
        // In-flight messages whose time-to-live passed must not go out stale.
        self.expire(now);
        if let Loss::Closed { code, reason } = &loss
            && self.config.final_close_codes.contains(code)
        {
            let reason = match *code {
                CLOSE_AUTH_REFUSED => FailureReason::AuthRefused {
                    reason: reason.clone(),
                },
                CLOSE_PROTOCOL_ERROR => FailureReason::ProtocolError {
                    reason: reason.clone(),
                },
                code => FailureReason::ClosedByServer {
                    code,
                    reason: reason.clone(),
                },
            };
            self.fail(reason);
            return;
        }
        if uptime.is_some_and(|uptime| uptime >= self.config.min_uptime) {
            self.failures = 0;
            self.backoff.reset();
        }
        if matches!(loss, Loss::HeartbeatLost) {
            self.stats.heartbeat_losses += 1;
            self.heartbeat.losses_in_row = self.heartbeat.losses_in_row.saturating_add(1);
            let times = self.heartbeat.losses_in_row;
            if self
                .config
                .heartbeat
                .max_losses
                .is_some_and(|max| times >= max)
            {
                self.fail(FailureReason::HeartbeatLost { times });
                return;
            }
        }
        self.failures = self.failures.saturating_add(1);
        self.schedule_retry(now);
    }

    fn schedule_retry(&mut self, now: Millis) {
        if !self.online {
            self.phase = Phase::Offline;
            return;
        }
        if self
            .config
            .max_retries
            .is_some_and(|max| self.failures > max)
        {
            self.fail(FailureReason::ConnectFailed {
                attempts: self.failures,
            });
            return;
        }
        let delay = self.backoff.next_delay(self.failures);
        let at = now.saturating_add(delay);
        self.phase = Phase::Waiting {
            attempt: self.failures.saturating_add(1),
            at,
        };
        self.set_timer(TimerKind::Reconnect, at);
    }

    fn fail(&mut self, reason: FailureReason) {
        self.cancel_timer(TimerKind::Reconnect);
        self.phase = Phase::Failed(reason);
    }

    /// Forgets everything tied to the live socket; the outbox re-sends all
    /// on the next open.
    fn drop_link_state(&mut self) {
        for kind in [
            TimerKind::ConnectTimeout,
            TimerKind::Heartbeat,
            TimerKind::PongTimeout,
            TimerKind::Flush,
        ] {
            self.cancel_timer(kind);
        }
        self.heartbeat.ping = None;
        self.buffered = 0;
        for id in self.outbox.requeue_all() {
            self.message_state(id, DeliveryState::Queued);
        }
        // Phase changes right after; until then no socket is live.
        self.phase = Phase::Idle;
        self.arm_ttl();
    }

    // ---- outbox ----

    fn flush(&mut self, now: Millis) {
        let Some(socket) = self.open_socket() else {
            return;
        };
        loop {
            if self.buffered > self.config.high_water_mark {
                self.arm_flush(now);
                break;
            }
            let Some(entry) = self.outbox.next_unsent(socket) else {
                break;
            };
            entry.sent_on = Some(socket);
            let (id, text) = (entry.id.clone(), entry.frame.clone());
            self.write(socket, text);
            self.message_state(id, DeliveryState::Sent);
        }
        self.arm_ttl();
    }

    fn expire(&mut self, now: Millis) {
        for id in self.outbox.take_expired(now, self.open_socket()) {
            self.fail_message(id, MessageFailure::Expired);
        }
        self.arm_ttl();
    }

    fn fail_message(&mut self, id: MessageId, failure: MessageFailure) {
        self.stats.failed += 1;
        self.message_state(id, DeliveryState::Failed(failure));
    }

    fn new_message_id(&mut self) -> MessageId {
        loop {
            let id = MessageId::from(format!("{}-{}", self.id_prefix, self.next_message));
            self.next_message += 1;
            if !self.outbox.contains(&id) {
                return id;
            }
        }
    }

    fn standing_frame(&self, index: usize) -> String {
        let Some(standing) = self.standing.get(index) else {
            return String::new();
        };
        let mut value = standing.value.clone();
        if let (Some(stream), Value::Object(object)) = (&standing.resume_stream, &mut value)
            && let Some(last) = self.streams.last_seq(stream)
        {
            object.insert("since".to_owned(), Value::from(last));
        }
        value.to_string()
    }

    // ---- timers and helpers ----

    fn open_socket(&self) -> Option<SocketId> {
        match self.phase {
            Phase::Open { socket, .. } => Some(socket),
            _ => None,
        }
    }

    fn is_degraded(&self) -> bool {
        let thresholds = &self.config.degraded;
        let slow = self
            .heartbeat
            .smoothed_rtt_ms()
            .is_some_and(|rtt| rtt >= thresholds.rtt);
        let missing =
            thresholds.missed_pongs > 0 && self.heartbeat.missed_in_row >= thresholds.missed_pongs;
        slow || missing
    }

    fn set_timer(&mut self, kind: TimerKind, at: Millis) {
        if self.timers[kind.index()] == Some(at) {
            return;
        }
        self.timers[kind.index()] = Some(at);
        self.actions.push(Action::SetTimer { kind, at });
    }

    fn cancel_timer(&mut self, kind: TimerKind) {
        if self.timers[kind.index()].take().is_some() {
            self.actions.push(Action::CancelTimer(kind));
        }
    }

    fn arm_heartbeat(&mut self) {
        if self.open_socket().is_none()
            || self.heartbeat.ping.is_some()
            || self.config.heartbeat.style == HeartbeatStyle::Disabled
        {
            return;
        }
        let at = self.heartbeat.next_ping_due(self.config.heartbeat.interval);
        self.set_timer(TimerKind::Heartbeat, at);
    }

    fn arm_flush(&mut self, now: Millis) {
        if self.timers[TimerKind::Flush.index()].is_none() {
            self.set_timer(TimerKind::Flush, now.saturating_add(FLUSH_POLL));
        }
    }

    fn arm_ttl(&mut self) {
        match self.outbox.next_expiry(self.open_socket()) {
            Some(at) => self.set_timer(TimerKind::Ttl, at),
            None => self.cancel_timer(TimerKind::Ttl),
        }
    }

    fn arm_gap(&mut self) {
        match self
            .streams
            .next_gap_deadline(self.config.stream_gap_timeout)
        {
            Some(at) => self.set_timer(TimerKind::StreamGap, at),
            None => self.cancel_timer(TimerKind::StreamGap),
        }
    }

    fn write(&mut self, socket: SocketId, text: String) {
        let len = text.len() as u64;
        self.stats.frames_out += 1;
        self.stats.bytes_out += len;
        self.buffered = self.buffered.saturating_add(len);
        self.actions.push(Action::SendFrame { socket, text });
    }

    fn close_socket(&mut self, socket: SocketId, code: u16, reason: &str) {
        self.actions.push(Action::Close {
            socket,
            code,
            reason: reason.to_owned(),
        });
    }

    fn message_state(&mut self, id: MessageId, state: DeliveryState) {
        self.actions.push(Action::MessageState { id, state });
    }

    fn report(&mut self, report: Report) {
        self.actions.push(Action::Report(report));
    }

    fn emit_status(&mut self) {
        let status = self.status();
        if status != self.last_status {
            self.last_status = status.clone();
            self.actions.push(Action::StatusChanged(status));
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
