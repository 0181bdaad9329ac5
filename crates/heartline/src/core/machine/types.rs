//! The machine's interface: the events it is fed, the actions it answers
//! with, its timers, and the errors of its methods.

use serde_json::Value;

use crate::core::{
    ConnectionStatus, DeliveryState, Inbound, MessageId, Millis, Report, SocketId, Transport,
};

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

    pub(super) fn index(self) -> usize {
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
    /// [`Connection::endpoint`](super::Connection::endpoint) (or the driver's own URL when it gave the
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
    /// The URL is [`Connection::endpoint`](super::Connection::endpoint) (read it when carrying out this
    /// action), or the driver's own when it gave the core none.
    /// Any earlier socket has been closed by a preceding [`Action::Close`].
    Open {
        /// The id to tag its events with.
        socket: SocketId,
        /// A WebSocket, or a long-poll session at the URL's
        /// [poll base](crate::core::poll::poll_base).
        transport: Transport,
    },
    /// Open a WebSocket to [`Connection::endpoint`](super::Connection::endpoint) only to see whether the
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
    /// Time-to-live overriding [`Config::default_ttl`](crate::core::Config::default_ttl).
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
