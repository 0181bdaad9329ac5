//! `/ws`: admission (Origin, limits), then per connection a send task and a
//! receive task, joined by `tokio::select!`.
//!
//! The send task owns the socket's write half: it drains the connection's
//! bounded queue, sends RFC 6455 Pings, enforces the idle timeout and writes
//! the close frame. The receive task parses and handles the client's frames.
//! Anything else (rooms, the metrics sampler, the store) reaches the
//! connection only through its [`Peer`] handle.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, body::Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use heartline_protocol::{
    ClientMessage, MAX_ROOM_CHARS, PLAIN_PING, PLAIN_PONG, ServerMessage, close_code, error_code,
    validate_name, validate_room, validate_text,
};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::limits::{ConnectionGuard, Refusal, TokenBucket};
use crate::peer::{CloseReason, Outbound, Peer};
use crate::state::AppState;
use crate::store::{StoreError, Stored, UserId};

/// Bytes tungstenite reads from the socket at a time: small, so an idle
/// connection costs little memory (the default is 128 KiB).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes of outgoing frames collected before a write (default 128 KiB).
const WRITE_BUFFER: usize = 8 * 1024;
/// Frames written before one flush.
const MAX_WRITE_BATCH: usize = 256;
/// Refused frames in a row that get a client closed for abuse.
const MAX_STRIKES: u32 = 10;
/// Longest client message id, in bytes.
const MAX_ID_BYTES: usize = 128;
/// How long a close handshake may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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

/// The `/ws` route: checks `Origin` and the connection limits, then upgrades.
pub async fn ws_handler(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.origins().allows(origin));
        if !allowed {
            tracing::warn!(?origin, "websocket refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    if state.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let ip = connect_info.map(|Extension(ConnectInfo(addr))| addr.ip());
    let max = state.config().max_frame_bytes.max(1024);
    let ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"));
    match state.limiter().admit(ip) {
        Ok(guard) => ws.on_upgrade(move |socket| run(socket, state, guard, ip)),
        // Upgrade and close with a code, so the client knows to back off
        // (a browser cannot read an HTTP status of a failed handshake).
        Err(refusal) => {
            tracing::warn!(?ip, ?refusal, "websocket refused: connection limit");
            let reason = match refusal {
                Refusal::PerIp => "too many connections from this address",
                Refusal::Total => "too many connections",
            };
            ws.on_upgrade(move |socket| refuse(socket, close_code::TRY_AGAIN_LATER, reason))
        }
    }
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    if socket.send(close).await.is_ok() {
        // Wait for the client's close reply, briefly.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = socket.recv().await {}
        })
        .await;
    }
}

/// Serves one connection until it closes.
async fn run(socket: WebSocket, state: AppState, guard: ConnectionGuard, ip: Option<IpAddr>) {
    let conn_id = state.next_conn_id();
    let config = state.config().clone();
    let (tx, rx) = mpsc::channel(config.send_queue.max(8));
    let (ctl, ctl_rx) = watch::channel(None);
    let peer = Peer::new(conn_id, tx, Arc::new(ctl));
    let counters = state.counters().clone();
    counters.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn_id, ?ip, "connected");

    let epoch = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let (sink, stream) = socket.split();
    let send = SendLoop {
        sink,
        rx,
        ctl: ctl_rx,
        shutdown: state.shutdown_signal(),
        ping_every: config.ping_interval(),
        idle_timeout: config.idle_timeout(),
        last_seen: last_seen.clone(),
        epoch,
        counters: counters.clone(),
    };
    let session = Session {
        bucket: TokenBucket::new(config.rate, config.burst, std::time::Instant::now()),
        state: state.clone(),
        peer: peer.clone(),
        user: None,
        strikes: 0,
        last_seen,
        epoch,
    };
    let mut send_task = tokio::spawn(send.run());
    let mut recv_task = tokio::spawn(session.run(stream));
    tokio::select! {
        _ = &mut send_task => {
            // Closed by the server: let the reader see the client's close
            // reply, so the handshake completes cleanly.
            if tokio::time::timeout(CLOSE_GRACE, &mut recv_task).await.is_err() {
                recv_task.abort();
            }
        }
        _ = &mut recv_task => {
            // The client left, or the reader asked for a close (oversized
            // frame): let the writer send it, if any.
            peer.close(CloseReason { abrupt: true, ..CloseReason::new(1000, "") });
            if tokio::time::timeout(CLOSE_GRACE, &mut send_task).await.is_err() {
                send_task.abort();
            }
        }
    }

    for room in state.hub().leave_all(conn_id) {
        state.hub().presence_changed(&room, None);
    }
    state.metrics().unsubscribe(conn_id);
    counters.connections.fetch_sub(1, Ordering::Relaxed);
    drop(guard);
    tracing::debug!(conn_id, "disconnected");
}

/// The write half and what drives it.
struct SendLoop {
    sink: SplitSink<WebSocket, Message>,
    rx: mpsc::Receiver<Outbound>,
    ctl: watch::Receiver<Option<CloseReason>>,
    shutdown: watch::Receiver<bool>,
    ping_every: Duration,
    idle_timeout: Duration,
    last_seen: Arc<AtomicU64>,
    epoch: Instant,
    counters: Arc<crate::metrics::Counters>,
}

enum Event {
    Control(bool),
    Shutdown,
    Out(Option<Outbound>),
    Ping,
}

enum Step {
    Continue,
    Close(CloseReason),
    /// The socket is gone: stop without a close frame.
    Stop,
}

impl SendLoop {
    async fn run(mut self) {
        let mut ping = tokio::time::interval_at(Instant::now() + self.ping_every, self.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            // Pick an event first, then act on it: the branches' futures
            // borrow `self` until the select is over.
            let event = tokio::select! {
                biased;
                changed = self.ctl.changed() => Event::Control(changed.is_ok()),
                _ = self.shutdown.wait_for(|down| *down) => Event::Shutdown,
                out = self.rx.recv() => Event::Out(out),
                _ = ping.tick() => Event::Ping,
            };
            let step = match event {
                Event::Control(alive) => close_requested(&mut self.ctl, alive),
                Event::Shutdown => Step::Close(CloseReason::new(1001, "server shutting down")),
                Event::Out(Some(out)) => self.write(out).await,
                Event::Out(None) => Step::Stop,
                Event::Ping => self.ping().await,
            };
            match step {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Stop => return,
            }
        };
        if !reason.abrupt {
            tracing::debug!(code = reason.code, reason = %reason.reason, "closing");
            let frame = Message::Close(Some(CloseFrame {
                code: reason.code,
                reason: Utf8Bytes::from(reason.reason),
            }));
            // What was queued before the close (acks, replies) goes first.
            let drain_then_close = async {
                let mut n = 0;
                while n < MAX_WRITE_BATCH * 4 {
                    match self.rx.try_recv() {
                        Ok(out) => n += feed(&mut self.sink, out).await?,
                        Err(_) => break,
                    }
                }
                self.counters
                    .frames_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.sink.send(frame).await
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, drain_then_close).await;
        }
    }

    /// Writes `first` and whatever else is queued, then flushes. A close
    /// request or a write that takes longer than the idle timeout (a client
    /// that stopped reading) interrupts it.
    async fn write(&mut self, first: Outbound) -> Step {
        let counters = self.counters.clone();
        let write = async {
            let mut n = feed(&mut self.sink, first).await?;
            while n < MAX_WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(out) => n += feed(&mut self.sink, out).await?,
                    Err(_) => break,
                }
            }
            self.sink.flush().await?;
            counters.frames_out.fetch_add(n as u64, Ordering::Relaxed);
            Ok::<(), axum::Error>(())
        };
        tokio::select! {
            biased;
            changed = self.ctl.changed() => close_requested(&mut self.ctl, changed.is_ok()),
            r = write => if r.is_ok() { Step::Continue } else { Step::Stop },
            _ = tokio::time::sleep(self.idle_timeout) => {
                Step::Close(CloseReason { abrupt: true, ..CloseReason::new(1008, "write timeout") })
            }
        }
    }

    /// Drops a client silent for longer than the idle timeout; pings the others.
    async fn ping(&mut self) -> Step {
        let seen = Duration::from_millis(self.last_seen.load(Ordering::Relaxed));
        let idle = self.epoch.elapsed().saturating_sub(seen);
        if idle >= self.idle_timeout {
            tracing::debug!(?idle, "idle timeout");
            return Step::Close(CloseReason::new(close_code::IDLE_TIMEOUT, "idle timeout"));
        }
        let ping = self.sink.send(Message::Ping(Bytes::new()));
        tokio::select! {
            biased;
            changed = self.ctl.changed() => close_requested(&mut self.ctl, changed.is_ok()),
            r = ping => if r.is_ok() { Step::Continue } else { Step::Stop },
            _ = tokio::time::sleep(self.idle_timeout) => Step::Stop,
        }
    }
}

fn close_requested(ctl: &mut watch::Receiver<Option<CloseReason>>, alive: bool) -> Step {
    if !alive {
        return Step::Stop;
    }
    match ctl.borrow_and_update().clone() {
        Some(reason) => Step::Close(reason),
        None => Step::Continue,
    }
}

async fn feed(
    sink: &mut SplitSink<WebSocket, Message>,
    out: Outbound,
) -> Result<usize, axum::Error> {
    match out {
        Outbound::Text(text) => {
            sink.feed(Message::Text(text)).await?;
            Ok(1)
        }
        Outbound::Batch(frames) => {
            let n = frames.len();
            for text in frames {
                sink.feed(Message::Text(text)).await?;
            }
            Ok(n)
        }
    }
}

/// A welcomed client.
struct User {
    id: UserId,
    name: String,
}

/// The read half's state: who the client is and how fast it may go.
struct Session {
    state: AppState,
    peer: Peer,
    user: Option<User>,
    bucket: TokenBucket,
    strikes: u32,
    last_seen: Arc<AtomicU64>,
    epoch: Instant,
}

/// A refused frame: error code, message, and the reliable message's id.
type Refused = (&'static str, String, Option<String>);

impl Session {
    async fn run(mut self, mut stream: SplitStream<WebSocket>) {
        while let Some(frame) = stream.next().await {
            // Anything the client sends, Pongs included, shows it is alive.
            let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_seen.store(now_ms, Ordering::Relaxed);
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    self.read_failed(e);
                    return;
                }
            };
            if self.peer.is_closing() {
                // Closing: only wait for the client's close reply.
                continue;
            }
            match frame {
                Message::Text(text) => {
                    self.count_in();
                    if self.admit() {
                        self.on_text(text.as_str()).await;
                    }
                }
                Message::Binary(_) => {
                    self.count_in();
                    if self.admit() {
                        self.error(
                            error_code::BAD_JSON,
                            "binary frames are not supported".into(),
                            None,
                        )
                        .await;
                    }
                }
                // tungstenite answers Pings itself; a Close ends the stream.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
            }
        }
    }

    fn read_failed(&self, e: axum::Error) {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = e.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(e)) => {
                tracing::debug!(error = %e, "frame too big");
                self.peer.close(CloseReason::new(1009, "message too big"));
            }
            Some(WsError::Protocol(e)) => {
                tracing::debug!(error = %e, "protocol error");
                self.peer.close(CloseReason::new(1002, "protocol error"));
            }
            Some(WsError::Utf8(_)) => {
                self.peer.close(CloseReason::new(1007, "invalid UTF-8"));
            }
            _ => tracing::debug!(error = %inner, "read failed"),
        }
    }

    fn count_in(&self) {
        self.state
            .counters()
            .frames_in
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a token from the bucket. Without one the frame is refused with
    /// `rate_limited`; too many refusals in a row close the connection.
    fn admit(&mut self) -> bool {
        if self.bucket.try_take(std::time::Instant::now()) {
            self.strikes = 0;
            return true;
        }
        self.strikes += 1;
        if self.strikes > MAX_STRIKES {
            tracing::info!(conn = self.peer.id, "closing: rate limit exceeded");
            self.peer.close(CloseReason::new(
                close_code::RATE_LIMITED,
                "rate limit exceeded",
            ));
        } else {
            // Not awaited: a flooding client must not make us wait on it.
            self.peer.push(frame(&ServerMessage::Error {
                code: error_code::RATE_LIMITED.into(),
                message: "too many messages; slow down".into(),
                id: None,
                retry_after_ms: None,
            }));
        }
        false
    }

    async fn on_text(&mut self, text: &str) {
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
