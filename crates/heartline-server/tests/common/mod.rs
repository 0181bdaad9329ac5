//! Helpers shared by the integration tests: a server on 127.0.0.1:0 and
//! tokio-tungstenite clients. No fixed sleeps: every wait is "the next frame,
//! within a timeout" or "poll a condition until a deadline".
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod native;
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use heartline_server::{AppState, config::Config, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long to wait for a frame that should come.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// The `/ws` URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Starts a graceful shutdown; returns the serve task to await.
    pub fn shutdown(&mut self) -> &mut JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        &mut self.task
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn stop(mut self) {
        let task = self.shutdown();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server stops in time")
            .expect("serve task")
            .expect("serve");
    }
}

/// Starts a server with `config` (its address is replaced by 127.0.0.1:0).
pub async fn start(mut config: Config) -> TestServer {
    config.addr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(config.addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config, addr).await.expect("state");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        state,
        stop: Some(stop),
        task,
    }
}

/// A test configuration: in-memory database, short intervals.
pub fn config() -> Config {
    Config::for_tests()
}

/// Opens a client socket and reads the `limits` frame that comes first.
pub async fn connect(server: &TestServer) -> Ws {
    let mut ws = connect_url(&server.url(), None).await.expect("connect");
    let limits = next_json(&mut ws, WAIT).await;
    assert_eq!(limits["socketType"], "limits", "{limits}");
    ws
}

/// Opens a client socket to `url` and reads the `limits` frame.
pub async fn connect_to(url: &str) -> Ws {
    let mut ws = connect_url(url, None).await.expect("connect");
    let limits = next_json(&mut ws, WAIT).await;
    assert_eq!(limits["socketType"], "limits", "{limits}");
    ws
}

/// A child process killed when dropped, so a failing test leaves no server
/// behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens a client socket, optionally with an `Origin` header (the `limits`
/// frame is left unread).
pub async fn connect_url(
    url: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")?;
    Ok(ws)
}

/// Sends a JSON value as a text frame.
pub async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// Sends raw text.
pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// Whether `msg` is a `rooms` directory frame: the server sends those to
/// every welcomed connection whenever rooms change, so the helpers skip
/// them unless a test asks for them ([`next_frame_all`], [`next_rooms`]).
pub fn is_rooms(msg: &Message) -> bool {
    matches!(msg, Message::Text(t) if t.as_str().starts_with(r#"{"socketType":"rooms""#))
}

/// The next frame other than Ping/Pong and `rooms`, within `within`.
pub async fn next_frame(ws: &mut Ws, within: Duration) -> Message {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = next_frame_all(ws, left).await;
        if !is_rooms(&msg) {
            return msg;
        }
    }
}

/// The next frame other than Ping/Pong (`rooms` included), within `within`.
pub async fn next_frame_all(ws: &mut Ws, within: Duration) -> Message {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

/// The next `rooms` frame for which `pred` holds (other frames skipped),
/// within [`WAIT`]; returns its `rooms` array.
pub async fn next_rooms(ws: &mut Ws, mut pred: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = next_frame_all(ws, left).await;
        if !is_rooms(&msg) {
            continue;
        }
        let v: Value = serde_json::from_str(text(&msg).expect("text").as_str()).expect("JSON");
        let rooms = v["rooms"].as_array().cloned().expect("a rooms array");
        if pred(&rooms) {
            return rooms;
        }
    }
}

/// The summary of `name` in a `rooms` array.
pub fn room_in<'a>(rooms: &'a [Value], name: &str) -> Option<&'a Value> {
    rooms.iter().find(|r| r["name"] == name)
}

/// The next JSON text frame (Pings skipped), within `within`.
pub async fn next_json(ws: &mut Ws, within: Duration) -> Value {
    match next_frame(ws, within).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next JSON frame whose socketType is `ty`, skipping others (presence,
/// typing…) that may interleave.
pub async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next_json(ws, left).await;
        if v["socketType"] == ty {
            return v;
        }
    }
}

/// Waits for the server's close frame; returns its code and reason.
pub async fn expect_close(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a close in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error before a close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// Says hello as `name`; returns the welcome frame.
pub async fn hello(ws: &mut Ws, name: &str, token: Option<&str>) -> Value {
    let mut msg = json!({"socketType": "hello", "name": name});
    if let Some(token) = token {
        msg["token"] = json!(token);
    }
    send(ws, msg).await;
    let v = next_json(ws, WAIT).await;
    assert_eq!(v["socketType"], "welcome", "{v}");
    v
}

/// Joins `room`; returns the history frames and the `joined` frame, and
/// consumes the `presence` of this room that follows. Presence and typing of
/// other rooms that interleave are skipped.
pub async fn join(ws: &mut Ws, room: &str, since: Option<u64>) -> (Vec<Value>, Value) {
    let mut msg = json!({"socketType": "join", "room": room});
    if let Some(since) = since {
        msg["since"] = json!(since);
    }
    send(ws, msg).await;
    let mut history = Vec::new();
    loop {
        let v = next_json(ws, WAIT).await;
        match v["socketType"].as_str() {
            Some("chat.message") if v["stream"] == room => history.push(v),
            Some("joined") if v["stream"] == room => {
                next_presence(ws, room, None).await;
                return (history, v);
            }
            Some("presence" | "typing") => {}
            _ => panic!("unexpected frame during join: {v}"),
        }
    }
}

/// The next `presence` of `room` (listing `users`, if given), skipping other
/// frames.
pub async fn next_presence(ws: &mut Ws, room: &str, users: Option<&[&str]>) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next_json(ws, left).await;
        if v["socketType"] == "presence"
            && v["room"] == room
            && users.is_none_or(|users| v["users"] == json!(users))
        {
            return v;
        }
    }
}

/// Sends a chat message and waits for its ack (skipping broadcasts).
pub async fn chat(ws: &mut Ws, id: &str, room: &str, text: &str) {
    send(
        ws,
        json!({"socketType": "chat.send", "id": id, "room": room, "text": text}),
    )
    .await;
    let ack = next_of(ws, "ack").await;
    assert_eq!(ack["id"], id);
}

/// Asserts no frame other than Ping/Pong arrives within `within`.
pub async fn expect_silence(ws: &mut Ws, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(msg))) if is_rooms(&msg) => continue,
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw HTTP/1.1 GET; returns status, lower-cased headers and body bytes.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    extra_headers: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&raw[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// A header's value.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Text of a text frame.
pub fn text(msg: &Message) -> Option<&Utf8Bytes> {
    match msg {
        Message::Text(t) => Some(t),
        _ => None,
    }
}

/// A raw WebSocket client that never reads until asked: it answers nothing,
/// like a dead peer. `close_code` then reads everything the server sent.
pub struct RawClient {
    stream: TcpStream,
    leftover: Vec<u8>,
}

impl RawClient {
    /// Opens the socket and completes the handshake.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            buf.push(byte[0]);
        }
        assert!(
            buf.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
        RawClient {
            stream,
            leftover: Vec::new(),
        }
    }

    /// Reads until the server closes the TCP connection; returns the opcodes
    /// of the frames received and the close code, if a close frame came.
    pub async fn read_to_end(mut self) -> (Vec<u8>, Option<u16>) {
        let mut raw = std::mem::take(&mut self.leftover);
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut raw))
            .await
            .expect("server closes in time")
            .unwrap();
        let mut opcodes = Vec::new();
        let mut code = None;
        let mut rest = raw.as_slice();
        while rest.len() >= 2 {
            let opcode = rest[0] & 0x0f;
            let len = usize::from(rest[1] & 0x7f);
            assert!(len < 126, "only small control frames expected");
            let payload = &rest[2..2 + len];
            if opcode == 0x8 && len >= 2 {
                code = Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
            opcodes.push(opcode);
            rest = &rest[2 + len..];
        }
        (opcodes, code)
    }
}
