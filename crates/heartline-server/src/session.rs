//! The chat protocol's handlers, one [`Session`] per connection: `hello`,
//! `join`, `leave`, `chat.send`, `typing`, `metrics.*`, and the acks and
//! errors that answer them. The transport ([`crate::transport`]) hands it
//! every text frame it admitted; the session answers only through its
//! [`Peer`] queue.

use axum::extract::ws::Utf8Bytes;
use heartline_protocol::{
    ClientMessage, MAX_ROOM_CHARS, PLAIN_PING, PLAIN_PONG, ServerMessage, close_code, error_code,
    validate_name, validate_room, validate_text,
};
use serde_json::Value;

use crate::peer::{CloseReason, Outbound, Peer};
use crate::state::AppState;
use crate::store::{StoreError, Stored, UserId};

/// Longest client message id, in bytes.
const MAX_ID_BYTES: usize = 128;

/// Client frame types the server knows (to tell an unknown type from a known
/// type with bad fields).
const KNOWN_TYPES: &[&str] = &[
    "ping",
    "hello",
    "join",
    "leave",
    "chat.send",
    "typing",
    "metrics.subscribe",
    "metrics.unsubscribe",
];

/// A welcomed client.
#[derive(Debug)]
struct User {
    id: UserId,
    name: String,
}

/// One connection's protocol state: who the client is.
#[derive(Debug)]
pub(crate) struct Session {
    state: AppState,
    peer: Peer,
    user: Option<User>,
}

/// A refused frame: error code, message, and the reliable message's id.
type Refused = (&'static str, String, Option<String>);

impl Session {
    /// A session for a new connection; nobody until `hello`.
    pub(crate) fn new(state: AppState, peer: Peer) -> Self {
        Session {
            state,
            peer,
            user: None,
        }
    }

    /// Handles a binary frame: not part of the protocol.
    pub(crate) async fn on_binary(&mut self) {
        self.error(
            error_code::BAD_JSON,
            "binary frames are not supported".into(),
            None,
        )
        .await;
    }

    /// Handles one admitted text frame.
    pub(crate) async fn on_text(&mut self, text: &str) {
        if text == PLAIN_PING {
            self.peer
                .send(Outbound::Text(Utf8Bytes::from_static(PLAIN_PONG)))
                .await;
            return;
        }
        match parse(text) {
            Ok(msg) => self.handle(msg).await,
            Err((code, message, id)) => self.error(code, message, id).await,
        }
    }

    async fn reply(&self, msg: ServerMessage) {
        self.peer.send(frame(&msg)).await;
    }

    async fn error(&self, code: &'static str, message: String, id: Option<String>) {
        self.reply(ServerMessage::Error {
            code: code.into(),
            message,
            id,
            retry_after_ms: None,
        })
        .await;
    }

    async fn handle(&mut self, msg: ClientMessage) {
        match msg {
            ClientMessage::Ping { t } => self.reply(ServerMessage::Pong { t }).await,
            ClientMessage::Hello { name, token } => self.hello(&name, token).await,
            msg if self.user.is_none() => {
                let id = match msg {
                    ClientMessage::ChatSend { id, .. } => Some(id),
                    _ => None,
                };
                self.error(error_code::NOT_WELCOMED, "send hello first".into(), id)
                    .await;
            }
            // SQLite integers are i64: a larger `since` means "nothing missed".
            ClientMessage::Join { room, since, .. } => {
                let since = since.map(|s| s.min(i64::MAX as u64));
                self.join(&room, since).await;
            }
            ClientMessage::Leave { room } => self.leave(&room).await,
            ClientMessage::ChatSend { id, room, text } => self.chat_send(id, &room, &text).await,
            ClientMessage::Typing { room } => self.typing(&room).await,
            ClientMessage::MetricsSubscribe { interval_ms } => {
                let stats = self.state.hub().clone();
                self.state
                    .metrics()
                    .subscribe(self.peer.clone(), interval_ms, stats);
            }
            ClientMessage::MetricsUnsubscribe => {
                self.state.metrics().unsubscribe(self.peer.id);
            }
        }
    }

    async fn hello(&mut self, name: &str, token: Option<String>) {
        if self.user.is_some() {
            self.error(error_code::INVALID_FIELD, "already welcomed".into(), None)
                .await;
            return;
        }
        let name = match validate_name(name) {
            Ok(name) => name,
            Err(e) => {
                self.peer.close(CloseReason::new(
                    close_code::AUTH_REFUSED,
                    format!("invalid name: {e}"),
                ));
                return;
            }
        };
        // The token is the identity: presenting it again keeps the same user
        // (and so the de-duplication of re-sent messages) across reconnects.
        let token = match token {
            Some(token) if crate::ids::is_valid_token(&token) => token,
            Some(_) => {
                self.peer
                    .close(CloseReason::new(close_code::AUTH_REFUSED, "invalid token"));
                return;
            }
            None => crate::ids::new_token(),
        };
        let id = match self.state.store().user(&token).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "hello: store failed");
                self.error(error_code::INTERNAL, "storage unavailable".into(), None)
                    .await;
                return;
            }
        };
        tracing::debug!(conn = self.peer.id, user = id, name, "welcome");
        self.user = Some(User {
            id,
            name: name.clone(),
        });
        self.reply(ServerMessage::Welcome {
            session: crate::ids::session_id(self.peer.id),
            name,
            token,
            rooms: self.state.hub().room_names(),
        })
        .await;
    }

    async fn join(&mut self, room: &str, since: Option<u64>) {
        let Some(user) = &self.user else { return };
        let room = match validate_room(room) {
            Ok(room) => room,
            Err(e) => {
                self.error(error_code::INVALID_FIELD, e.to_string(), None)
                    .await;
                return;
            }
        };
        let hub = self.state.hub().clone();
        if let Err(e) = hub.create_room(&room) {
            self.error(error_code::LIMIT_REACHED, e.to_string(), None)
                .await;
            return;
        }
        // A second join of the same room starts over (e.g. with a new since).
        hub.leave(&room, self.peer.id);
        let config = self.state.config();
        let limit = if since.is_some() {
            config.history_max
        } else {
            config.history_recent
        };
        let (peer, name, key) = (self.peer.clone(), user.name.clone(), room.clone());
        let handoff = Box::new(move |history: Vec<_>, last_seq| {
            let mut frames: Vec<Utf8Bytes> = history
                .into_iter()
                .map(|m| Utf8Bytes::from(ServerMessage::ChatMessage(m).to_json()))
                .collect();
            frames.push(Utf8Bytes::from(
                ServerMessage::Joined {
                    stream: key.clone(),
                    last_seq,
                    // Placeholder until rooms carry their epoch.
                    epoch: 0,
                }
                .to_json(),
            ));
            hub.join(&key, &peer, &name, frames)
        });
        match self.state.store().join(&room, since, limit, handoff).await {
            Ok(true) => {
                self.state.hub().presence_changed(&room, Some(&self.peer));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, room, "join: store failed");
                self.error(error_code::INTERNAL, "storage unavailable".into(), None)
                    .await;
            }
        }
    }

    async fn leave(&mut self, room: &str) {
        let Ok(room) = validate_room(room) else {
            self.error(error_code::INVALID_FIELD, "invalid room".into(), None)
                .await;
            return;
        };
        if self.state.hub().leave(&room, self.peer.id) {
            self.state.hub().presence_changed(&room, None);
        }
    }

    async fn chat_send(&mut self, id: String, room: &str, text: &str) {
        let Some(user) = &self.user else { return };
        let refused =
            |message: String| -> Refused { (error_code::INVALID_FIELD, message, Some(id.clone())) };
        let checked = (|| {
            if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
                return Err(refused(format!(
                    "id must be 1-{MAX_ID_BYTES} bytes without control characters"
                )));
            }
            let room = validate_room(room).map_err(|e| refused(e.to_string()))?;
            let text = validate_text(text).map_err(|e| refused(e.to_string()))?;
            if !self.state.hub().has_room(&room) {
                return Err(refused(format!(
                    "unknown room (max {MAX_ROOM_CHARS} chars)"
                )));
            }
            Ok((room, text))
        })();
        let (room, text) = match checked {
            Ok(v) => v,
            Err((code, message, id)) => {
                // An id too long to echo is not echoed.
                let id = id.filter(|id| id.len() <= MAX_ID_BYTES);
                self.error(code, message, id).await;
                return;
            }
        };
        let stored = self
            .state
            .store()
            .insert(user.id, &id, &room, &user.name, &text, crate::now_ms())
            .await;
        match stored {
            // A duplicate is acked again: the client lost the first ack.
            Ok(Stored::New(_) | Stored::Duplicate(_)) => {
                self.reply(ServerMessage::Ack { id }).await;
            }
            Err(StoreError::UnknownRoom) => {
                self.error(error_code::INVALID_FIELD, "unknown room".into(), Some(id))
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "chat.send: store failed");
                self.error(error_code::INTERNAL, "storage unavailable".into(), Some(id))
                    .await;
            }
        }
    }

    async fn typing(&mut self, room: &str) {
        let Some(user) = &self.user else { return };
        let Ok(room) = validate_room(room) else {
            self.error(error_code::INVALID_FIELD, "invalid room".into(), None)
                .await;
            return;
        };
        if !self.state.hub().is_member(&room, self.peer.id) {
            self.error(
                error_code::INVALID_FIELD,
                "join the room first".into(),
                None,
            )
            .await;
            return;
        }
        self.state.hub().typing(&room, self.peer.id, &user.name);
    }
}

fn frame(msg: &ServerMessage) -> Outbound {
    Outbound::Text(Utf8Bytes::from(msg.to_json()))
}

/// Parses a client frame, telling bad JSON, an unknown type and bad fields
/// apart.
fn parse(text: &str) -> Result<ClientMessage, Refused> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (error_code::BAD_JSON, format!("not JSON: {e}"), None))?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| id.len() <= MAX_ID_BYTES)
        .map(str::to_owned);
    match value.get("socketType") {
        Some(Value::String(ty)) if KNOWN_TYPES.contains(&ty.as_str()) => {}
        Some(Value::String(ty)) => {
            let shown: String = ty.chars().take(40).collect();
            return Err((
                error_code::UNKNOWN_TYPE,
                format!("unknown socketType {shown:?}"),
                id,
            ));
        }
        _ => {
            return Err((error_code::UNKNOWN_TYPE, "missing socketType".into(), id));
        }
    }
    serde_json::from_value(value).map_err(|e| (error_code::INVALID_FIELD, e.to_string(), id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parse_tells_errors_apart() {
        assert_eq!(parse("{").unwrap_err().0, error_code::BAD_JSON);
        assert_eq!(parse("42").unwrap_err().0, error_code::UNKNOWN_TYPE);
        assert_eq!(
            parse(r#"{"socketType":"nope","id":"x"}"#).unwrap_err(),
            (
                error_code::UNKNOWN_TYPE,
                "unknown socketType \"nope\"".to_string(),
                Some("x".to_string())
            )
        );
        let e = parse(r#"{"socketType":"chat.send","id":"c1","room":"r"}"#).unwrap_err();
        assert_eq!(e.0, error_code::INVALID_FIELD);
        assert_eq!(e.2.as_deref(), Some("c1"));
        assert!(matches!(
            parse(r#"{"socketType":"ping","t":1}"#),
            Ok(ClientMessage::Ping { .. })
        ));
    }
}
