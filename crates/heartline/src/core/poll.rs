//! # The long-poll fallback's wire format
//!
//! Where a network refuses the WebSocket upgrade but passes plain HTTP, the
//! drivers carry the same frames over HTTP long-polling
//! ([`Transport::LongPoll`](super::Transport::LongPoll)). The core does not
//! see the difference: a poll session is one "socket" to it, with the same
//! `Opened`, `Frame` and `Closed` events. This module is the HTTP side of the
//! [wire contract](super::contract), written once for the drivers and the
//! server.
//!
//! The endpoints live under the *poll base* of a socket URL
//! ([`poll_base`]: `ws://host/ws` → `http://host/poll`):
//!
//! | Request | Answer |
//! |---|---|
//! | `POST {base}/open` | `200` [`PollOpened`]: a new session (one per connection, like a socket), the server's frames queued from its first (`limits`) |
//! | `POST {base}/send?session=S`, body: a frame array ([`encode_frames`]) | `204` once every frame was handed to the session in order (each frame takes a token of the same rate limit as on a socket) |
//! | `GET {base}/recv?session=S&after=N` | `200` [`PollBatch`]: the frames numbered above `N`, held until one is there or about [`PollOpened::hold_ms`] passed (then empty). Frames up to `N` are acknowledged and dropped by the server; the others are kept, so asking again with the same `N` gets them again |
//! | `POST {base}/close?session=S` | `204`; the session ends at once (leaves its rooms) |
//!
//! Frames are numbered from 1 per session. A refusal is a 4xx or 5xx with a
//! [`PollError`] body, e.g. `404` [`error_code::UNKNOWN_SESSION`] for an
//! expired session. When the server ends a session (an auth refusal, a rate
//! limit, shutting down), the last batch carries its [`PollClose`] code
//! and reason, as a WebSocket close frame would.
//!
//! A frame array is a JSON array whose elements are the frames themselves
//! when they are JSON objects, and JSON strings for any other text frame
//! (e.g. a plain-text `"ping"` heartbeat):
//!
//! ```
//! use heartline::core::poll::{decode_frames, encode_frames};
//! let body = encode_frames([r#"{"socketType":"ping","t":1}"#, "ping"]);
//! assert_eq!(body, r#"[{"socketType":"ping","t":1},"ping"]"#);
//! assert_eq!(decode_frames(&body).unwrap(), vec![r#"{"socketType":"ping","t":1}"#, "ping"]);
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Most frames a driver puts in one `send` body. The server accepts more
/// (see its `--poll-max-body-bytes`), so a driver keeping to this is never
/// refused for size when each frame is within the frame limit.
///
/// ```
/// assert_eq!(heartline::core::poll::MAX_FRAMES_PER_SEND, 32);
/// ```
pub const MAX_FRAMES_PER_SEND: usize = 32;

/// How long the server holds a `recv` with nothing to answer, unless it
/// says otherwise in [`PollOpened::hold_ms`].
///
/// ```
/// assert_eq!(heartline::core::poll::DEFAULT_HOLD_MS, 25_000);
/// ```
pub const DEFAULT_HOLD_MS: u64 = 25_000;

/// The `code` of a [`PollError`].
pub mod error_code {
    /// The session does not exist (never did, expired, or was closed).
    /// Status 404. The driver reports the socket closed and the core
    /// reconnects with a new session.
    pub const UNKNOWN_SESSION: &str = "unknown_session";
    /// The body or a parameter is malformed. Status 400.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The body or one of its frames is over the limit. Status 413.
    pub const TOO_LARGE: &str = "too_large";
    /// The `Origin` header names a site the server does not serve. Status 403.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// Too many connections (from this address, or in all). Status 503.
    pub const TRY_AGAIN_LATER: &str = "try_again_later";
    /// The server is shutting down. Status 503.
    pub const SHUTTING_DOWN: &str = "shutting_down";
}

/// The answer to `POST {base}/open`.
///
/// ```
/// use heartline::core::poll::PollOpened;
/// let opened: PollOpened = serde_json::from_str(r#"{"session":"3f2a","hold_ms":25000}"#).unwrap();
/// assert_eq!(opened.session, "3f2a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOpened {
    /// The session id: unguessable, it is the only key to the session.
    pub session: String,
    /// How long the server holds an empty `recv` before answering it.
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
}

fn default_hold_ms() -> u64 {
    DEFAULT_HOLD_MS
}

/// How the server ended a session: a WebSocket close frame's fields.
///
/// ```
/// use heartline::core::poll::PollClose;
/// let close = PollClose { code: 4001, reason: "bad token".into() };
/// assert_eq!(serde_json::to_string(&close).unwrap(), r#"{"code":4001,"reason":"bad token"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollClose {
    /// Close code (the same codes as on a socket).
    pub code: u16,
    /// Close reason.
    #[serde(default)]
    pub reason: String,
}

/// A refusal's body (any 4xx or 5xx of the poll endpoints).
///
/// ```
/// use heartline::core::poll::{PollError, error_code};
/// let error = PollError::new(error_code::UNKNOWN_SESSION, "no such session");
/// assert_eq!(error.to_json(), r#"{"code":"unknown_session","message":"no such session"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollError {
    /// One of [`error_code`].
    pub code: String,
    /// For people.
    pub message: String,
}

impl PollError {
    /// An error with this code and message.
    ///
    /// ```
    /// let error = heartline::core::poll::PollError::new("bad_request", "no session");
    /// assert_eq!(error.code, "bad_request");
    /// ```
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        PollError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The body as JSON.
    ///
    /// ```
    /// let error = heartline::core::poll::PollError::new("too_large", "body over 1 MiB");
    /// assert!(error.to_json().contains("too_large"));
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::json!({"code": self.code, "message": self.message}).to_string()
    }
}

/// The answer to `GET {base}/recv`: frames `first`, `first + 1`, …
///
/// ```
/// use heartline::core::poll::PollBatch;
/// let text = PollBatch::encode(4, [r#"{"socketType":"ack","id":"a"}"#], None);
/// let batch = PollBatch::parse(&text).unwrap();
/// assert_eq!(batch.first, 4);
/// assert_eq!(batch.last(), Some(4));
/// assert_eq!(batch.frames, vec![r#"{"socketType":"ack","id":"a"}"#]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollBatch {
    /// The number of the first frame (meaningless when `frames` is empty).
    pub first: u64,
    /// The frames' texts, in order.
    pub frames: Vec<String>,
    /// Set when the server ended the session after these frames.
    pub close: Option<PollClose>,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    first: u64,
    #[serde(borrow)]
    frames: Vec<&'a RawValue>,
    #[serde(default)]
    close: Option<PollClose>,
}

impl PollBatch {
    /// The number of the last frame, if there is one: the `after` of the
    /// next `recv`.
    ///
    /// ```
    /// use heartline::core::poll::PollBatch;
    /// let batch = PollBatch { first: 7, frames: vec![], close: None };
    /// assert_eq!(batch.last(), None);
    /// ```
    pub fn last(&self) -> Option<u64> {
        let len = u64::try_from(self.frames.len()).ok()?;
        len.checked_sub(1)
            .map(|extra| self.first.saturating_add(extra))
    }

    /// Reads a batch; a malformed one is an error, never a panic.
    ///
    /// ```
    /// use heartline::core::poll::PollBatch;
    /// assert!(PollBatch::parse("{not json").is_err());
    /// let batch = PollBatch::parse(r#"{"first":1,"frames":[],"close":{"code":1001,"reason":"bye"}}"#).unwrap();
    /// assert_eq!(batch.close.unwrap().code, 1001);
    /// ```
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let raw: RawBatch<'_> = serde_json::from_str(text)?;
        Ok(PollBatch {
            first: raw.first,
            frames: raw
                .frames
                .into_iter()
                .map(frame_text)
                .collect::<Result<_, _>>()?,
            close: raw.close,
        })
    }

    /// Writes a batch: frames that are JSON objects go in as they are, any
    /// other text as a JSON string.
    ///
    /// ```
    /// use heartline::core::poll::{PollBatch, PollClose};
    /// let close = PollClose { code: 1001, reason: "shutting down".into() };
    /// let text = PollBatch::encode(1, ["pong"], Some(&close));
    /// assert_eq!(text, r#"{"first":1,"frames":["pong"],"close":{"code":1001,"reason":"shutting down"}}"#);
    /// ```
    pub fn encode<'a>(
        first: u64,
        frames: impl IntoIterator<Item = &'a str>,
        close: Option<&PollClose>,
    ) -> String {
        let mut out = format!(r#"{{"first":{first},"frames":"#);
        push_frames(&mut out, frames);
        if let Some(close) = close {
            out.push_str(r#","close":"#);
            out.push_str(&serde_json::to_string(close).unwrap_or_else(|_| "null".into()));
        }
        out.push('}');
        out
    }
}

/// Writes a frame array (the body of `send`). Frames that are JSON objects
/// go in as they are, any other text as a JSON string.
///
/// ```
/// assert_eq!(heartline::core::poll::encode_frames(["pong"]), r#"["pong"]"#);
/// ```
pub fn encode_frames<'a>(frames: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    push_frames(&mut out, frames);
    out
}

fn push_frames<'a>(out: &mut String, frames: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (index, frame) in frames.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if is_json_object(frame) {
            out.push_str(frame);
        } else {
            // A string always serializes.
            out.push_str(&serde_json::Value::from(frame).to_string());
        }
    }
    out.push(']');
}

/// Whether `text` can go into an array as it is: a JSON object, checked
/// (a text frame may look like one and not be).
fn is_json_object(text: &str) -> bool {
    text.starts_with('{')
        && text.ends_with('}')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Reads a frame array: each element's text, strings unquoted. Anything but
/// an array of objects and strings is an error.
///
/// ```
/// use heartline::core::poll::decode_frames;
/// assert!(decode_frames("[1]").is_err());
/// assert!(decode_frames(r#"{"socketType":"ping"}"#).is_err());
/// assert_eq!(decode_frames("[]").unwrap(), Vec::<String>::new());
/// ```
pub fn decode_frames(body: &str) -> Result<Vec<String>, serde_json::Error> {
    let raw: Vec<&RawValue> = serde_json::from_str(body)?;
    raw.into_iter().map(frame_text).collect()
}

fn frame_text(raw: &RawValue) -> Result<String, serde_json::Error> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str(text)
    } else if text.starts_with('{') {
        Ok(text.to_owned())
    } else {
        Err(serde::de::Error::custom(
            "a frame must be a JSON object or a string",
        ))
    }
}

/// The poll base of a socket URL: the scheme made HTTP (`ws` → `http`,
/// `wss` → `https`), the query and fragment dropped, and the last path
/// segment replaced by `poll`. `None` for a URL that is not `ws://` or
/// `wss://`.
///
/// ```
/// use heartline::core::poll::poll_base;
/// assert_eq!(poll_base("ws://127.0.0.1:3000/ws").as_deref(), Some("http://127.0.0.1:3000/poll"));
/// assert_eq!(poll_base("wss://chat.example/api/ws?x=1").as_deref(), Some("https://chat.example/api/poll"));
/// assert_eq!(poll_base("wss://chat.example").as_deref(), Some("https://chat.example/poll"));
/// assert_eq!(poll_base("http://chat.example/ws"), None);
/// ```
pub fn poll_base(ws_url: &str) -> Option<String> {
    let (scheme, rest) = ws_url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    let dir = match path.rfind('/') {
        Some(slash) => &path[..slash],
        None => "",
    };
    Some(format!("{scheme}://{authority}{dir}/poll"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batches_round_trip_with_a_close() {
        let close = PollClose {
            code: 4001,
            reason: "auth \"refused\"".into(),
        };
        let frames = [r#"{"socketType":"welcome","name":"ada"}"#, "pong", ""];
        let text = PollBatch::encode(10, frames, Some(&close));
        let batch = PollBatch::parse(&text).expect("parses");
        assert_eq!(batch.first, 10);
        assert_eq!(batch.last(), Some(12));
        assert_eq!(batch.frames, frames);
        assert_eq!(batch.close, Some(close));
    }

    #[test]
    fn malformed_batches_are_errors() {
        for text in [
            "",
            "[]",
            r#"{"first":1}"#,
            r#"{"first":-1,"frames":[]}"#,
            r#"{"first":1,"frames":[true]}"#,
            r#"{"first":1,"frames":[[1]]}"#,
            r#"{"first":1,"frames":[{"a":1}"#,
        ] {
            assert!(PollBatch::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn bases_of_odd_urls() {
        assert_eq!(
            poll_base("WS://h:1/a/b/ws").as_deref(),
            Some("http://h:1/a/b/poll")
        );
        assert_eq!(poll_base("ws://h/").as_deref(), Some("http://h/poll"));
        assert_eq!(poll_base("ws://h#frag").as_deref(), Some("http://h/poll"));
        assert_eq!(poll_base("ws:///ws"), None);
        assert_eq!(poll_base("not a url"), None);
    }

    proptest! {
        /// Any text frames survive the array, in order.
        #[test]
        fn frame_arrays_round_trip(texts in proptest::collection::vec(".*", 0..8), objects in proptest::collection::vec(any::<(String, i64)>(), 0..8)) {
            let mut frames: Vec<String> = texts;
            frames.extend(objects.iter().map(|(k, v)| serde_json::json!({"socketType": k, "t": v}).to_string()));
            let body = encode_frames(frames.iter().map(String::as_str));
            prop_assert_eq!(decode_frames(&body).expect("decodes"), frames);
        }
    }
}
