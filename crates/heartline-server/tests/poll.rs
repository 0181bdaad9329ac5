//! The HTTP long-poll fallback (`/poll/*`) against a real server on
//! 127.0.0.1:0, with a real HTTP client (reqwest) beside real WebSocket
//! clients: poll and socket clients share rooms, presence and typing. No
//! fixed sleeps: every wait is "until this holds, within a deadline".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use common::*;
use heartline::core::poll::{PollBatch, PollClose, PollError, PollOpened, encode_frames};
use serde_json::{Value, json};

/// A poll client: one session, the `after` it has reached, and the frames
/// received but not looked at yet.
struct Poller {
    http: reqwest::Client,
    base: String,
    session: String,
    hold_ms: u64,
    after: u64,
    inbox: VecDeque<Value>,
    /// The close the server sent, once it has.
    closed: Option<PollClose>,
}

/// A response's status and body.
async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body = response.text().await.expect("a body");
    (status, body)
}

/// The code of a `PollError` body.
fn error_code_of(body: &str) -> String {
    serde_json::from_str::<PollError>(body)
        .unwrap_or_else(|e| panic!("not a PollError ({e}): {body}"))
        .code
}

fn base(server: &TestServer) -> String {
    format!("http://{}/poll", server.addr)
}

/// `POST /poll/open`, with an optional `Origin`.
async fn open_raw(server: &TestServer, origin: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().post(format!("{}/open", base(server)));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    answer(request.send().await.expect("open")).await
}

impl Poller {
    /// Opens a session and reads its first frame, `limits`.
    async fn open(server: &TestServer) -> Poller {
        let (status, body) = open_raw(server, None).await;
        assert_eq!(status, 200, "{body}");
        let opened: PollOpened = serde_json::from_str(&body).expect("PollOpened");
        assert_eq!(opened.session.len(), 32, "{body}");
        let mut poller = Poller {
            http: reqwest::Client::new(),
            base: base(server),
            session: opened.session,
            hold_ms: opened.hold_ms,
            after: 0,
            inbox: VecDeque::new(),
            closed: None,
        };
        let limits = poller.next_where(|_| true).await;
        assert_eq!(limits["socketType"], "limits", "{limits}");
        poller
    }

    /// `POST /poll/send` of these frames (JSON values as they are).
    async fn send_raw(&self, body: String, content_type: &str) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/send?session={}", self.base, self.session))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send");
        answer(response).await
    }

    /// Sends frames; expects 204.
    async fn send(&self, frames: &[Value]) {
        let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
        let body = encode_frames(texts.iter().map(String::as_str));
        let (status, body) = self.send_raw(body, "text/plain").await;
        assert_eq!(status, 204, "{body}");
    }

    /// `GET /poll/recv?after=` (status, body).
    async fn recv_raw(&self, after: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!(
                "{}/recv?session={}&after={after}",
                self.base, self.session
            ))
            .send()
            .await
            .expect("recv");
        answer(response).await
    }

    /// One recv after `after`: the batch (not taken into the inbox).
    async fn recv_after(&self, after: u64) -> PollBatch {
        let (status, body) = tokio::time::timeout(WAIT, self.recv_raw(&after.to_string()))
            .await
            .expect("recv answered in time");
        assert_eq!(status, 200, "{body}");
        PollBatch::parse(&body).expect("a PollBatch")
    }

    /// One recv: its frames go to the inbox, `after` moves on.
    async fn recv(&mut self) {
        let batch = self.recv_after(self.after).await;
        if let Some(last) = batch.last() {
            assert_eq!(batch.first, self.after + 1, "no gap, no repeat");
            self.after = last;
        }
        for frame in &batch.frames {
            self.inbox
                .push_back(serde_json::from_str(frame).expect("a JSON frame"));
        }
        if batch.close.is_some() {
            self.closed = batch.close;
        }
    }

    /// The next frame for which `pred` holds (the others before it are
    /// dropped), within [`WAIT`].
    async fn next_where(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some(frame) = self.inbox.pop_front() {
                if pred(&frame) {
                    return frame;
                }
            }
            assert!(self.closed.is_none(), "closed: {:?}", self.closed);
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such frame in time"
            );
            self.recv().await;
        }
    }

    async fn next_of(&mut self, ty: &str) -> Value {
        self.next_where(|v| v["socketType"] == ty).await
    }

    /// Receives until the server's close; returns it and the frames before.
    async fn until_close(&mut self) -> (PollClose, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "no close in time");
            self.recv().await;
        }
        (self.closed.clone().unwrap(), self.inbox.drain(..).collect())
    }

    /// `POST /poll/close`.
    async fn close(&self) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/close?session={}", self.base, self.session))
            .send()
            .await
            .expect("close");
        answer(response).await
    }

    /// Says hello and joins `room`; returns the welcome.
    async fn hello_join(&mut self, name: &str, room: &str) -> Value {
        self.send(&[
            json!({"socketType": "hello", "id": "h", "name": name}),
            json!({"socketType": "join", "id": "j", "room": room}),
        ])
        .await;
        // welcome, ack h, then the history, joined, presence, ack j.
        let welcome = self.next_of("welcome").await;
        let ack = self.next_of("ack").await;
        assert_eq!(ack["id"], "h");
        let joined = self.next_of("joined").await;
        assert_eq!(joined["stream"], room);
        let ack = self.next_of("ack").await;
        assert_eq!(ack["id"], "j");
        welcome
    }
}

/// Whether a presence frame of `room` lists exactly these users (any order).
fn presence_is(v: &Value, room: &str, users: &[&str]) -> bool {
    if v["socketType"] != "presence" || v["room"] != room {
        return false;
    }
    let Some(listed) = v["users"].as_array() else {
        return false;
    };
    let mut listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
    listed.sort_unstable();
    let mut want = users.to_vec();
    want.sort_unstable();
    listed == want
}

/// The next presence of `room` on a socket listing exactly `users`.
async fn ws_presence(ws: &mut Ws, room: &str, users: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next_json(ws, left).await;
        if presence_is(&v, room, users) {
            return;
        }
    }
}

async fn healthz(server: &TestServer) -> Value {
    let (status, _, body) = http_get(server.addr, "/healthz", "").await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test]
async fn poll_and_socket_clients_share_a_room_in_order_once_each() {
    let server = start(config()).await;
    let mut ada = Poller::open(&server).await;
    ada.hello_join("ada", "lobby").await;

    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    join(&mut bob, "lobby", None).await;
    // Presence lists both, for both transports.
    ada.next_where(|v| presence_is(v, "lobby", &["ada", "bob"]))
        .await;
    let health = healthz(&server).await;
    assert_eq!(health["poll_sessions"], 1, "{health}");
    assert_eq!(health["connections"], 2, "{health}");

    // 20 messages in three sends, c5 sent again in the last one.
    let chat = |i: u32| json!({"socketType": "chat.send", "id": format!("c{i}"), "room": "lobby", "text": format!("poll {i}")});
    ada.send(&(1..=7).map(chat).collect::<Vec<_>>()).await;
    ada.send(&(8..=14).map(chat).collect::<Vec<_>>()).await;
    let mut last: Vec<Value> = (15..=20).map(chat).collect();
    last.insert(2, chat(5));
    ada.send(&last).await;

    let mut acks: HashMap<String, usize> = HashMap::new();
    while acks.values().sum::<usize>() < 21 {
        let ack = ada.next_of("ack").await;
        *acks
            .entry(ack["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for i in 1..=20 {
        let want = if i == 5 { 2 } else { 1 };
        assert_eq!(acks.get(&format!("c{i}")), Some(&want), "acks {acks:?}");
    }

    // The socket client sees them in order, once each: seq 1..20.
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let m = next_of(&mut bob, "chat.message").await;
        assert_eq!(m["from"], "ada", "{m}");
        seen.push((
            m["seq"].as_u64().unwrap(),
            m["id"].as_str().unwrap().to_owned(),
        ));
    }
    let want: Vec<(u64, String)> = (1..=20).map(|i| (i, format!("c{i}"))).collect();
    assert_eq!(seen, want);
    // Nothing more of ada's before bob's own message: no duplicate.
    chat_and_check_no_dup(&mut bob).await;

    // Bob's message and typing reach the poll client.
    let m = ada
        .next_where(|v| v["socketType"] == "chat.message" && v["from"] == "bob")
        .await;
    assert_eq!(
        (m["seq"].as_u64(), m["id"].as_str()),
        (Some(21), Some("b1"))
    );
    send(&mut bob, json!({"socketType": "typing", "room": "lobby"})).await;
    let typing = ada.next_of("typing").await;
    assert_eq!(
        (typing["room"].as_str(), typing["from"].as_str()),
        (Some("lobby"), Some("bob"))
    );

    // The store holds each message once.
    let mut cy = connect(&server).await;
    hello(&mut cy, "cy", None).await;
    let (history, _) = join(&mut cy, "lobby", None).await;
    let ids: Vec<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut want: Vec<String> = (1..=20).map(|i| format!("c{i}")).collect();
    want.push("b1".into());
    assert_eq!(ids, want);
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());

    assert_eq!(ada.close().await.0, 204);
    server.stop().await;
}

/// Bob sends `b1`; no other message of ada's may come before it.
async fn chat_and_check_no_dup(bob: &mut Ws) {
    send(
        bob,
        json!({"socketType": "chat.send", "id": "b1", "room": "lobby", "text": "from bob"}),
    )
    .await;
    loop {
        let m = next_of(bob, "chat.message").await;
        assert_eq!(m["from"], "bob", "a repeat of ada's: {m}");
        if m["id"] == "b1" {
            return;
        }
    }
}

#[tokio::test]
async fn recv_repeats_until_acknowledged_and_holds_when_empty() {
    let server = start(config()).await;
    let poller = Poller::open(&server).await;
    assert_eq!(poller.hold_ms, 1_000);
    // `open` read `limits` (frame 1) without acknowledging it.
    let again = poller.recv_after(0).await;
    assert_eq!(again.first, 1);
    assert_eq!(again.frames.len(), 1);
    assert!(
        again.frames[0].contains(r#""socketType":"limits""#),
        "{again:?}"
    );
    poller
        .send(&[json!({"socketType": "ping", "id": "p", "t": 7})])
        .await;
    // Same `after`: the same frames, and the new ones after them.
    let deadline = tokio::time::Instant::now() + WAIT;
    let batch = loop {
        let batch = poller.recv_after(0).await;
        if batch.frames.len() >= 3 {
            break batch;
        }
        assert!(tokio::time::Instant::now() < deadline);
    };
    assert_eq!(batch.first, 1);
    assert_eq!(batch.frames[0], again.frames[0]);
    assert!(
        batch.frames[1].contains(r#""socketType":"pong""#),
        "{batch:?}"
    );
    assert!(
        batch.frames[2].contains(r#""socketType":"ack""#),
        "{batch:?}"
    );
    assert_eq!(poller.recv_after(0).await, batch);
    // A larger `after` drops them.
    let rest = poller.recv_after(1).await;
    assert_eq!((rest.first, rest.frames.len()), (2, 2));
    // All acknowledged: held for about the hold, then empty.
    let started = tokio::time::Instant::now();
    let empty = poller.recv_after(3).await;
    let held = started.elapsed();
    assert!(
        empty.frames.is_empty() && empty.close.is_none(),
        "{empty:?}"
    );
    assert!(held >= Duration::from_millis(900), "held {held:?}");
    // Acknowledged frames are gone for good.
    let after_ack = poller.recv_after(1);
    let started = tokio::time::Instant::now();
    let batch = after_ack.await;
    assert!(batch.frames.is_empty(), "{batch:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A newer recv answers the held older one at once, empty.
    let held = |after: u64| {
        let http = poller.http.clone();
        let url = format!(
            "{}/recv?session={}&after={after}",
            poller.base, poller.session
        );
        tokio::spawn(async move { answer(http.get(url).send().await.unwrap()).await })
    };
    let older = held(3);
    assert!(eventually(WAIT, || server.state.poll_recvs() == 1).await);
    let started = tokio::time::Instant::now();
    let newer = held(3);
    let (status, body) = tokio::time::timeout(WAIT, older).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(PollBatch::parse(&body).unwrap().frames.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "answered at once, not after its hold: {:?}",
        started.elapsed()
    );
    // The newer one is held for its own hold, then empty too.
    let (status, body) = tokio::time::timeout(WAIT, newer).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(PollBatch::parse(&body).unwrap().frames.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Bad `after`: not a number, negative, or beyond the last frame.
    for after in ["x", "-1", "1.5", "99"] {
        let (status, body) = poller.recv_raw(after).await;
        assert_eq!(
            (status, error_code_of(&body).as_str()),
            (400, "bad_request"),
            "{after}"
        );
    }
    assert_eq!(poller.close().await.0, 204);
    server.stop().await;
}

#[tokio::test]
async fn a_session_not_polled_expires_and_leaves_its_rooms() {
    let server = start(config()).await;
    let mut ada = Poller::open(&server).await;
    ada.hello_join("ada", "lobby").await;
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    send(&mut bob, json!({"socketType": "join", "room": "lobby"})).await;
    ws_presence(&mut bob, "lobby", &["ada", "bob"]).await;
    // Ada stops polling: after the idle timeout (2 s) she is gone.
    let started = tokio::time::Instant::now();
    ws_presence(&mut bob, "lobby", &["bob"]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "expired early: {:?}",
        started.elapsed()
    );
    let (status, body) = ada.recv_raw("0").await;
    assert_eq!(
        (status, error_code_of(&body).as_str()),
        (404, "unknown_session")
    );
    assert!(eventually(WAIT, || server.state.poll_sessions() == 0).await);
    assert!(eventually(WAIT, || server.state.open_connections() == 1).await);

    // A session kept polling does not expire: poll across two idle timeouts.
    let mut cy = Poller::open(&server).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(4_500);
    while tokio::time::Instant::now() < until {
        cy.recv().await;
    }
    cy.send(&[json!({"socketType": "ping", "id": "still", "t": 2})])
        .await;
    assert_eq!(cy.next_of("ack").await["id"], "still");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_poll_is_closed_as_too_slow() {
    let mut cfg = config();
    cfg.send_queue = 8;
    let server = start(cfg).await;
    let mut ada = Poller::open(&server).await;
    ada.hello_join("ada", "lobby").await;
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    join(&mut bob, "lobby", None).await;
    // Ada does not poll while 20 messages come: more than 8 retained.
    for i in 0..20 {
        common::chat(&mut bob, &format!("b{i}"), "lobby", "hi").await;
    }
    let (close, before) = ada.until_close().await;
    assert_eq!(close.code, 1008, "{close:?}");
    assert!(
        before.len() <= 16,
        "retained frames are bounded: {}",
        before.len()
    );
    // Its rooms were left when it closed.
    assert_eq!(server.state.hub().presence("lobby").users, vec!["bob"]);
    assert!(eventually(WAIT, || server.state.poll_sessions() == 0).await);
    server.stop().await;
}

#[tokio::test]
async fn origin_connection_limit_and_rate_limit() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 2;
    cfg.rate = 1.0;
    cfg.burst = 5;
    let server = start(cfg).await;

    let (status, body) = open_raw(&server, Some("https://evil.example")).await;
    assert_eq!(
        (status, error_code_of(&body).as_str()),
        (403, "origin_not_allowed")
    );
    let own = format!("http://{}", server.addr);
    let (status, body) = open_raw(&server, Some(&own)).await;
    assert_eq!(status, 200, "{body}");
    let first: PollOpened = serde_json::from_str(&body).unwrap();

    // CORS for allowed origins only.
    let http = reqwest::Client::new();
    let preflight = |origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/open", base(&server)))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(&own).await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(own.as_str())
    );
    let foreign = preflight("https://evil.example").await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // Two sessions per address, the third refused.
    let mut flood = Poller::open(&server).await;
    let (status, body) = open_raw(&server, None).await;
    assert_eq!(
        (status, error_code_of(&body).as_str()),
        (503, "try_again_later")
    );
    // A socket counts against the same limit.
    let mut ws = connect_url(&server.url(), None).await.unwrap();
    let (code, _) = expect_close(&mut ws, WAIT).await;
    assert_eq!(code, heartline_protocol::close_code::TRY_AGAIN_LATER);

    // Flooding beyond the burst: rate_limited errors, then the close.
    let frames: Vec<Value> = (0..30)
        .map(|i| json!({"socketType": "ping", "id": format!("f{i}"), "t": i}))
        .collect();
    flood.send(&frames).await;
    let (close, before) = flood.until_close().await;
    assert_eq!(
        close.code,
        heartline_protocol::close_code::RATE_LIMITED,
        "{close:?}"
    );
    let limited: Vec<&Value> = before
        .iter()
        .filter(|v| v["socketType"] == "error" && v["code"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), 5, "{before:?}");
    assert_eq!(limited[0]["id"], "f5");
    assert!(limited[0]["retry_after_ms"].as_u64().unwrap() >= 1);
    let acks = before.iter().filter(|v| v["socketType"] == "ack").count();
    assert_eq!(acks, 5, "{before:?}");
    // After the close was fetched the session is gone, its place free.
    let (status, body) = flood.recv_raw(&flood.after.to_string()).await;
    assert_eq!(
        (status, error_code_of(&body).as_str()),
        (404, "unknown_session")
    );
    assert!(eventually(WAIT, || server.state.open_connections() == 1).await);
    let again = Poller::open(&server).await;

    let (status, _) = reqwest::Client::new()
        .post(format!("{}/close?session={}", base(&server), first.session))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(again.close().await.0, 204);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_others_keep_working() {
    let mut cfg = config();
    cfg.max_frame_bytes = 1024;
    cfg.poll_max_body_bytes = Some(8 * 1024);
    let server = start(cfg).await;
    let mut good = Poller::open(&server).await;
    good.hello_join("good", "lobby").await;
    let victim = Poller::open(&server).await;

    for (body, content_type) in [
        ("{not json", "application/json"),
        ("[1, 2, 3]", "text/plain"),
        ("[[\"a\"]]", "application/json"),
        ("{\"socketType\":\"ping\"}", "application/json"),
        ("", "text/plain"),
    ] {
        let (status, reply) = victim.send_raw(body.into(), content_type).await;
        assert_eq!(
            (status, error_code_of(&reply).as_str()),
            (400, "bad_request"),
            "{body}"
        );
    }
    // Not UTF-8.
    let response = victim
        .http
        .post(format!("{}/send?session={}", victim.base, victim.session))
        .body(vec![b'[', 0xff, b']'])
        .send()
        .await
        .unwrap();
    let (status, reply) = self::answer(response).await;
    assert_eq!(
        (status, error_code_of(&reply).as_str()),
        (400, "bad_request")
    );
    // A body over the limit: 413 with a PollError, the session still open.
    let big: Vec<String> = (0..20).map(|_| "x".repeat(900)).collect();
    let (status, reply) = victim
        .send_raw(encode_frames(big.iter().map(String::as_str)), "text/plain")
        .await;
    assert_eq!((status, error_code_of(&reply).as_str()), (413, "too_large"));
    victim
        .send(&[json!({"socketType": "ping", "id": "alive", "t": 1})])
        .await;

    // Unknown sessions and missing parameters.
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/{path}", base(&server));
    for request in [
        http.post(url("send?session=nope")).body("[]"),
        http.get(url("recv?session=nope&after=0")),
        http.post(url("close?session=nope")),
    ] {
        let (status, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(
            (status, error_code_of(&body).as_str()),
            (404, "unknown_session")
        );
    }
    for request in [
        http.post(url("send")).body("[]"),
        http.get(url("recv?after=0")),
        http.post(url("close")),
    ] {
        let (status, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(
            (status, error_code_of(&body).as_str()),
            (400, "bad_request")
        );
    }
    let (status, body) = answer(http.get(url("nowhere")).send().await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    error_code_of(&body);

    // One frame over the frame limit: 413, and the session closes 1009.
    let mut victim = victim;
    let (status, reply) = victim
        .send_raw(encode_frames([&*"y".repeat(2_000)]), "text/plain")
        .await;
    assert_eq!((status, error_code_of(&reply).as_str()), (413, "too_large"));
    let (close, before) = victim.until_close().await;
    assert_eq!(close.code, 1009, "{close:?}");
    assert!(before.iter().any(|v| v["id"] == "alive"), "{before:?}");

    // The other client was never disturbed.
    good.send(&[
        json!({"socketType": "chat.send", "id": "ok", "room": "lobby", "text": "still here"}),
    ])
    .await;
    assert_eq!(good.next_of("ack").await["id"], "ok");
    let health = healthz(&server).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(good.close().await.0, 204);
    server.stop().await;
}

#[tokio::test]
async fn close_ends_the_session_and_answers_its_held_recv() {
    let server = start(config()).await;
    let mut ada = Poller::open(&server).await;
    ada.hello_join("ada", "lobby").await;
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    send(&mut bob, json!({"socketType": "join", "room": "lobby"})).await;
    ws_presence(&mut bob, "lobby", &["ada", "bob"]).await;
    ada.next_where(|v| presence_is(v, "lobby", &["ada", "bob"]))
        .await;
    ada.inbox.clear();
    let (session, after) = (ada.session.clone(), ada.after);
    // Receives (held: nothing is coming) until the close.
    let receiver = tokio::spawn(async move {
        let (close, _) = ada.until_close().await;
        (close, ada)
    });
    assert!(eventually(WAIT, || server.state.poll_recvs() == 1).await);
    let http = reqwest::Client::new();
    let close_url = format!("{}/close?session={session}", base(&server));
    let (status, body) = answer(http.post(&close_url).send().await.unwrap()).await;
    assert_eq!(status, 204, "{body}");
    // Presence drops at once: the next presence bob sees lists only him.
    ws_presence(&mut bob, "lobby", &["bob"]).await;
    // The held recv was answered with the close.
    let (close, ada) = tokio::time::timeout(WAIT, receiver).await.unwrap().unwrap();
    assert_eq!(close.code, 1000, "{close:?}");
    assert!(ada.after >= after);
    let (status, body) = ada.recv_raw(&ada.after.to_string()).await;
    assert_eq!(
        (status, error_code_of(&body).as_str()),
        (404, "unknown_session")
    );
    assert_eq!(ada.close().await.0, 404);
    let health = healthz(&server).await;
    assert_eq!(health["poll_sessions"], 0, "{health}");
    assert_eq!(health["connections"], 1, "{health}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_answers_held_recvs_with_1001() {
    let mut server = start(config()).await;
    let mut ada = Poller::open(&server).await;
    ada.hello_join("ada", "lobby").await;
    ada.inbox.clear();
    let recv = tokio::spawn(async move {
        let (close, _) = ada.until_close().await;
        close
    });
    assert!(eventually(WAIT, || server.state.poll_recvs() == 1).await);
    let task = server.shutdown();
    let close = tokio::time::timeout(WAIT, recv).await.unwrap().unwrap();
    assert_eq!(close.code, 1001, "{close:?}");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(server.state.poll_sessions(), 0);
}
