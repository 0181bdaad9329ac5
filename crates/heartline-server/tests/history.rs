//! `history` pages and `join {limit}`, with real WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use heartline_protocol::{MAX_HISTORY_PAGE, MAX_TEXT_CHARS};
use serde_json::{Value, json};

/// A server that lets a test post many messages quickly.
async fn fast_server() -> TestServer {
    let mut cfg = config();
    cfg.rate = 10_000.0;
    cfg.burst = 1_000;
    start(cfg).await
}

/// Sends a `history` request and returns the answer for `id`: the
/// `history` frame then the ack, or the error.
async fn page(ws: &mut Ws, id: &str, room: &str, before: u64, limit: u64) -> Result<Value, Value> {
    send(
        ws,
        json!({"socketType": "history", "id": id, "room": room, "before": before, "limit": limit}),
    )
    .await;
    history_answer(ws, id).await
}

async fn history_answer(ws: &mut Ws, id: &str) -> Result<Value, Value> {
    let mut got = None;
    loop {
        let v = next_json(ws, WAIT).await;
        match v["socketType"].as_str() {
            Some("history") => {
                assert!(got.is_none(), "one history frame per request");
                got = Some(v);
            }
            Some("ack") if v["id"] == id => {
                return Ok(got.expect("the page comes before its ack"));
            }
            Some("error") if v["id"] == id => {
                assert!(got.is_none(), "no page with a refusal");
                return Err(v);
            }
            Some("presence" | "typing" | "chat.message") => {}
            _ => panic!("unexpected frame: {v}"),
        }
    }
}

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn paging_back_through_120_messages_gives_each_once_in_order() {
    let server = fast_server().await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let (_, joined) = join(&mut ada, "lobby", None).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    for i in 1..=120 {
        chat(&mut ada, &format!("m{i}"), "lobby", &format!("text {i}")).await;
    }

    // A reader that never joined pages from the newest back.
    let mut bo = connect(&server).await;
    hello(&mut bo, "bo", None).await;
    let mut before = u64::MAX;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let p = page(&mut bo, &format!("h{pages}"), "lobby", before, 50)
            .await
            .expect("a page");
        pages += 1;
        assert_eq!(p["room"], "lobby");
        assert_eq!(p["epoch"].as_u64(), Some(epoch));
        assert_eq!(p["before"].as_u64(), Some(before));
        let s = seqs(&p);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "ascending: {s:?}");
        assert!(s.iter().all(|&seq| seq < before));
        for m in p["messages"].as_array().unwrap() {
            assert_eq!(m["text"], format!("text {}", m["seq"]));
            assert_eq!(m["stream"], "lobby");
        }
        let mut page_msgs = s.clone();
        page_msgs.extend(all);
        all = page_msgs;
        if p["has_more"] == false {
            break;
        }
        before = s[0];
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(all, (1..=120).collect::<Vec<u64>>());

    // Before seq 1 there is nothing.
    let p = page(&mut bo, "first", "lobby", 1, 50).await.unwrap();
    assert_eq!((seqs(&p), p["has_more"].clone()), (vec![], json!(false)));
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_id() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    // Like any other message, history needs a hello first.
    let e = page(&mut ws, "early", "lobby", 10, 10).await.unwrap_err();
    assert_eq!(e["code"], "not_welcomed");
    hello(&mut ws, "ada", None).await;

    let max = u64::from(MAX_HISTORY_PAGE);
    for (id, room, before, limit) in [
        ("zero-limit", "lobby", 10, 0),
        ("big-limit", "lobby", 10, max + 1),
        ("zero-before", "lobby", 0, 10),
        ("empty-room", "  ", 10, 10),
        ("long-room", &"x".repeat(33) as &str, 10, 10),
    ] {
        let e = page(&mut ws, id, room, before, limit).await.unwrap_err();
        assert_eq!(e["code"], "invalid_field", "{id}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Wrong types and missing fields: invalid_field, named.
    for (id, frame) in [
        (
            "neg",
            json!({"socketType": "history", "room": "lobby", "before": -1, "limit": 5}),
        ),
        (
            "missing",
            json!({"socketType": "history", "room": "lobby", "limit": 5}),
        ),
        (
            "huge-limit",
            json!({"socketType": "history", "room": "lobby", "before": 5, "limit": 1u64 << 40}),
        ),
    ] {
        let mut frame = frame;
        frame["id"] = json!(id);
        send(&mut ws, frame).await;
        let e = history_answer(&mut ws, id).await.unwrap_err();
        assert_eq!(e["code"], "invalid_field", "{id}: {e}");
    }
    let e = page(&mut ws, "nope", "no-such-room", 10, 10)
        .await
        .unwrap_err();
    assert_eq!(e["code"], "unknown_room", "{e}");
    // The limits are inclusive.
    assert!(page(&mut ws, "one", "lobby", 10, 1).await.is_ok());
    assert!(page(&mut ws, "max", "lobby", 10, max).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn history_requests_are_rate_limited_like_any_frame() {
    let mut cfg = config();
    cfg.rate = 1.0;
    cfg.burst = 3;
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await; // 1 token of 3
    for id in ["a", "b", "c"] {
        send(
            &mut ws,
            json!({"socketType": "history", "id": id, "room": "lobby", "before": 9, "limit": 5}),
        )
        .await;
    }
    let mut refused = None;
    let mut acked = Vec::new();
    while acked.len() + usize::from(refused.is_some()) < 3 {
        let v = next_json(&mut ws, WAIT).await;
        match v["socketType"].as_str() {
            Some("ack") => acked.push(v["id"].as_str().unwrap().to_string()),
            Some("error") => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                assert!(v["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1));
                refused = Some(v["id"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
    assert_eq!(acked, ["a", "b"]);
    assert_eq!(refused.as_deref(), Some("c"));
    server.stop().await;
}

#[tokio::test]
async fn a_page_of_long_messages_stays_under_the_frame_limit() {
    let server = fast_server().await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    join(&mut ws, "lobby", None).await;
    // 60 messages of 2000 four-byte characters: ~480 KB, far over 64 KiB.
    let text = "🦀".repeat(MAX_TEXT_CHARS);
    for i in 1..=60 {
        chat(&mut ws, &format!("m{i}"), "lobby", &text).await;
    }
    let mut before = u64::MAX;
    let mut all = Vec::new();
    loop {
        send(
            &mut ws,
            json!({"socketType": "history", "id": "h", "room": "lobby", "before": before, "limit": 60}),
        )
        .await;
        let frame = loop {
            let msg = next_frame(&mut ws, WAIT).await;
            let t = common::text(&msg).expect("text").to_string();
            if t.contains(r#""socketType":"history""#) {
                break t;
            }
        };
        assert!(frame.len() <= 64 * 1024, "{} bytes", frame.len());
        let p: Value = serde_json::from_str(&frame).unwrap();
        let s = seqs(&p);
        assert!(!s.is_empty());
        let mut merged = s.clone();
        merged.extend(all);
        all = merged;
        if p["has_more"] == false {
            break;
        }
        before = s[0];
    }
    assert_eq!(all, (1..=60).collect::<Vec<u64>>(), "no gap, no repeat");
    server.stop().await;
}

#[tokio::test]
async fn join_with_a_limit_replays_only_the_most_recent() {
    let mut cfg = config();
    cfg.rate = 10_000.0;
    cfg.burst = 1_000;
    cfg.history_max = 30;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    join(&mut ada, "lobby", None).await;
    for i in 1..=40 {
        chat(&mut ada, &format!("m{i}"), "lobby", "x").await;
    }
    let mut bo = connect(&server).await;
    hello(&mut bo, "bo", None).await;
    let history_seqs =
        |h: &[Value]| -> Vec<u64> { h.iter().map(|m| m["seq"].as_u64().unwrap()).collect() };
    let mut join_with = async |frame: Value| {
        send(&mut bo, frame).await;
        let mut history = Vec::new();
        loop {
            let v = next_json(&mut bo, WAIT).await;
            match v["socketType"].as_str() {
                Some("chat.message") => history.push(v),
                Some("joined") => {
                    assert_eq!(v["last_seq"], 40);
                    return history;
                }
                _ => {}
            }
        }
    };
    let h = join_with(json!({"socketType": "join", "room": "lobby", "limit": 5})).await;
    assert_eq!(history_seqs(&h), (36..=40).collect::<Vec<_>>());
    // Clamped: at least 1, at most --history-max.
    let h = join_with(json!({"socketType": "join", "room": "lobby", "limit": 0})).await;
    assert_eq!(history_seqs(&h), vec![40]);
    let h = join_with(json!({"socketType": "join", "room": "lobby", "limit": 1000})).await;
    assert_eq!(history_seqs(&h), (11..=40).collect::<Vec<_>>());
    // With since, the limit is ignored: everything after since.
    let h =
        join_with(json!({"socketType": "join", "room": "lobby", "since": 20, "limit": 2})).await;
    assert_eq!(history_seqs(&h), (21..=40).collect::<Vec<_>>());
    // Without limit: the server's default of recent messages (50: all 40).
    let h = join_with(json!({"socketType": "join", "room": "lobby"})).await;
    assert_eq!(history_seqs(&h), (1..=40).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_history_request_closes_with_1009() {
    let server = start(config()).await; // cap: 64 KiB
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    // Under the cap, a long room name is a field error named by the id.
    let room = "r".repeat(60 * 1024);
    let e = page(&mut ws, "long", &room, 10, 10).await.unwrap_err();
    assert_eq!(e["code"], "invalid_field");
    // Over the cap, the connection closes with 1009.
    let room = "r".repeat(65 * 1024);
    send(
        &mut ws,
        json!({"socketType": "history", "id": "huge", "room": room, "before": 10, "limit": 10}),
    )
    .await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1009);
    server.stop().await;
}
