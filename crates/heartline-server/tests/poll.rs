//! The `/poll` endpoints (the long-poll fallback) with a real HTTP client
//! (reqwest) against a real server on port 0, beside real WebSocket
//! clients: order, acks and de-duplication, the recv contract, expiry,
//! limits, a bad Origin, and bad input answered with a clear 4xx while the
//! server keeps serving others. No fixed sleeps: every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestServer, config, connect, hello, join, next_json, next_presence, start};
use heartline::core::poll::{PollBatch, PollError, PollOpened, encode_frames};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(10);

/// One poll session, driven by hand.
struct Poller {
    http: reqwest::Client,
    base: String,
    session: String,
    after: u64,
}

impl Poller {
    async fn open(server: &TestServer) -> Poller {
        let http = reqwest::Client::new();
        let base = format!("http://{}/poll", server.addr);
        let answer = http.post(format!("{base}/open")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let opened: PollOpened = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert_eq!(opened.session.len(), 32, "128 bits in hex");
        Poller {
            http,
            base,
            session: opened.session,
            after: 0,
        }
    }

    async fn send(&self, frames: &[Value]) -> StatusCode {
        let texts: Vec<String> = frames.iter().map(Value::to_string).collect();
        self.send_body(encode_frames(texts.iter().map(String::as_str)))
            .await
            .0
    }

    async fn send_body(&self, body: String) -> (StatusCode, String) {
        let answer = self
            .http
            .post(format!("{}/send?session={}", self.base, self.session))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .unwrap();
        (answer.status(), answer.text().await.unwrap())
    }

    /// One recv with `after`; answers the batch.
    async fn recv_after(&self, after: u64) -> PollBatch {
        let answer = self
            .http
            .get(format!(
                "{}/recv?session={}&after={after}",
                self.base, self.session
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        PollBatch::parse(&answer.text().await.unwrap()).unwrap()
    }

    /// Receives (acknowledging as it goes) until `want` holds for a frame,
    /// collecting every frame on the way.
    async fn until(&mut self, mut want: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let give_up = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        loop {
            assert!(Instant::now() < give_up, "timed out; got {got:?}");
            let batch = self.recv_after(self.after).await;
            if let Some(last) = batch.last() {
                assert_eq!(batch.first, self.after + 1, "frames go on from after");
                self.after = last;
            }
            let mut done = false;
            for text in batch.frames {
                let value: Value = serde_json::from_str(&text).unwrap();
                done |= want(&value);
                got.push(value);
            }
            if done {
                return got;
            }
            assert!(batch.close.is_none(), "closed: {:?}", batch.close);
        }
    }
}

fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["socketType"] == ty).collect()
}

#[tokio::test]
async fn a_poll_client_chats_with_a_socket_client_in_order_acked_once_each() {
    let server = start(config()).await;
    let mut poll = Poller::open(&server).await;
    let first = poll.until(|f| f["socketType"] == "limits").await;
    assert_eq!(first[0]["socketType"], "limits", "limits come first");

    let mut ws = connect(&server).await;
    hello(&mut ws, "bob", None).await;
    join(&mut ws, "lobby", None).await;

    assert_eq!(
        poll.send(&[
            json!({"socketType": "hello", "name": "ada", "id": "h"}),
            json!({"socketType": "join", "room": "lobby", "id": "j"}),
        ])
        .await,
        StatusCode::NO_CONTENT
    );
    poll.until(|f| f["socketType"] == "ack" && f["id"] == "j")
        .await;
    next_presence(&mut ws, "lobby", Some(&["ada", "bob"])).await;

    // 20 messages in batches of 5, the 7th sent twice.
    let mut acks = Vec::new();
    for batch in 0..4 {
        let mut frames: Vec<Value> = (0..5)
            .map(|i| {
                let n = batch * 5 + i;
                json!({"socketType": "chat.send", "room": "lobby", "id": format!("m{n}"), "text": format!("poll {n}")})
            })
            .collect();
        if batch == 1 {
            frames.push(
                json!({"socketType": "chat.send", "room": "lobby", "id": "m6", "text": "poll 6"}),
            );
        }
        assert_eq!(poll.send(&frames).await, StatusCode::NO_CONTENT);
    }
    let got = poll
        .until(|f| f["socketType"] == "ack" && f["id"] == "m19")
        .await;
    acks.extend(of_type(&got, "ack").into_iter().map(|a| a["id"].clone()));
    let m6 = acks.iter().filter(|id| **id == "m6").count();
    assert_eq!(m6, 2, "a re-sent id is acked again: {acks:?}");

    // The socket client sees each once, in order.
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let frame = next_json(&mut ws, DEADLINE).await;
        if frame["socketType"] == "chat.message" {
            seen.push((
                frame["seq"].as_u64().unwrap(),
                frame["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let expected: Vec<(u64, String)> = (0..20).map(|n| (n + 1, format!("poll {n}"))).collect();
    assert_eq!(seen, expected);

    // And the other way round, with typing.
    common::send(&mut ws, json!({"socketType": "typing", "room": "lobby"})).await;
    poll.until(|f| f["socketType"] == "typing" && f["from"] == "bob")
        .await;
    common::chat(&mut ws, "b1", "lobby", "from the socket").await;
    poll.until(|f| f["socketType"] == "chat.message" && f["text"] == "from the socket")
        .await;

    // Stored once each: 21 messages.
    let mut reader = connect(&server).await;
    hello(&mut reader, "reader", None).await;
    let (history, _) = join(&mut reader, "lobby", Some(0)).await;
    assert_eq!(history.len(), 21);
}

#[tokio::test]
async fn recv_keeps_frames_until_a_later_after_acknowledges_them_and_holds_when_empty() {
    let server = start(config()).await;
    let poll = Poller::open(&server).await;
    let a = poll.recv_after(0).await;
    assert_eq!(a.first, 1);
    assert!(!a.frames.is_empty());
    // Asked again with the same `after`: the same frames.
    let b = poll.recv_after(0).await;
    assert_eq!(a, b);
    // Acknowledged: gone; nothing new, so the server holds, then answers
    // empty (the test config holds 1 s).
    let last = a.last().unwrap();
    let started = Instant::now();
    let c = poll.recv_after(last).await;
    assert!(c.frames.is_empty(), "{c:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it was held"
    );
}

#[tokio::test]
async fn an_unpolled_session_expires_and_leaves_its_rooms() {
    let server = start(config()).await;
    let mut poll = Poller::open(&server).await;
    poll.send(&[
        json!({"socketType": "hello", "name": "ada"}),
        json!({"socketType": "join", "room": "lobby", "id": "j"}),
    ])
    .await;
    poll.until(|f| f["id"] == "j").await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "bob", None).await;
    join(&mut ws, "lobby", None).await;
    // No recv for the idle timeout (2 s in the test config): ada leaves.
    next_presence(&mut ws, "lobby", Some(&["bob"])).await;
    let give_up = Instant::now() + DEADLINE;
    loop {
        let answer = poll
            .http
            .get(format!(
                "{}/recv?session={}&after=0",
                poll.base, poll.session
            ))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body = answer.text().await.unwrap();
        if status == StatusCode::NOT_FOUND {
            let error: PollError = serde_json::from_str(&body).unwrap();
            assert_eq!(error.code, "unknown_session");
            break;
        }
        // The expiry may still hand out the session's close first.
        assert!(Instant::now() < give_up, "still there: {status} {body}");
    }
}

#[tokio::test]
async fn a_foreign_origin_and_too_many_sessions_are_refused() {
    let mut cfg = config();
    cfg.allowed_origins = Some(vec!["http://app.example".into()]);
    cfg.max_connections_per_ip = 2;
    let server = start(cfg).await;
    let http = reqwest::Client::new();
    let open = format!("http://{}/poll/open", server.addr);
    let answer = http
        .post(&open)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let error: PollError = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(error.code, "origin_not_allowed");
    for _ in 0..2 {
        let answer = http
            .post(&open)
            .header("origin", "http://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let answer = http.post(&open).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: PollError = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(error.code, "try_again_later");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    let mut cfg = config();
    cfg.rate = 5.0;
    cfg.burst = 5;
    let server = start(cfg).await;
    let mut poll = Poller::open(&server).await;
    let frames: Vec<Value> = (0..20)
        .map(|n| json!({"socketType": "ping", "t": n, "id": format!("p{n}")}))
        .collect();
    assert_eq!(poll.send(&frames).await, StatusCode::NO_CONTENT);
    let give_up = Instant::now() + DEADLINE;
    let mut limited = 0;
    loop {
        assert!(Instant::now() < give_up, "no close after the flood");
        let batch = poll.recv_after(poll.after).await;
        if let Some(last) = batch.last() {
            poll.after = last;
        }
        limited += batch
            .frames
            .iter()
            .filter(|f| f.contains("rate_limited"))
            .count();
        if let Some(close) = batch.close {
            assert_eq!(close.code, heartline_protocol::close_code::RATE_LIMITED);
            break;
        }
    }
    assert!(limited >= 1, "refused with rate_limited first");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_others_are_still_served() {
    let server = start(config()).await;
    let bystander = Poller::open(&server).await;
    let poll = Poller::open(&server).await;
    for (body, want) in [
        ("{not json".to_owned(), StatusCode::BAD_REQUEST),
        ("[1, 2]".to_owned(), StatusCode::BAD_REQUEST),
        (
            r#"{"socketType":"ping"}"#.to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "[\"{}\"]",
                "x".repeat(server.state.config().poll_max_body_bytes() + 1)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (status, text) = poll.send_body(body).await;
        assert_eq!(status, want, "{text}");
        let error: PollError = serde_json::from_str(&text).expect("a PollError body");
        assert!(!error.message.is_empty());
    }
    let http = reqwest::Client::new();
    let base = format!("http://{}/poll", server.addr);
    for (method, path) in [
        ("POST", "send?session=nope"),
        ("GET", "recv?session=nope&after=0"),
        ("POST", "close?session=nope"),
    ] {
        let request = if method == "GET" {
            http.get(format!("{base}/{path}"))
        } else {
            http.post(format!("{base}/{path}")).body("[]")
        };
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        let error: PollError = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        assert_eq!(error.code, "unknown_session");
    }
    let answer = http
        .get(format!(
            "{base}/recv?session={}&after=minus",
            bystander.session
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    // The bystander is served as before.
    let batch = bystander.recv_after(0).await;
    assert!(batch.frames[0].contains("limits"));
    assert_eq!(
        bystander
            .send(&[json!({"socketType": "ping", "t": 1})])
            .await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn close_ends_the_session_at_once_and_answers_its_held_recv() {
    let server = start(config()).await;
    let mut poll = Poller::open(&server).await;
    poll.send(&[
        json!({"socketType": "hello", "name": "ada"}),
        json!({"socketType": "join", "room": "lobby", "id": "j"}),
    ])
    .await;
    poll.until(|f| f["id"] == "j").await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "bob", None).await;
    join(&mut ws, "lobby", None).await;
    let held = {
        let http = poll.http.clone();
        let url = format!(
            "{}/recv?session={}&after={}",
            poll.base, poll.session, poll.after
        );
        tokio::spawn(async move { http.get(url).send().await.map(|a| a.status()) })
    };
    let answer = poll
        .http
        .post(format!("{}/close?session={}", poll.base, poll.session))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    next_presence(&mut ws, "lobby", Some(&["bob"])).await;
    let status = tokio::time::timeout(DEADLINE, held)
        .await
        .expect("the held recv is answered")
        .unwrap()
        .unwrap();
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}
