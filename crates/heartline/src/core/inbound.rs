//! Server frames after parsing, and the diagnostics the core reports about
//! frames it could not deliver.

use std::sync::Arc;

use serde_json::Value;

use super::{Millis, TimerKind};

/// A parsed server message, ready for the handlers of its `socketType`.
/// Cheap to clone: the JSON is shared. `Send + Sync`, so a native
/// driver can hand it to another thread.
///
/// ```
/// use heartline::core::Inbound;
/// let msg = Inbound::parse(r#"{"socketType":"chat.message","stream":"lobby","seq":3}"#).unwrap();
/// assert_eq!(&*msg.socket_type, "chat.message");
/// assert_eq!(msg.value["seq"], 3);
/// assert_eq!(msg.stream.as_ref().map(|s| s.seq), Some(3));
/// assert_eq!(msg.stream.as_ref().and_then(|s| s.epoch), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The frame's `socketType`.
    pub socket_type: Arc<str>,
    /// The whole frame, parsed once.
    pub value: Arc<Value>,
    /// The frame's size in bytes.
    pub raw_len: usize,
    /// Its place in a resumable stream, when it has `stream` and `seq`.
    pub stream: Option<StreamPos>,
}

/// A message's place in a resumable stream.
///
/// ```
/// use heartline::core::StreamPos;
/// let pos = StreamPos { stream: "lobby".into(), seq: 1, epoch: Some(7) };
/// assert_eq!(pos.seq, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPos {
    /// The stream key (a room name for chat).
    pub stream: Arc<str>,
    /// Its sequence number, from 1.
    pub seq: u64,
    /// The stream's epoch, when the server sends one: a new epoch means the
    /// stream started over (see the [wire contract](super::contract)).
    pub epoch: Option<u64>,
}

/// Why a text frame is not a deliverable message.
///
/// ```
/// use heartline::core::{Inbound, ParseError};
/// assert!(matches!(Inbound::parse("{nope"), Err(ParseError::Malformed(_))));
/// assert_eq!(Inbound::parse("[1,2]"), Err(ParseError::MissingType));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON; holds serde_json's explanation.
    Malformed(String),
    /// JSON, but not an object with a string `socketType`.
    MissingType,
}

impl Inbound {
    /// Parses a text frame. Never panics.
    ///
    /// ```
    /// use heartline::core::{Inbound, ParseError};
    /// assert_eq!(Inbound::parse(r#"{"type":"x"}"#), Err(ParseError::MissingType));
    /// assert!(Inbound::parse(r#"{"socketType":"presence"}"#).unwrap().stream.is_none());
    /// ```
    pub fn parse(text: &str) -> Result<Inbound, ParseError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))?;
        Inbound::from_value(value, text.len())
    }

    /// Wraps an already parsed frame of `raw_len` bytes.
    ///
    /// ```
    /// use heartline::core::Inbound;
    /// let msg = Inbound::from_value(serde_json::json!({"socketType":"ack","id":"a"}), 30).unwrap();
    /// assert_eq!(msg.raw_len, 30);
    /// ```
    pub fn from_value(value: Value, raw_len: usize) -> Result<Inbound, ParseError> {
        let object = value.as_object().ok_or(ParseError::MissingType)?;
        let socket_type: Arc<str> = object
            .get("socketType")
            .and_then(Value::as_str)
            .ok_or(ParseError::MissingType)?
            .into();
        let stream = match (
            object.get("stream").and_then(Value::as_str),
            object.get("seq").and_then(Value::as_u64),
        ) {
            (Some(stream), Some(seq)) => Some(StreamPos {
                stream: stream.into(),
                seq,
                epoch: object.get("epoch").and_then(Value::as_u64),
            }),
            _ => None,
        };
        Ok(Inbound {
            socket_type,
            value: Arc::new(value),
            raw_len,
            stream,
        })
    }

    /// A string field of the message, if present.
    ///
    /// ```
    /// use heartline::core::Inbound;
    /// let msg = Inbound::parse(r#"{"socketType":"ack","id":"c-1"}"#).unwrap();
    /// assert_eq!(msg.str_field("id"), Some("c-1"));
    /// assert_eq!(msg.str_field("nope"), None);
    /// ```
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.value.get(name).and_then(Value::as_str)
    }
}

/// A diagnostic: something the core noticed and dealt with, for logs and the
/// dashboard. Never fatal.
///
/// ```
/// use heartline::core::Report;
/// let report = Report::Oversized { len: 70_000, max: 65_536 };
/// assert!(report.to_string().contains("70000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A text frame that is not JSON.
    Malformed {
        /// Frame size in bytes.
        len: usize,
        /// The parser's explanation.
        error: String,
    },
    /// JSON without a string `socketType`.
    MissingType {
        /// Frame size in bytes.
        len: usize,
    },
    /// A `socketType` with no handler that the core does not handle itself.
    /// The message is still delivered, so `Registry::last` can serve a
    /// late subscriber.
    UnknownType {
        /// The type.
        socket_type: String,
    },
    /// A frame over `max_frame_bytes`, dropped unparsed.
    Oversized {
        /// Frame size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A binary frame; the protocol is text only, so it is dropped.
    Binary {
        /// Frame size in bytes.
        len: usize,
    },
    /// A stream message already delivered, dropped.
    Duplicate {
        /// The stream.
        stream: String,
        /// Its sequence number.
        seq: u64,
    },
    /// A stream message arrived ahead of `expected`; it is held until the gap
    /// fills (the core asks for it again with `since`).
    Gap {
        /// The stream.
        stream: String,
        /// The next sequence number due.
        expected: u64,
        /// The sequence number that arrived.
        got: u64,
    },
    /// A gap did not fill in time; `from..=to` were never delivered.
    GapSkipped {
        /// The stream.
        stream: String,
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// An `ack` for an id not in the outbox (already acked or never ours).
    UnknownAck {
        /// The id.
        id: String,
    },
    /// The server refused a frame as `rate_limited`: the outbox pauses for
    /// `retry_after` ms, then re-sends in order. `id` is the outbox message
    /// it named, queued again (not failed).
    RateLimited {
        /// The re-queued message, when the refusal named one of ours.
        id: Option<String>,
        /// The pause, in ms.
        retry_after: Millis,
    },
    /// A stream started over under a new epoch (its history was wiped or
    /// recreated): its position was reset and `dropped` messages held from
    /// the old epoch were discarded; every message of the new epoch is kept.
    EpochChanged {
        /// The stream.
        stream: String,
        /// The epoch known before.
        from: u64,
        /// The new epoch.
        to: u64,
        /// Held (out-of-order) messages of the old epoch discarded.
        dropped: usize,
    },
    /// A timer fired much later than asked (a throttled background tab); the
    /// core re-checked instead of trusting it.
    LateTimer {
        /// Which timer.
        kind: TimerKind,
        /// How late it was.
        late_by: Millis,
    },
}

impl std::fmt::Display for Report {
    /// One line for a log.
    ///
    /// ```
    /// use heartline::core::Report;
    /// assert_eq!(Report::Binary { len: 4 }.to_string(), "dropped a binary frame of 4 bytes");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Malformed { len, error } => {
                write!(f, "dropped a malformed frame of {len} bytes: {error}")
            }
            Report::MissingType { len } => {
                write!(f, "dropped a frame of {len} bytes without socketType")
            }
            Report::UnknownType { socket_type } => {
                write!(f, "no handler for socketType {socket_type:?}")
            }
            Report::Oversized { len, max } => {
                write!(f, "dropped a frame of {len} bytes (limit {max})")
            }
            Report::Binary { len } => write!(f, "dropped a binary frame of {len} bytes"),
            Report::Duplicate { stream, seq } => {
                write!(f, "dropped duplicate {stream}#{seq}")
            }
            Report::Gap {
                stream,
                expected,
                got,
            } => write!(f, "gap in {stream}: expected #{expected}, got #{got}"),
            Report::GapSkipped { stream, from, to } => {
                write!(f, "gave up waiting for {stream}#{from}..={to}")
            }
            Report::UnknownAck { id } => write!(f, "ack for unknown message {id:?}"),
            Report::RateLimited {
                id: Some(id),
                retry_after,
            } => {
                write!(
                    f,
                    "rate limited: {id:?} queued again, pausing {retry_after} ms"
                )
            }
            Report::RateLimited {
                id: None,
                retry_after,
            } => {
                write!(f, "rate limited: pausing {retry_after} ms")
            }
            Report::EpochChanged {
                stream,
                from,
                to,
                dropped,
            } => write!(
                f,
                "{stream} started over: epoch {from} -> {to}, dropped {dropped} held"
            ),
            Report::LateTimer { kind, late_by } => {
                write!(f, "{kind:?} timer fired {late_by} ms late")
            }
        }
    }
}
