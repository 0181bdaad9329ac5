//! The Heartline wire protocol: JSON text frames, each an object tagged by its
//! `socketType`, one enum per direction.
//!
//! The socket layer (`heartline`) relies on a few conventions that every frame
//! here follows, so it can stay ignorant of chat and dashboards:
//!
//! - any client message may carry a client-chosen `id` (the socket layer sets
//!   it on every reliable send, whatever the type). The server answers each
//!   one, once handled, with [`ServerMessage::Ack`], or refuses it with
//!   [`ServerMessage::Error`] naming the `id`. A re-sent `id` is acked again
//!   without being handled twice. A refusal with
//!   [`error_code::RATE_LIMITED`] carries `retry_after_ms`: the message was
//!   not handled and is to be sent again after that wait; any other refusal
//!   is final. [`message_id`] reads the `id` of any frame;
//! - messages of a resumable stream carry a `stream` key, an `epoch` and a
//!   per-stream `seq` (1, 2, 3, … without gaps within one epoch); a
//!   subscription names the last `seq` it has seen in `since` (with its
//!   `epoch`) and the server sends what came after. A new epoch means the
//!   stream started over: the client resets its position;
//! - [`ClientMessage::Ping`] is answered by [`ServerMessage::Pong`] echoing the
//!   sender's timestamp, so the client measures the round-trip time. The server
//!   also answers the plain text frame `"ping"` with `"pong"`;
//! - [`ServerMessage::Limits`] comes first on every connection: the rate and
//!   burst of the server's per-connection token bucket, so a client paces
//!   itself under them;
//! - close codes 4001 and 4003 ([`close_code`]) are final: do not reconnect.
//!
//! Beyond the live stream, a client pages back through a room's history
//! with [`ClientMessage::History`] (answered by [`ServerMessage::History`],
//! at most [`MAX_HISTORY_PAGE`] messages a page), and follows the live room
//! directory in [`ServerMessage::Rooms`], sent after `welcome` and on every
//! change.
//!
//! ```
//! use heartline_protocol::{ClientMessage, Pong, ServerMessage};
//!
//! let frame = r#"{"socketType":"ping","t":12.5}"#;
//! let msg: ClientMessage = serde_json::from_str(frame).unwrap();
//! assert_eq!(msg, ClientMessage::Ping { t: 12.5 });
//!
//! let reply = ServerMessage::Pong(Pong { t: 12.5 });
//! assert_eq!(reply.to_json(), r#"{"socketType":"pong","t":12.5}"#);
//! ```
//!
//! Each [`ServerMessage`] variant wraps a payload struct ([`Pong`],
//! [`Presence`], [`HistoryPage`], …) carrying its `socketType` as a
//! `SOCKET_TYPE` const. A client that dispatches on `socketType` itself
//! decodes the payload struct directly from the frame and never needs the
//! (internally tagged, so comparatively costly to decode) enum. Decoding a
//! payload does not look at `socketType` (frames of another type may happen
//! to carry the same fields): dispatch on `socketType` first.
//!
//! ```
//! use heartline_protocol::Presence;
//!
//! let frame = r#"{"socketType":"presence","room":"lobby","users":["ada"],"count":1}"#;
//! let presence: Presence = serde_json::from_str(frame).unwrap();
//! assert_eq!(presence.users, ["ada"]);
//! assert_eq!(Presence::SOCKET_TYPE, "presence");
//! ```

use serde::{Deserialize, Serialize};

/// Longest accepted user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest accepted room name, in characters.
pub const MAX_ROOM_CHARS: usize = 32;
/// Longest chat message, in characters after trimming.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Most names a `presence` frame lists ([`Presence::users`]); its
/// [`Presence::count`] says how many there are in all. Keeps the frame small
/// (and a room's fan-out linear) however many people are in the room.
pub const MAX_PRESENCE_NAMES: usize = 50;
/// Largest frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most messages one [`ClientMessage::History`] page may ask for.
pub const MAX_HISTORY_PAGE: u32 = 200;
/// The plain-text heartbeat some servers speak instead of JSON.
pub const PLAIN_PING: &str = "ping";
/// The plain-text reply to [`PLAIN_PING`].
pub const PLAIN_PONG: &str = "pong";

/// Close codes in the private 4000–4999 range used by Heartline.
///
/// ```
/// assert_eq!(heartline_protocol::close_code::AUTH_REFUSED, 4001);
/// ```
pub mod close_code {
    /// The client's own heartbeat found the link silent.
    pub const HEARTBEAT_LOST: u16 = 4000;
    /// `hello` was refused (bad name, bad token). Do not retry as is.
    pub const AUTH_REFUSED: u16 = 4001;
    /// Too many messages too fast.
    pub const RATE_LIMITED: u16 = 4002;
    /// The client broke the protocol beyond repair (e.g. no `hello`).
    pub const PROTOCOL_ERROR: u16 = 4003;
    /// The server is over a connection limit.
    pub const TRY_AGAIN_LATER: u16 = 4004;
    /// The server stopped answering in time (idle timeout on its side).
    pub const IDLE_TIMEOUT: u16 = 4005;
}

/// Error codes carried by [`ServerMessage::Error`].
///
/// ```
/// assert_eq!(heartline_protocol::error_code::BAD_JSON, "bad_json");
/// ```
pub mod error_code {
    /// The frame was not valid JSON.
    pub const BAD_JSON: &str = "bad_json";
    /// The frame had no `socketType`, or one the server does not know.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A field failed validation (empty text, long room name, …).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// The client is sending faster than allowed.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The message needs a `hello` first.
    pub const NOT_WELCOMED: &str = "not_welcomed";
    /// A server-side limit was reached (rooms, subscriptions, …).
    pub const LIMIT_REACHED: &str = "limit_reached";
    /// The server failed to handle a valid message (e.g. storage error).
    pub const INTERNAL: &str = "internal";
    /// The message names a room that does not exist (e.g. a `history`
    /// request for a room nobody created, or one that expired).
    pub const UNKNOWN_ROOM: &str = "unknown_room";
}

/// A frame sent by the client to the server.
///
/// ```
/// use heartline_protocol::ClientMessage;
/// let msg = ClientMessage::ChatSend {
///     id: "c-1".into(),
///     room: "lobby".into(),
///     text: "hi".into(),
/// };
/// let json = msg.to_json();
/// assert!(json.contains(r#""socketType":"chat.send""#));
/// assert_eq!(serde_json::from_str::<ClientMessage>(&json).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "socketType")]
pub enum ClientMessage {
    /// Heartbeat; `t` is the sender's clock in milliseconds, echoed in `pong`.
    #[serde(rename = "ping")]
    Ping {
        /// Sender's timestamp (ms).
        t: f64,
    },
    /// Greeting: who this is. Answered by `welcome`, or a close with
    /// [`close_code::AUTH_REFUSED`].
    #[serde(rename = "hello")]
    Hello {
        /// Display name, 1–32 characters, no control characters.
        name: String,
        /// A session token from an earlier `welcome`, to keep the identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Enter a room and receive its history after `since`, then live messages.
    #[serde(rename = "join")]
    Join {
        /// Room name.
        room: String,
        /// Last `seq` already seen; `None` means "the recent history".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// The stream epoch `since` belongs to. When the room's epoch is
        /// another one (its history started over), `since` is ignored and
        /// the recent history is sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// Without `since`: replay only the most recent `limit` messages
        /// (the server clamps it to 1..=its history maximum; absent means
        /// the server's default, 50). Ignored with `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Leave a room.
    #[serde(rename = "leave")]
    Leave {
        /// Room name.
        room: String,
    },
    /// Post a chat message. Reliable: acked by `ack {id}`.
    #[serde(rename = "chat.send")]
    ChatSend {
        /// Client-chosen id, unique per session; re-sends reuse it.
        id: String,
        /// Room name.
        room: String,
        /// 1–2000 characters after trimming.
        text: String,
    },
    /// "I am typing" in a room. Volatile: relayed, never stored.
    #[serde(rename = "typing")]
    Typing {
        /// Room name.
        room: String,
    },
    /// Start receiving `metrics.sample` frames.
    #[serde(rename = "metrics.subscribe")]
    MetricsSubscribe {
        /// Wanted sampling interval in ms (clamped by the server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_ms: Option<u64>,
    },
    /// Stop receiving `metrics.sample` frames.
    #[serde(rename = "metrics.unsubscribe")]
    MetricsUnsubscribe,
    /// Ask for one page of a room's older history: up to `limit` messages
    /// with `seq < before`, the newest of them. Answered by
    /// [`ServerMessage::History`], then `ack {id}`; refused with
    /// [`error_code::INVALID_FIELD`] (bad room, `limit` outside
    /// 1..=[`MAX_HISTORY_PAGE`], `before` 0) or [`error_code::UNKNOWN_ROOM`].
    /// The room need not be joined.
    ///
    /// ```
    /// use heartline_protocol::ClientMessage;
    /// let msg = ClientMessage::History {
    ///     id: "h-1".into(),
    ///     room: "lobby".into(),
    ///     before: 120,
    ///     limit: 50,
    /// };
    /// assert_eq!(
    ///     msg.to_json(),
    ///     r#"{"socketType":"history","id":"h-1","room":"lobby","before":120,"limit":50}"#
    /// );
    /// ```
    #[serde(rename = "history")]
    History {
        /// Client-chosen id; the page is followed by `ack {id}`.
        id: String,
        /// Room name.
        room: String,
        /// Only messages with `seq < before` (at least 1; `u64::MAX` for
        /// "the newest").
        before: u64,
        /// Most messages wanted, 1..=[`MAX_HISTORY_PAGE`].
        limit: u32,
    },
}

/// A frame sent by the server to the client.
///
/// Every variant wraps a payload struct named after it ([`Pong`],
/// [`Welcome`], [`Presence`], …): the frame is the payload's fields plus
/// `socketType`, and each payload names its `socketType` in a
/// `SOCKET_TYPE` const. A client that wants one kind of frame can decode
/// the payload struct straight from the frame's object (the extra
/// `socketType` key is ignored) without going through this enum.
///
/// ```
/// use heartline_protocol::{Ack, ServerMessage};
/// let json = r#"{"socketType":"ack","id":"c-1"}"#;
/// let msg: ServerMessage = serde_json::from_str(json).unwrap();
/// assert_eq!(msg, ServerMessage::Ack(Ack { id: "c-1".into() }));
/// // The payload alone decodes from the same frame.
/// let ack: Ack = serde_json::from_str(json).unwrap();
/// assert_eq!(ack.id, "c-1");
/// assert_eq!(Ack::SOCKET_TYPE, "ack");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "socketType")]
pub enum ServerMessage {
    /// Reply to `ping`, echoing its timestamp.
    #[serde(rename = "pong")]
    Pong(Pong),
    /// The server's per-connection limits, sent first on every connection.
    #[serde(rename = "limits")]
    Limits(Limits),
    /// `hello` accepted.
    #[serde(rename = "welcome")]
    Welcome(Welcome),
    /// A reliable client message was handled (stored, if it stores).
    #[serde(rename = "ack")]
    Ack(Ack),
    /// A chat message in a room's stream.
    #[serde(rename = "chat.message")]
    ChatMessage(ChatMessage),
    /// Sent after the history that answers a `join`: the room is live.
    #[serde(rename = "joined")]
    Joined(Joined),
    /// Who is in a room now.
    #[serde(rename = "presence")]
    Presence(Presence),
    /// Someone is typing in a room.
    #[serde(rename = "typing")]
    Typing(Typing),
    /// One page of a room's history, answering [`ClientMessage::History`]
    /// (its `ack` follows).
    #[serde(rename = "history")]
    History(HistoryPage),
    /// The live room directory.
    #[serde(rename = "rooms")]
    Rooms(Rooms),
    /// One reading of the host and the server.
    #[serde(rename = "metrics.sample")]
    MetricsSample(MetricsSample),
    /// Something the client sent was refused.
    #[serde(rename = "error")]
    Error(ErrorFrame),
}

/// Implements `SOCKET_TYPE` on a payload and `From<payload>` for
/// [`ServerMessage`]. The string must equal the variant's serde rename
/// (a test checks every variant).
macro_rules! payload {
    ($payload:ident => $variant:ident, $socket_type:literal) => {
        impl $payload {
            #[doc = concat!("The `socketType` of this frame: `\"", $socket_type, "\"`.")]
            pub const SOCKET_TYPE: &'static str = $socket_type;
        }

        impl From<$payload> for ServerMessage {
            fn from(payload: $payload) -> Self {
                ServerMessage::$variant(payload)
            }
        }
    };
}

payload!(Pong => Pong, "pong");
payload!(Limits => Limits, "limits");
payload!(Welcome => Welcome, "welcome");
payload!(Ack => Ack, "ack");
payload!(ChatMessage => ChatMessage, "chat.message");
payload!(Joined => Joined, "joined");
payload!(Presence => Presence, "presence");
payload!(Typing => Typing, "typing");
payload!(HistoryPage => History, "history");
payload!(Rooms => Rooms, "rooms");
payload!(MetricsSample => MetricsSample, "metrics.sample");
payload!(ErrorFrame => Error, "error");

/// `pong`: reply to [`ClientMessage::Ping`], echoing its timestamp.
///
/// ```
/// use heartline_protocol::{Pong, ServerMessage};
/// assert_eq!(
///     ServerMessage::Pong(Pong { t: 12.5 }).to_json(),
///     r#"{"socketType":"pong","t":12.5}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The timestamp the client sent.
    pub t: f64,
}

/// `limits`: the server's per-connection limits, sent first on every
/// connection so a client can pace itself under them (no `rate_limited`
/// refusals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Frames per second allowed, sustained (token bucket rate).
    pub rate: f64,
    /// Frames allowed in one burst (token bucket capacity).
    pub burst: u32,
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
}

/// `welcome`: `hello` accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// This connection's session id.
    pub session: String,
    /// The accepted display name.
    pub name: String,
    /// A token to present in the next `hello` to keep this identity.
    pub token: String,
    /// Rooms that exist now.
    pub rooms: Vec<String>,
}

/// `ack`: a reliable client message was handled (stored, if it stores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The client's message id.
    pub id: String,
}

/// `joined`: sent after the history that answers a `join`: the room is
/// live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// Room name (also the stream key).
    pub stream: String,
    /// Highest `seq` in the room when the history was sent.
    pub last_seq: u64,
    /// The room's stream epoch (see [`ChatMessage::epoch`]).
    pub epoch: u64,
}

/// `presence`: who is in a room now.
///
/// ```
/// use heartline_protocol::{MAX_PRESENCE_NAMES, Presence};
///
/// let frame = r#"{"socketType":"presence","room":"lobby","users":["ada","bo"],"count":2}"#;
/// let p: Presence = serde_json::from_str(frame).unwrap();
/// assert_eq!((p.users.len(), p.count), (2, 2));
/// assert!(p.users.len() <= MAX_PRESENCE_NAMES);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Room name.
    pub room: String,
    /// Display names, sorted: the first [`MAX_PRESENCE_NAMES`] of them.
    pub users: Vec<String>,
    /// How many distinct display names are in the room (at least
    /// `users.len()`; more when the list was cut).
    pub count: u32,
}

/// `typing`: someone is typing in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// Room name.
    pub room: String,
    /// Display name of the typist.
    pub from: String,
}

/// `history`: one page of a room's history, answering
/// [`ClientMessage::History`] (its `ack` follows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Room name.
    pub room: String,
    /// The room's stream epoch (see [`ChatMessage::epoch`]).
    pub epoch: u64,
    /// The `before` of the request, echoed.
    pub before: u64,
    /// Messages with `seq < before`, ascending by `seq`, the newest ones
    /// first to be kept: a page may hold fewer than `limit` when they
    /// would not fit in one frame of [`MAX_FRAME_BYTES`].
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist: ask again with `before` set to the
    /// first message's `seq`.
    pub has_more: bool,
}

/// `rooms`: the live room directory, every room and how busy it is. Sent
/// right after `welcome`, then whenever it changes (at most about once a
/// second; the latest state always follows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rooms {
    /// Every room, sorted by name.
    pub rooms: Vec<RoomSummary>,
}

/// `error`: something the client sent was refused; the connection stays
/// usable unless a close follows.
///
/// ```
/// use heartline_protocol::{error_code, ErrorFrame, ServerMessage};
/// let refusal = ErrorFrame {
///     code: error_code::RATE_LIMITED.into(),
///     message: "slow down".into(),
///     id: Some("c-9".into()),
///     retry_after_ms: Some(250),
/// };
/// assert_eq!(
///     ServerMessage::from(refusal).to_json(),
///     r#"{"socketType":"error","code":"rate_limited","message":"slow down","id":"c-9","retry_after_ms":250}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// One of [`error_code`].
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The id of the client message this refers to, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// With [`error_code::RATE_LIMITED`]: wait this long, then send the
    /// message again (it was not handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// A stored chat message, as broadcast and as replayed from history.
///
/// ```
/// use heartline_protocol::{ChatMessage, ServerMessage};
/// let m = ChatMessage {
///     stream: "lobby".into(),
///     epoch: 1,
///     seq: 7,
///     id: "c-1".into(),
///     from: "ada".into(),
///     text: "hello".into(),
///     at: 1_700_000_000_000,
/// };
/// let json = ServerMessage::ChatMessage(m.clone()).to_json();
/// assert!(json.contains(r#""seq":7"#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Room name; the stream key the socket layer orders by.
    pub stream: String,
    /// Identifies one run of the room's history: it changes when the
    /// history starts over (room expired and created again, database
    /// wiped), so `seq` 1 of a new epoch is not mistaken for a duplicate.
    /// At most 2^53 - 1, so JavaScript reads it exactly.
    pub epoch: u64,
    /// Per-room sequence number, from 1, without gaps within one epoch.
    pub seq: u64,
    /// The sender's client message id.
    pub id: String,
    /// Sender's display name.
    pub from: String,
    /// Message text.
    pub text: String,
    /// Server time of storage, ms since the Unix epoch.
    pub at: i64,
}

/// One room in [`ServerMessage::Rooms`].
///
/// ```
/// use heartline_protocol::{RoomSummary, Rooms, ServerMessage};
/// let rooms = ServerMessage::Rooms(Rooms {
///     rooms: vec![RoomSummary { name: "lobby".into(), epoch: 7, last_seq: 3, online: 2 }],
/// });
/// assert_eq!(
///     rooms.to_json(),
///     r#"{"socketType":"rooms","rooms":[{"name":"lobby","epoch":7,"last_seq":3,"online":2}]}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// Room name.
    pub name: String,
    /// The room's stream epoch (see [`ChatMessage::epoch`]).
    pub epoch: u64,
    /// The room's highest `seq` (0: no message yet).
    pub last_seq: u64,
    /// Distinct users currently joined (one person with two tabs counts
    /// once).
    pub online: u32,
}

/// One sample of host and server metrics.
///
/// ```
/// use heartline_protocol::MetricsSample;
/// let s = MetricsSample::default();
/// assert_eq!(s.cpu_per_core.len(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsSample {
    /// Server time of the reading, ms since the Unix epoch.
    pub at: i64,
    /// Total CPU use, percent (0–100).
    pub cpu_total: f32,
    /// CPU use per core, percent.
    pub cpu_per_core: Vec<f32>,
    /// Used memory, bytes.
    pub mem_used: u64,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Network bytes received per second, all interfaces.
    pub net_rx_per_sec: u64,
    /// Network bytes sent per second, all interfaces.
    pub net_tx_per_sec: u64,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Frames received per second by the server.
    pub messages_in_per_sec: f64,
    /// Frames sent per second by the server.
    pub messages_out_per_sec: f64,
    /// Rooms that exist.
    pub rooms: u64,
    /// Server uptime, seconds.
    pub uptime_secs: u64,
}

impl ClientMessage {
    /// The frame's text: compact JSON.
    ///
    /// ```
    /// use heartline_protocol::ClientMessage;
    /// assert_eq!(
    ///     ClientMessage::MetricsUnsubscribe.to_json(),
    ///     r#"{"socketType":"metrics.unsubscribe"}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

impl ServerMessage {
    /// The frame's text: compact JSON.
    ///
    /// ```
    /// use heartline_protocol::{Ack, ServerMessage};
    /// let json = ServerMessage::Ack(Ack { id: "x".into() }).to_json();
    /// assert_eq!(json, r#"{"socketType":"ack","id":"x"}"#);
    /// ```
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// The frame's `socketType`: its payload's `SOCKET_TYPE`.
    ///
    /// ```
    /// use heartline_protocol::{Ack, ServerMessage};
    /// assert_eq!(ServerMessage::from(Ack { id: "x".into() }).socket_type(), Ack::SOCKET_TYPE);
    /// ```
    pub fn socket_type(&self) -> &'static str {
        match self {
            ServerMessage::Pong(_) => Pong::SOCKET_TYPE,
            ServerMessage::Limits(_) => Limits::SOCKET_TYPE,
            ServerMessage::Welcome(_) => Welcome::SOCKET_TYPE,
            ServerMessage::Ack(_) => Ack::SOCKET_TYPE,
            ServerMessage::ChatMessage(_) => ChatMessage::SOCKET_TYPE,
            ServerMessage::Joined(_) => Joined::SOCKET_TYPE,
            ServerMessage::Presence(_) => Presence::SOCKET_TYPE,
            ServerMessage::Typing(_) => Typing::SOCKET_TYPE,
            ServerMessage::History(_) => HistoryPage::SOCKET_TYPE,
            ServerMessage::Rooms(_) => Rooms::SOCKET_TYPE,
            ServerMessage::MetricsSample(_) => MetricsSample::SOCKET_TYPE,
            ServerMessage::Error(_) => ErrorFrame::SOCKET_TYPE,
        }
    }
}

/// The `id` of a client frame, whatever its type: the key the server acks or
/// refuses it by. `None` when absent or not a string.
///
/// ```
/// use heartline_protocol::message_id;
/// let frame: serde_json::Value =
///     serde_json::from_str(r#"{"socketType":"join","room":"lobby","id":"c-7"}"#).unwrap();
/// assert_eq!(message_id(&frame), Some("c-7"));
/// assert_eq!(message_id(&serde_json::json!({"socketType":"typing"})), None);
/// ```
pub fn message_id(frame: &serde_json::Value) -> Option<&str> {
    frame.get("id").and_then(serde_json::Value::as_str)
}

fn to_json<T: Serialize>(value: &T) -> String {
    // These types hold only strings, numbers and sequences of them, which
    // always serialize; the fallback keeps that fact out of callers' types.
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"socketType":"error","code":"internal","message":"{e}"}}"#)
    })
}

/// Why a name, room or text was refused.
///
/// ```
/// use heartline_protocol::{validate_name, FieldError};
/// assert_eq!(validate_name(""), Err(FieldError::Empty("name")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// Empty after trimming.
    Empty(&'static str),
    /// Longer than allowed (field, maximum characters).
    TooLong(&'static str, usize),
    /// Contains a control character.
    ControlCharacter(&'static str),
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::Empty(field) => write!(f, "{field} must not be empty"),
            FieldError::TooLong(field, max) => {
                write!(f, "{field} must be at most {max} characters")
            }
            FieldError::ControlCharacter(field) => {
                write!(f, "{field} must not contain control characters")
            }
        }
    }
}

impl std::error::Error for FieldError {}

fn validate_label(field: &'static str, value: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::Empty(field));
    }
    if trimmed.chars().count() > max {
        return Err(FieldError::TooLong(field, max));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacter(field));
    }
    Ok(trimmed.to_owned())
}

/// Checks a display name and returns it trimmed.
///
/// ```
/// use heartline_protocol::validate_name;
/// assert_eq!(validate_name("  ada ").unwrap(), "ada");
/// assert!(validate_name(&"x".repeat(33)).is_err());
/// assert!(validate_name("a\u{7}b").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<String, FieldError> {
    validate_label("name", name, MAX_NAME_CHARS)
}

/// Checks a room name and returns it trimmed.
///
/// ```
/// use heartline_protocol::validate_room;
/// assert_eq!(validate_room("lobby").unwrap(), "lobby");
/// assert!(validate_room("").is_err());
/// ```
pub fn validate_room(room: &str) -> Result<String, FieldError> {
    validate_label("room", room, MAX_ROOM_CHARS)
}

/// Checks a chat text and returns it trimmed. Newlines and tabs are allowed,
/// other control characters are not.
///
/// ```
/// use heartline_protocol::validate_text;
/// assert_eq!(validate_text(" hi\nthere ").unwrap(), "hi\nthere");
/// assert!(validate_text("   ").is_err());
/// assert!(validate_text(&"x".repeat(2001)).is_err());
/// ```
pub fn validate_text(text: &str) -> Result<String, FieldError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(FieldError::Empty("text"));
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldError::TooLong("text", MAX_TEXT_CHARS));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::ControlCharacter("text"));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip_client(msg: ClientMessage) {
        let json = msg.to_json();
        let back: ClientMessage = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, msg, "{json}");
    }

    #[test]
    fn every_client_message_round_trips() {
        for msg in [
            ClientMessage::Ping { t: 1.5 },
            ClientMessage::Hello {
                name: "ada".into(),
                token: None,
            },
            ClientMessage::Hello {
                name: "ada".into(),
                token: Some("tok".into()),
            },
            ClientMessage::Join {
                room: "lobby".into(),
                since: Some(3),
                epoch: Some(9),
                limit: None,
            },
            ClientMessage::Join {
                room: "lobby".into(),
                since: None,
                epoch: None,
                limit: None,
            },
            ClientMessage::Join {
                room: "lobby".into(),
                since: None,
                epoch: None,
                limit: Some(20),
            },
            ClientMessage::History {
                id: "h1".into(),
                room: "lobby".into(),
                before: 121,
                limit: 50,
            },
            ClientMessage::Leave {
                room: "lobby".into(),
            },
            ClientMessage::ChatSend {
                id: "c1".into(),
                room: "lobby".into(),
                text: "hi".into(),
            },
            ClientMessage::Typing {
                room: "lobby".into(),
            },
            ClientMessage::MetricsSubscribe {
                interval_ms: Some(500),
            },
            ClientMessage::MetricsUnsubscribe,
        ] {
            round_trip_client(msg);
        }
    }

    fn chat(seq: u64) -> ChatMessage {
        ChatMessage {
            stream: "lobby".into(),
            epoch: 3,
            seq,
            id: "c1".into(),
            from: "ada".into(),
            text: "hi \"there\"\n".into(),
            at: 1_700_000_000_005,
        }
    }

    /// Every server frame with its exact text. The strings were produced by
    /// the protocol before its variants became newtypes of payload structs:
    /// the wire format is byte-for-byte what it was.
    fn server_frames() -> Vec<(ServerMessage, &'static str)> {
        vec![
            (Pong { t: 2.0 }.into(), r#"{"socketType":"pong","t":2.0}"#),
            (Pong { t: 12.5 }.into(), r#"{"socketType":"pong","t":12.5}"#),
            (
                Limits {
                    rate: 50.0,
                    burst: 100,
                    max_frame_bytes: MAX_FRAME_BYTES,
                }
                .into(),
                r#"{"socketType":"limits","rate":50.0,"burst":100,"max_frame_bytes":65536}"#,
            ),
            (
                Welcome {
                    session: "s-1".into(),
                    name: "ada".into(),
                    token: "t".into(),
                    rooms: vec!["lobby".into(), "ops".into()],
                }
                .into(),
                r#"{"socketType":"welcome","session":"s-1","name":"ada","token":"t","rooms":["lobby","ops"]}"#,
            ),
            (
                Welcome {
                    session: "s-1".into(),
                    name: "ada".into(),
                    token: "t".into(),
                    rooms: vec![],
                }
                .into(),
                r#"{"socketType":"welcome","session":"s-1","name":"ada","token":"t","rooms":[]}"#,
            ),
            (
                Ack { id: "c1".into() }.into(),
                r#"{"socketType":"ack","id":"c1"}"#,
            ),
            (
                chat(1).into(),
                r#"{"socketType":"chat.message","stream":"lobby","epoch":3,"seq":1,"id":"c1","from":"ada","text":"hi \"there\"\n","at":1700000000005}"#,
            ),
            (
                Joined {
                    stream: "lobby".into(),
                    last_seq: 9,
                    epoch: 3,
                }
                .into(),
                r#"{"socketType":"joined","stream":"lobby","last_seq":9,"epoch":3}"#,
            ),
            (
                Presence {
                    room: "lobby".into(),
                    users: vec!["ada".into(), "bob".into()],
                    count: 2,
                }
                .into(),
                r#"{"socketType":"presence","room":"lobby","users":["ada","bob"],"count":2}"#,
            ),
            (
                Typing {
                    room: "lobby".into(),
                    from: "ada".into(),
                }
                .into(),
                r#"{"socketType":"typing","room":"lobby","from":"ada"}"#,
            ),
            (
                HistoryPage {
                    room: "lobby".into(),
                    epoch: 3,
                    before: 3,
                    messages: vec![chat(2)],
                    has_more: true,
                }
                .into(),
                r#"{"socketType":"history","room":"lobby","epoch":3,"before":3,"messages":[{"stream":"lobby","epoch":3,"seq":2,"id":"c1","from":"ada","text":"hi \"there\"\n","at":1700000000005}],"has_more":true}"#,
            ),
            (
                HistoryPage {
                    room: "lobby".into(),
                    epoch: 3,
                    before: 1,
                    messages: vec![],
                    has_more: false,
                }
                .into(),
                r#"{"socketType":"history","room":"lobby","epoch":3,"before":1,"messages":[],"has_more":false}"#,
            ),
            (
                Rooms { rooms: vec![] }.into(),
                r#"{"socketType":"rooms","rooms":[]}"#,
            ),
            (
                Rooms {
                    rooms: vec![RoomSummary {
                        name: "lobby".into(),
                        epoch: 3,
                        last_seq: 9,
                        online: 2,
                    }],
                }
                .into(),
                r#"{"socketType":"rooms","rooms":[{"name":"lobby","epoch":3,"last_seq":9,"online":2}]}"#,
            ),
            (
                MetricsSample {
                    at: 7,
                    cpu_total: 12.5,
                    cpu_per_core: vec![1.0, 2.5],
                    mem_used: 1024,
                    mem_total: 4096,
                    load: [0.5, 0.25, 0.125],
                    net_rx_per_sec: 10,
                    net_tx_per_sec: 20,
                    connections: 3,
                    messages_in_per_sec: 1.5,
                    messages_out_per_sec: 2.5,
                    rooms: 4,
                    uptime_secs: 60,
                }
                .into(),
                r#"{"socketType":"metrics.sample","at":7,"cpu_total":12.5,"cpu_per_core":[1.0,2.5],"mem_used":1024,"mem_total":4096,"load":[0.5,0.25,0.125],"net_rx_per_sec":10,"net_tx_per_sec":20,"connections":3,"messages_in_per_sec":1.5,"messages_out_per_sec":2.5,"rooms":4,"uptime_secs":60}"#,
            ),
            (
                ErrorFrame {
                    code: error_code::BAD_JSON.into(),
                    message: "nope".into(),
                    id: None,
                    retry_after_ms: None,
                }
                .into(),
                r#"{"socketType":"error","code":"bad_json","message":"nope"}"#,
            ),
            (
                ErrorFrame {
                    code: error_code::RATE_LIMITED.into(),
                    message: "slow down".into(),
                    id: Some("c9".into()),
                    retry_after_ms: Some(250),
                }
                .into(),
                r#"{"socketType":"error","code":"rate_limited","message":"slow down","id":"c9","retry_after_ms":250}"#,
            ),
        ]
    }

    #[test]
    fn every_server_message_keeps_its_exact_wire_text() {
        for (msg, json) in server_frames() {
            assert_eq!(msg.to_json(), json);
            let back: ServerMessage = serde_json::from_str(json).expect("parses");
            assert_eq!(back, msg, "{json}");
        }
    }

    #[test]
    fn every_variant_is_covered_and_names_its_socket_type() {
        let frames = server_frames();
        let mut seen = std::collections::BTreeSet::new();
        for (msg, json) in &frames {
            let value: serde_json::Value = serde_json::from_str(json).expect("json");
            assert_eq!(value["socketType"], msg.socket_type(), "{json}");
            seen.insert(msg.socket_type());
        }
        // One entry per variant of `ServerMessage`.
        assert_eq!(seen.len(), 12, "{seen:?}");
    }

    fn payload_decodes<T>(json: &str, expected: &T)
    where
        T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let payload: T = serde_json::from_str(json).expect("the payload decodes from its frame");
        assert_eq!(&payload, expected, "{json}");
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        let payload = T::deserialize(&value).expect("and from the parsed frame");
        assert_eq!(&payload, expected, "{json}");
    }

    #[test]
    fn every_payload_decodes_from_its_whole_frame() {
        for (msg, json) in server_frames() {
            match &msg {
                ServerMessage::Pong(p) => payload_decodes(json, p),
                ServerMessage::Limits(p) => payload_decodes(json, p),
                ServerMessage::Welcome(p) => payload_decodes(json, p),
                ServerMessage::Ack(p) => payload_decodes(json, p),
                ServerMessage::ChatMessage(p) => payload_decodes(json, p),
                ServerMessage::Joined(p) => payload_decodes(json, p),
                ServerMessage::Presence(p) => payload_decodes(json, p),
                ServerMessage::Typing(p) => payload_decodes(json, p),
                ServerMessage::History(p) => payload_decodes(json, p),
                ServerMessage::Rooms(p) => payload_decodes(json, p),
                ServerMessage::MetricsSample(p) => payload_decodes(json, p),
                ServerMessage::Error(p) => payload_decodes(json, p),
            }
        }
    }

    #[test]
    fn a_payload_refuses_a_frame_lacking_its_fields() {
        let typing = r#"{"socketType":"typing","room":"lobby","from":"ada"}"#;
        assert!(serde_json::from_str::<Presence>(typing).is_err());
        assert!(serde_json::from_str::<Joined>(typing).is_err());
        assert!(serde_json::from_str::<Typing>(typing).is_ok());
    }

    #[test]
    fn wire_names_match_the_documented_protocol() {
        let json = ClientMessage::Join {
            room: "r".into(),
            since: Some(4),
            epoch: Some(8),
            limit: None,
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"socketType":"join","room":"r","since":4,"epoch":8}"#
        );
        let json = ServerMessage::ChatMessage(ChatMessage {
            stream: "r".into(),
            epoch: 8,
            seq: 2,
            id: "i".into(),
            from: "f".into(),
            text: "t".into(),
            at: 1,
        })
        .to_json();
        assert_eq!(
            json,
            r#"{"socketType":"chat.message","stream":"r","epoch":8,"seq":2,"id":"i","from":"f","text":"t","at":1}"#
        );
    }

    #[test]
    fn new_frames_have_the_documented_wire_shape() {
        let json = ClientMessage::Join {
            room: "r".into(),
            since: None,
            epoch: None,
            limit: Some(20),
        }
        .to_json();
        assert_eq!(json, r#"{"socketType":"join","room":"r","limit":20}"#);
        let history: ClientMessage = serde_json::from_str(
            r#"{"socketType":"history","id":"h","room":"r","before":51,"limit":50}"#,
        )
        .expect("parses");
        assert_eq!(
            history,
            ClientMessage::History {
                id: "h".into(),
                room: "r".into(),
                before: 51,
                limit: 50,
            }
        );
        let json = ServerMessage::History(HistoryPage {
            room: "r".into(),
            epoch: 8,
            before: 51,
            messages: vec![],
            has_more: false,
        })
        .to_json();
        assert_eq!(
            json,
            r#"{"socketType":"history","room":"r","epoch":8,"before":51,"messages":[],"has_more":false}"#
        );
        // A history request lacking a field is an error, not a panic.
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"socketType":"history","id":"h","room":"r"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_type_and_missing_tag_are_errors_not_panics() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"socketType":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"room":"x"}"#).is_err());
        assert!(serde_json::from_str::<ServerMessage>("not json").is_err());
    }

    #[test]
    fn any_client_message_may_carry_an_id() {
        for frame in [
            r#"{"socketType":"join","room":"lobby","id":"a"}"#,
            r#"{"socketType":"leave","room":"lobby","id":"a"}"#,
            r#"{"socketType":"typing","room":"lobby","id":"a"}"#,
            r#"{"socketType":"metrics.subscribe","id":"a"}"#,
            r#"{"socketType":"metrics.unsubscribe","id":"a"}"#,
            r#"{"socketType":"ping","t":1,"id":"a"}"#,
            r#"{"socketType":"hello","name":"ada","id":"a"}"#,
            r#"{"socketType":"history","room":"lobby","before":9,"limit":5,"id":"a"}"#,
        ] {
            assert!(
                serde_json::from_str::<ClientMessage>(frame).is_ok(),
                "{frame}"
            );
            let value: serde_json::Value = serde_json::from_str(frame).expect("json");
            assert_eq!(message_id(&value), Some("a"));
        }
    }

    proptest! {
        #[test]
        fn chat_send_round_trips_any_text(id in ".{0,40}", room in ".{0,40}", text in ".{0,200}") {
            round_trip_client(ClientMessage::ChatSend { id, room, text });
        }

        #[test]
        fn validated_text_is_trimmed_and_bounded(text in ".{0,2100}") {
            if let Ok(ok) = validate_text(&text) {
                prop_assert_eq!(ok.trim(), ok.as_str());
                prop_assert!(!ok.is_empty());
                prop_assert!(ok.chars().count() <= MAX_TEXT_CHARS);
            }
        }
    }
}
