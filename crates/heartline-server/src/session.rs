//! The chat protocol's handlers, one [`Session`] per connection: `hello`
//! (and the room directory it subscribes to), `join`, `leave`, `chat.send`,
//! `typing`, `history`, `metrics.*`, and the acks and errors that answer
//! them. The transport ([`crate::transport`]) hands it
//! every text frame it admitted; the session answers only through its
//! [`Peer`] queue.
//!
//! The contract: a frame that carries an `id` gets exactly one answer per
//! receipt, `ack {id}` once handled (after the frames the handling queues:
//! `pong`, `welcome`, the history and `joined`) or `error {code, message,
//! id}` when refused. Every handler returns `Result<(), Refused>` and
//! [`Session::on_text`] turns that into the answer, so no type can forget it.

use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use heartline_protocol::{
    Ack, ChatMessage, ClientMessage, ErrorFrame, HistoryPage, Joined, MAX_FRAME_BYTES,
    MAX_HISTORY_PAGE, MAX_ROOM_CHARS, PLAIN_PING, PLAIN_PONG, Pong, ServerMessage, Welcome,
    close_code, error_code, message_id, validate_name, validate_room, validate_text,
};
use serde_json::Value;

use crate::bus::BusEvent;
use crate::limits::retry_after_ms;
use crate::peer::{CloseReason, Outbound, Peer};
use crate::state::{AppState, OnlineGuard};
use crate::store::{
    ChatStore, History, HistoryQuery, JoinOutcome, Page, StoreError, Stored, UserId,
};

/// Longest client message id, in bytes.
const MAX_ID_BYTES: usize = 128;

/// Most times a join reads its history (see [`JoinOutcome::Stale`]).
const MAX_JOIN_READS: usize = 8;

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
    "history",
];

/// A welcomed client.
#[derive(Debug)]
struct User {
    id: UserId,
    name: String,
    /// Keeps the user from expiring while connected.
    _online: OnlineGuard,
}

/// One connection's protocol state: who the client is.
#[derive(Debug)]
pub(crate) struct Session {
    state: AppState,
    peer: Peer,
    user: Option<User>,
}

/// Why a frame was refused: the `error` frame's fields, and a close that
/// follows it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    code: &'static str,
    message: String,
    retry_after_ms: Option<u64>,
    close: Option<CloseReason>,
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refused {
            code,
            message: message.into(),
            retry_after_ms: None,
            close: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Refused::new(error_code::INVALID_FIELD, message)
    }

    fn internal() -> Self {
        Refused::new(error_code::INTERNAL, "storage unavailable")
    }

    fn then_close(mut self, code: u16) -> Self {
        self.close = Some(CloseReason::new(code, self.message.clone()));
        self
    }

    /// The `error` frame, naming `id`.
    fn to_frame(&self, id: Option<String>) -> ServerMessage {
        ServerMessage::Error(ErrorFrame {
            code: self.code.into(),
            message: self.message.clone(),
            id,
            retry_after_ms: self.retry_after_ms,
        })
    }
}

/// The `rate_limited` refusal of a frame the transport did not admit: it
/// names the frame's id and when to send it again.
pub(crate) fn rate_limited(text: &str, wait: std::time::Duration) -> ServerMessage {
    ServerMessage::Error(ErrorFrame {
        code: error_code::RATE_LIMITED.into(),
        message: "too many messages; send again after retry_after_ms".into(),
        id: frame_id(text),
        retry_after_ms: Some(retry_after_ms(wait)),
    })
}

/// The `id` of a raw client frame, if it has one that can be echoed.
fn frame_id(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    echoable(message_id(&value))
}

/// An id short enough to echo back (longer ones are refused unnamed).
fn echoable(id: Option<&str>) -> Option<String> {
    id.filter(|id| id.len() <= MAX_ID_BYTES).map(str::to_owned)
}

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
        let refused = Refused::new(error_code::BAD_JSON, "binary frames are not supported");
        self.refuse(refused, None).await;
    }

    /// Handles one admitted text frame and answers its id.
    pub(crate) async fn on_text(&mut self, text: &str) {
        if text == PLAIN_PING {
            self.peer
                .send(Outbound::Text(Utf8Bytes::from_static(PLAIN_PONG)))
                .await;
            return;
        }
        let (msg, id) = match parse(text) {
            Ok(parsed) => parsed,
            Err((refused, id)) => {
                self.refuse(refused, id).await;
                return;
            }
        };
        match self.handle(msg).await {
            Ok(()) => {
                if let Some(id) = id {
                    self.reply(ServerMessage::Ack(Ack { id })).await;
                }
            }
            Err(refused) => self.refuse(refused, id).await,
        }
    }

    async fn reply(&self, msg: ServerMessage) {
        self.peer.send(frame(&msg)).await;
    }

    /// Sends the error, then closes if the refusal says so (the close frame
    /// goes after what was queued).
    async fn refuse(&self, refused: Refused, id: Option<String>) {
        self.reply(refused.to_frame(id)).await;
        if let Some(close) = refused.close {
            self.peer.close(close);
        }
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<(), Refused> {
        let user = match (&msg, &self.user) {
            (ClientMessage::Ping { t }, _) => {
                self.reply(ServerMessage::Pong(Pong { t: *t })).await;
                return Ok(());
            }
            (ClientMessage::Hello { name, token }, _) => {
                let (name, token) = (name.clone(), token.clone());
                return self.hello(&name, token).await;
            }
            (_, None) => {
                return Err(Refused::new(error_code::NOT_WELCOMED, "send hello first"));
            }
            (_, Some(user)) => (user.id, user.name.clone()),
        };
        match msg {
            ClientMessage::Join {
                room,
                since,
                epoch,
                limit,
            } => self.join(user, &room, since, epoch, limit).await,
            ClientMessage::History {
                room,
                before,
                limit,
                ..
            } => self.history(&room, before, limit).await,
            ClientMessage::Leave { room } => self.leave(&room),
            ClientMessage::ChatSend { id, room, text } => {
                self.chat_send(user, id, &room, &text).await
            }
            ClientMessage::Typing { room } => self.typing(&user.1, &room),
            ClientMessage::MetricsSubscribe { interval_ms } => {
                let stats = self.state.hub().clone();
                self.state
                    .metrics()
                    .subscribe(self.peer.clone(), interval_ms, stats);
                Ok(())
            }
            ClientMessage::MetricsUnsubscribe => {
                self.state.metrics().unsubscribe(self.peer.id);
                Ok(())
            }
            ClientMessage::Ping { .. } | ClientMessage::Hello { .. } => Ok(()),
        }
    }

    async fn hello(&mut self, name: &str, token: Option<String>) -> Result<(), Refused> {
        if self.user.is_some() {
            return Err(Refused::invalid("already welcomed"));
        }
        let name = validate_name(name).map_err(|e| {
            Refused::invalid(format!("invalid name: {e}")).then_close(close_code::AUTH_REFUSED)
        })?;
        // The token is the identity: presenting it again keeps the same user
        // (and so the de-duplication of re-sent messages) across reconnects.
        // A token whose user expired (idle, no stored message) is taken as a
        // new identity: nothing of the old one is left to de-duplicate.
        let token = match token {
            Some(token) if crate::ids::is_valid_token(&token) => token,
            Some(_) => {
                return Err(Refused::invalid("invalid token").then_close(close_code::AUTH_REFUSED));
            }
            None => crate::ids::new_token(),
        };
        let id = self.state.store().user(&token).await.map_err(|e| {
            tracing::error!(error = %e, "hello: store failed");
            Refused::internal()
        })?;
        tracing::debug!(conn = self.peer.id, user = id, name, "welcome");
        self.user = Some(User {
            id,
            name: name.clone(),
            _online: self.state.online().enter(id),
        });
        self.reply(ServerMessage::Welcome(Welcome {
            session: crate::ids::session_id(self.peer.id),
            name,
            token,
            rooms: self.state.hub().room_names(),
        }))
        .await;
        // The room directory right after the welcome, then its changes.
        self.state
            .directory()
            .subscribe(self.state.hub(), &self.peer);
        Ok(())
    }

    async fn join(
        &mut self,
        (user, name): (UserId, String),
        room: &str,
        since: Option<u64>,
        epoch: Option<u64>,
        limit: Option<u32>,
    ) -> Result<(), Refused> {
        let room = validate_room(room).map_err(|e| Refused::invalid(e.to_string()))?;
        let hub = self.state.hub().clone();
        if !hub.has_room(&room)
            && let Err(wait) = self.state.room_creations().try_create(user, Instant::now())
        {
            return Err(Refused {
                retry_after_ms: Some(retry_after_ms(wait)),
                ..Refused::new(
                    error_code::RATE_LIMITED,
                    "creating rooms too fast; join again after retry_after_ms",
                )
            });
        }
        hub.create_room(&room)
            .map_err(|e| Refused::new(error_code::LIMIT_REACHED, e.to_string()))?;
        // A second join of the same room starts over (e.g. with a new since).
        hub.leave(&room, self.peer.id);
        let config = self.state.config();
        // Without `since`, the client may ask for fewer (or more, up to the
        // maximum) recent messages than the default.
        let recent = limit.map_or(config.history_recent, |limit| {
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .clamp(1, config.history_max.max(1))
        });
        let query = HistoryQuery {
            since,
            epoch,
            recent,
            max: config.history_max,
        };
        // What the room delivered during the read follows the history (see
        // Hub::begin_join); a history still short of it (too many came
        // meanwhile, or the stream started over) is read again.
        for _ in 0..MAX_JOIN_READS {
            // What the room delivers while the history is read comes after it.
            hub.begin_join(&room, self.peer.id);
            let (peer, key, hub) = (self.peer.clone(), room.clone(), hub.clone());
            let name = name.clone();
            let handoff = Box::new(move |history: History| {
                let stream = (history.epoch, history.last_seq);
                let mut frames: Vec<Utf8Bytes> = history
                    .messages
                    .into_iter()
                    .map(|m| Utf8Bytes::from(ServerMessage::ChatMessage(m).to_json()))
                    .collect();
                frames.push(Utf8Bytes::from(
                    ServerMessage::Joined(Joined {
                        stream: key.clone(),
                        last_seq: history.last_seq,
                        epoch: history.epoch,
                    })
                    .to_json(),
                ));
                hub.join(&key, &peer, (user, &name), Some(stream), frames)
            });
            match self.state.store().join(&room, query, handoff).await {
                Ok(JoinOutcome::Joined) => {
                    tracing::debug!(conn = self.peer.id, room, ?since, "joined");
                    self.state.hub().presence_changed(&room, Some(&self.peer));
                    self.state.sync().joined(&room);
                    return Ok(());
                }
                Ok(JoinOutcome::Stale) => {
                    tracing::debug!(
                        conn = self.peer.id,
                        room,
                        "join: history stale, reading again"
                    );
                    continue;
                }
                // The room expired in between, or our queue is full (and we
                // are being closed).
                Ok(JoinOutcome::Failed) => {
                    tracing::warn!(conn = self.peer.id, room, "join: room gone or queue full");
                    break;
                }
                Err(e) => {
                    // Not a member: stop recording for this join.
                    self.state.hub().leave(&room, self.peer.id);
                    tracing::error!(error = %e, room, "join: store failed");
                    return Err(Refused::internal());
                }
            }
        }
        tracing::warn!(
            conn = self.peer.id,
            room,
            "join failed; the client is told to join again"
        );
        Err(Refused::new(
            error_code::INTERNAL,
            "join failed; join again",
        ))
    }

    /// One page of older history: `history`, then (by the caller) the ack.
    /// Bounded by `limit` and by the frame size: the oldest messages of a
    /// page that would not fit in [`MAX_FRAME_BYTES`] are left for the next
    /// page (`has_more`).
    async fn history(&mut self, room: &str, before: u64, limit: u32) -> Result<(), Refused> {
        let room = validate_room(room).map_err(|e| Refused::invalid(e.to_string()))?;
        if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
            return Err(Refused::invalid(format!(
                "limit must be 1-{MAX_HISTORY_PAGE}"
            )));
        }
        if before == 0 {
            return Err(Refused::invalid("before must be at least 1"));
        }
        let page = match self.state.store().page(&room, before, limit).await {
            Ok(page) => page,
            Err(StoreError::UnknownRoom) => {
                return Err(Refused::new(
                    error_code::UNKNOWN_ROOM,
                    format!("no room {room:?}"),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, room, "history: store failed");
                return Err(Refused::internal());
            }
        };
        let text = history_frame(room, before, page, MAX_FRAME_BYTES);
        self.peer.send(Outbound::Text(text)).await;
        Ok(())
    }

    fn leave(&mut self, room: &str) -> Result<(), Refused> {
        let room = validate_room(room).map_err(|_| Refused::invalid("invalid room"))?;
        if self.state.hub().leave(&room, self.peer.id) {
            self.state.hub().presence_changed(&room, None);
        }
        Ok(())
    }

    async fn chat_send(
        &mut self,
        (user, name): (UserId, String),
        id: String,
        room: &str,
        text: &str,
    ) -> Result<(), Refused> {
        let room = validate_room(room).map_err(|e| Refused::invalid(e.to_string()))?;
        let text = validate_text(text).map_err(|e| Refused::invalid(e.to_string()))?;
        if !self.state.hub().has_room(&room) {
            return Err(Refused::invalid(format!(
                "unknown room (max {MAX_ROOM_CHARS} chars)"
            )));
        }
        let stored = self
            .state
            .store()
            .insert(user, &id, &room, &name, &text, crate::now_ms())
            .await;
        match stored {
            // A duplicate is acked again: the client lost the first ack.
            Ok(Stored::New(_) | Stored::Duplicate(_)) => Ok(()),
            Err(StoreError::UnknownRoom) => Err(Refused::invalid("unknown room")),
            Err(e) => {
                tracing::error!(error = %e, "chat.send: store failed");
                Err(Refused::internal())
            }
        }
    }

    fn typing(&mut self, name: &str, room: &str) -> Result<(), Refused> {
        let room = validate_room(room).map_err(|_| Refused::invalid("invalid room"))?;
        if !self.state.hub().is_member(&room, self.peer.id) {
            return Err(Refused::invalid("join the room first"));
        }
        self.state.hub().typing(&room, self.peer.id, name);
        if let Some(bus) = self.state.bus() {
            bus.publish(BusEvent::Typing {
                room,
                from: name.to_string(),
            });
        }
        Ok(())
    }
}

/// The `history` frame of `page`, at most `max_bytes` long: when it would
/// be longer, its oldest messages are left out (and `has_more` set), so the
/// client's next page, `before` the first message kept, has no gap.
fn history_frame(room: String, before: u64, page: Page, max_bytes: usize) -> Utf8Bytes {
    let Page {
        epoch,
        mut messages,
        mut has_more,
    } = page;
    let envelope = |messages: Vec<ChatMessage>, has_more: bool| {
        ServerMessage::History(HistoryPage {
            room: room.clone(),
            epoch,
            before,
            messages,
            has_more,
        })
    };
    // Empty list, `has_more: false`: the longest "true" is one byte shorter.
    let mut budget = max_bytes.saturating_sub(envelope(Vec::new(), false).to_json().len());
    // Newest first: keep as many of the newest as fit (each plus a comma).
    let mut keep = 0;
    for m in messages.iter().rev() {
        let size = serde_json::to_string(m).map_or(usize::MAX, |t| t.len() + 1);
        if size > budget {
            break;
        }
        budget -= size;
        keep += 1;
    }
    if keep < messages.len() {
        messages.drain(..messages.len() - keep);
        has_more = true;
    }
    Utf8Bytes::from(envelope(messages, has_more).to_json())
}

fn frame(msg: &ServerMessage) -> Outbound {
    Outbound::Text(Utf8Bytes::from(msg.to_json()))
}

/// Parses a client frame and its id, telling bad JSON, an unknown type, a
/// bad id and bad fields apart. A refusal names the id when it can be echoed.
fn parse(text: &str) -> Result<(ClientMessage, Option<String>), (Refused, Option<String>)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            Refused::new(error_code::BAD_JSON, format!("not JSON: {e}")),
            None,
        )
    })?;
    let raw_id = message_id(&value);
    let id = echoable(raw_id);
    match value.get("socketType") {
        Some(Value::String(ty)) if KNOWN_TYPES.contains(&ty.as_str()) => {}
        Some(Value::String(ty)) => {
            let shown: String = ty.chars().take(40).collect();
            let refused = Refused::new(
                error_code::UNKNOWN_TYPE,
                format!("unknown socketType {shown:?}"),
            );
            return Err((refused, id));
        }
        _ => {
            return Err((
                Refused::new(error_code::UNKNOWN_TYPE, "missing socketType"),
                id,
            ));
        }
    }
    if let Some(raw) = raw_id
        && (raw.is_empty() || raw.len() > MAX_ID_BYTES || raw.chars().any(char::is_control))
    {
        let refused = Refused::invalid(format!(
            "id must be 1-{MAX_ID_BYTES} bytes without control characters"
        ));
        return Err((refused, id));
    }
    match serde_json::from_value(value) {
        Ok(msg) => Ok((msg, id)),
        Err(e) => Err((Refused::invalid(e.to_string()), id)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn refusal(text: &str) -> (&'static str, Option<String>) {
        let (refused, id) = parse(text).unwrap_err();
        (refused.code, id)
    }

    #[test]
    fn parse_tells_errors_apart_and_keeps_the_id() {
        assert_eq!(refusal("{"), (error_code::BAD_JSON, None));
        assert_eq!(refusal("42"), (error_code::UNKNOWN_TYPE, None));
        let (refused, id) = parse(r#"{"socketType":"nope","id":"x"}"#).unwrap_err();
        assert_eq!(refused.message, "unknown socketType \"nope\"");
        assert_eq!(id.as_deref(), Some("x"));
        assert_eq!(
            refusal(r#"{"socketType":"chat.send","id":"c1","room":"r"}"#),
            (error_code::INVALID_FIELD, Some("c1".into()))
        );
        assert_eq!(
            refusal(r#"{"socketType":"join","id":"j1"}"#),
            (error_code::INVALID_FIELD, Some("j1".into()))
        );
        assert_eq!(
            refusal(r#"{"socketType":"leave","room":"r","id":""}"#),
            (error_code::INVALID_FIELD, Some(String::new()))
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let text = format!(r#"{{"socketType":"ping","t":1,"id":"{long}"}}"#);
        assert_eq!(refusal(&text), (error_code::INVALID_FIELD, None));
        assert_eq!(
            parse(r#"{"socketType":"ping","t":1,"id":"p"}"#).unwrap(),
            (ClientMessage::Ping { t: 1.0 }, Some("p".into()))
        );
    }

    #[test]
    fn rate_limited_names_the_frame_and_the_wait() {
        let wait = std::time::Duration::from_micros(1500);
        assert_eq!(
            rate_limited(r#"{"socketType":"chat.send","id":"c9"}"#, wait),
            ServerMessage::Error(ErrorFrame {
                code: error_code::RATE_LIMITED.into(),
                message: "too many messages; send again after retry_after_ms".into(),
                id: Some("c9".into()),
                retry_after_ms: Some(2),
            })
        );
        let ServerMessage::Error(ErrorFrame { id, .. }) = rate_limited("not json", wait) else {
            panic!("an error frame");
        };
        assert_eq!(id, None);
    }
}

#[cfg(test)]
mod history_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn msg(seq: u64, len: usize) -> ChatMessage {
        ChatMessage {
            stream: "r".into(),
            epoch: 1,
            seq,
            id: format!("c{seq}"),
            from: "ada".into(),
            text: "x".repeat(len),
            at: 0,
        }
    }

    #[test]
    fn a_page_too_large_for_a_frame_keeps_its_newest_messages() {
        let page = Page {
            epoch: 1,
            messages: (1..=10).map(|seq| msg(seq, 1000)).collect(),
            has_more: false,
        };
        let text = history_frame("r".into(), 11, page.clone(), 4500);
        assert!(text.len() <= 4500, "{}", text.len());
        let ServerMessage::History(HistoryPage {
            messages, has_more, ..
        }) = serde_json::from_str(text.as_str()).unwrap()
        else {
            panic!("a history frame");
        };
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!((seqs, has_more), (vec![7, 8, 9, 10], true));
        // A page that fits is sent whole.
        let text = history_frame("r".into(), 11, page, MAX_FRAME_BYTES);
        let ServerMessage::History(HistoryPage {
            messages, has_more, ..
        }) = serde_json::from_str(text.as_str()).unwrap()
        else {
            panic!("a history frame");
        };
        assert_eq!((messages.len(), has_more), (10, false));
    }
}
