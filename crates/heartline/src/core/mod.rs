//! The sans-IO core of the socket layer: every connection policy (backoff,
//! connect timeout, heartbeat, outbox and acks, stream resume, online and
//! visibility handling) in a pure state machine. No browser, timer or I/O
//! dependency: it is fed [`Event`]s with the current time and answers with
//! [`Action`]s, so it is tested natively with a virtual clock.
//!
//! It knows nothing of chat or dashboards: it works on JSON text frames
//! tagged by a `socketType` string, following the [wire contract](contract),
//! written once there: ping/pong with `t`, an `ack` or an `error` with the
//! `id` of any message, the error codes (`rate_limited` with its retry
//! hint), the server's `limits` beside the client's send window, stream
//! fields `stream`/`seq`/`epoch`, and the final close codes. Control types
//! (`ack`, `pong`, `ping`) are handled by the core and not delivered;
//! `error` and `limits` are handled and delivered.
//!
//! # Driver contract
//!
//! - Time is [`Millis`], a plain millisecond count (`Date.now()` in the
//!   browser). Pass the current time with every call.
//! - Create one [`Connection`] per server (or deployment of servers) with
//!   [`Connection::new`]`(config, seed)` and give it the socket URLs with
//!   [`Connection::set_endpoints`] (one URL, or several to fail over
//!   between; a driver with one URL may also keep it itself). Feed it
//!   [`Event::Start`] to connect.
//! - For every event call [`Connection::handle`] and perform the returned
//!   actions **in order**:
//!   - [`Action::Open`]`{socket, transport}`: create a WebSocket to
//!     [`Connection::endpoint`] (the core chose it: see [`Endpoints`] for
//!     the failover policy), or for [`Transport::LongPoll`] a poll session
//!     at its [poll base](poll::poll_base) (see [`poll`]), and tag all its
//!     events with `socket` ([`Event::Opened`], [`Event::Frame`],
//!     [`Event::Closed`], [`Event::Error`]).
//!   - [`Action::Probe`]`{probe}`: open a WebSocket to
//!     [`Connection::endpoint`] only to learn whether the upgrade works;
//!     close it as soon as it opens and report [`Event::ProbeOpened`], or
//!     [`Event::ProbeFailed`] if it errs or closes first. Send nothing on it.
//!     [`Action::EndProbe`]: close it if it is still there.
//!   - [`Action::SendFrame`]: `ws.send_with_str(text)`; after a batch of
//!     them, report [`Event::BufferedAmount`] (the real `bufferedAmount`).
//!   - [`Action::Close`]: `ws.close_with_code_and_reason(code, reason)` and
//!     drop the socket (its later events may still be fed; they are
//!     ignored).
//!   - [`Action::SetTimer`]`{kind, at}`: (re)arm the one timer of `kind` to
//!     fire [`Event::TimerFired`]`(kind)` at `at` (replacing any pending one).
//!     [`Action::CancelTimer`]: clear it. The core arms
//!     [`TimerKind::Flush`] after writes while its buffer estimate is above
//!     zero: a driver that can read the real value reports
//!     [`Event::BufferedAmount`] instead of firing it, and the core keeps
//!     arming it until the buffer drains. Handle unknown kinds generically
//!     (fire [`Event::TimerFired`]`(kind)`).
//!   - [`Action::Deliver`]: `registry.dispatch(&inbound)` on the
//!     [`Registry`] (hand a clone of it to [`Connection::set_registry`] so
//!     unknown types are counted).
//!   - [`Action::StatusChanged`], [`Action::MessageState`],
//!     [`Action::Report`]: update UI state and logs; read
//!     [`Connection::stats`] whenever you render.
//! - The core keeps a bounded [timeline](Connection::timeline) of notable
//!   events ([`TimelineEntry`]) and the last 60 round-trip times
//!   ([`Connection::rtt_history`]). Re-render a timeline view when
//!   [`Connection::timeline_version`] changes (once per batch of events,
//!   not per frame).
//! - Methods that are not events ([`Connection::send`],
//!   [`Connection::send_volatile_at`], [`Connection::cancel`],
//!   [`Connection::add_standing`], [`Connection::restore_outbox`]) queue
//!   actions: call [`Connection::drain_actions`] after them and perform them
//!   the same way.
//! - Browser signals: `online`/`offline` → [`Event::Online`] /
//!   [`Event::Offline`]; `visibilitychange` → [`Event::Visible`] /
//!   [`Event::Hidden`]; a "retry" button → [`Event::RetryNow`]; unmount or
//!   logout → [`Event::Stop`]; no `WebSocket` → [`Event::Unsupported`].
//!
//! # Example: a whole session with a virtual clock
//!
//! ```
//! use heartline::core::*;
//! use serde_json::json;
//!
//! let mut conn = Connection::new(Config::default(), 7);
//! conn.set_greeting(Some(Box::new(|| Some(json!({"socketType":"hello","name":"ada"})))));
//! conn.add_standing("room:lobby", json!({"socketType":"join","room":"lobby"}), Some("lobby".into()))
//!     .unwrap();
//!
//! // Start: the core asks for a socket.
//! let actions = conn.handle(0, Event::Start);
//! assert_eq!(actions[0], Action::Open { socket: SocketId(1), transport: Transport::WebSocket });
//!
//! // A message sent before the link is up waits in the outbox.
//! let id = conn.send(10, json!({"socketType":"chat.send","room":"lobby","text":"hi"}), SendOptions::default())
//!     .unwrap();
//! conn.drain_actions();
//!
//! // Opened: greeting, standing subscriptions, then the outbox, in order.
//! let actions = conn.handle(50, Event::Opened { socket: SocketId(1) });
//! let frames: Vec<&str> = actions.iter().filter_map(|a| match a {
//!     Action::SendFrame { text, .. } => Some(text.as_str()),
//!     _ => None,
//! }).collect();
//! assert!(frames[0].contains("hello"));
//! assert!(frames[1].contains("join"));
//! assert!(frames[2].contains(id.as_str()));
//!
//! // The server acks it and a chat message arrives.
//! let ack = format!(r#"{{"socketType":"ack","id":"{id}"}}"#);
//! let actions = conn.handle(60, Event::Frame { socket: SocketId(1), data: FrameData::Text(ack) });
//! assert!(actions.contains(&Action::MessageState { id: id.clone(), state: DeliveryState::Acked }));
//! let chat = r#"{"socketType":"chat.message","stream":"lobby","seq":1,"text":"hi"}"#;
//! let actions = conn.handle(70, Event::Frame { socket: SocketId(1), data: FrameData::Text(chat.into()) });
//! assert!(matches!(&actions[0], Action::Deliver(msg) if &*msg.socket_type == "chat.message"));
//!
//! // The link drops; the core waits, then reconnects and resumes with `since`.
//! let actions = conn.handle(80, Event::Closed { socket: SocketId(1), code: 1006, reason: String::new(), was_clean: false });
//! let Some(ConnectionStatus::Reconnecting { at, .. }) = actions.iter().find_map(|a| match a {
//!     Action::StatusChanged(s) => Some(s.clone()),
//!     _ => None,
//! }) else { panic!("expected a reconnect") };
//! let actions = conn.handle(at, Event::TimerFired(TimerKind::Reconnect));
//! assert!(actions.contains(&Action::Open { socket: SocketId(2), transport: Transport::WebSocket }));
//! let actions = conn.handle(at + 20, Event::Opened { socket: SocketId(2) });
//! assert!(actions.iter().any(|a| matches!(a, Action::SendFrame { text, .. } if text.contains(r#""since":1"#))));
//! ```

mod backoff;
mod config;
pub mod contract;
mod endpoints;
mod heartbeat;
mod inbound;
mod machine;
mod outbox;
mod pacer;
pub mod poll;
mod registry;
pub mod share;
mod stats;
mod status;
mod streams;
mod timeline;
mod transport;

pub use backoff::Backoff;
pub use config::{
    BackoffConfig, Config, DegradedThresholds, HeartbeatConfig, HeartbeatStyle, Jitter,
};
pub use endpoints::Endpoints;
pub use inbound::{Inbound, ParseError, Report, StreamPos};
pub use machine::{
    Action, CancelError, Connection, Event, FrameData, GreetingProvider, RestoreError, SendError,
    SendOptions, TimerKind,
};
pub use outbox::{DeliveryState, MessageFailure, MessageId};
pub use registry::{Handler, Registry, SubscriptionGuard};
pub use stats::Stats;
pub use status::{ConnectionStatus, FailureCode, FailureReason};
pub use timeline::{LinkLoss, RefusedKind, TimelineEntry, TimelineEvent};
pub use transport::{FallbackConfig, Transport};

/// A point in time or a duration, in milliseconds. The driver passes
/// `Date.now()`-like values; tests pass a virtual clock.
///
/// ```
/// let five_seconds: heartline::core::Millis = 5_000;
/// # let _ = five_seconds;
/// ```
pub type Millis = u64;

/// Identifies one WebSocket, chosen by the core in [`Action::Open`]. Events
/// of any socket other than the live one are ignored, which is how at most
/// one socket is ever connecting or open.
///
/// ```
/// use heartline::core::SocketId;
/// assert_eq!(SocketId(3).to_string(), "socket#3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

impl std::fmt::Display for SocketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "socket#{}", self.0)
    }
}

/// Close code of an intentional close (by the app, or of an abandoned
/// attempt).
///
/// ```
/// assert_eq!(heartline::core::CLOSE_NORMAL, 1000);
/// ```
pub const CLOSE_NORMAL: u16 = 1000;
/// Close code the core uses when its heartbeat finds the link silent.
///
/// ```
/// assert_eq!(heartline::core::CLOSE_HEARTBEAT_LOST, 4000);
/// ```
pub const CLOSE_HEARTBEAT_LOST: u16 = 4000;
/// Close code by which a server refuses the greeting: final by default,
/// reported as [`FailureReason::AuthRefused`].
///
/// ```
/// assert_eq!(heartline::core::CLOSE_AUTH_REFUSED, 4001);
/// ```
pub const CLOSE_AUTH_REFUSED: u16 = 4001;
/// Close code of a server that gives up on a client breaking the protocol:
/// final by default, reported as [`FailureReason::ProtocolError`].
///
/// ```
/// assert_eq!(heartline::core::CLOSE_PROTOCOL_ERROR, 4003);
/// ```
pub const CLOSE_PROTOCOL_ERROR: u16 = 4003;
