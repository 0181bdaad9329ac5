//! The wire contract v2 (notes/CONTRACT.md) as the server keeps it, checked
//! with a raw WebSocket client: `limits` first, one `ack` or `error` per id
//! for every client message type, `rate_limited` with its id and a retry
//! hint, and stream epochs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Sends `frame` with `id` set.
async fn send_with_id(ws: &mut Ws, mut frame: Value, id: &str) {
    frame["id"] = json!(id);
    send(ws, frame).await;
}

/// Reads frames until `last` is acked; returns every ack and error that
/// named an id, by id, in order of arrival, and the other frames' types.
async fn answers_until(ws: &mut Ws, last: &str) -> (HashMap<String, Vec<Value>>, Vec<String>) {
    let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
    let mut others = Vec::new();
    loop {
        let v = next_json(ws, WAIT).await;
        let ty = v["socketType"].as_str().unwrap_or_default().to_string();
        match (ty.as_str(), v["id"].as_str()) {
            ("ack" | "error", Some(id)) => {
                let done = ty == "ack" && id == last;
                by_id.entry(id.to_string()).or_default().push(v);
                if done {
                    return (by_id, others);
                }
            }
            _ => others.push(ty),
        }
    }
}

fn only(answers: &HashMap<String, Vec<Value>>, id: &str) -> Value {
    let got = answers
        .get(id)
        .unwrap_or_else(|| panic!("no answer for {id}"));
    assert_eq!(got.len(), 1, "exactly one answer for {id}: {got:?}");
    got[0].clone()
}

fn assert_acked(answers: &HashMap<String, Vec<Value>>, id: &str) {
    assert_eq!(only(answers, id), json!({"socketType": "ack", "id": id}));
}

fn assert_refused(answers: &HashMap<String, Vec<Value>>, id: &str, code: &str) {
    let e = only(answers, id);
    assert_eq!(
        (e["socketType"].as_str(), e["code"].as_str()),
        (Some("error"), Some(code)),
        "{e}"
    );
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn limits_come_first_with_the_default_rate_and_burst() {
    let mut cfg = config();
    cfg.rate = heartline_server::config::Config::default().rate;
    cfg.burst = heartline_server::config::Config::default().burst;
    let server = start(cfg).await;
    let mut ws = connect_url(&server.url(), None).await.unwrap();
    let limits = next_json(&mut ws, WAIT).await;
    assert_eq!(
        limits,
        json!({"socketType": "limits", "rate": 50.0, "burst": 100, "max_frame_bytes": 65536})
    );
    server.stop().await;
}

#[tokio::test]
async fn every_client_message_type_with_an_id_is_acked_or_refused_with_that_id() {
    let mut cfg = config();
    cfg.max_rooms = 4; // lobby, random, help + one
    let server = start(cfg).await;
    let mut ws = connect(&server).await;

    // Before hello: ping is answered, anything else is refused not_welcomed.
    let before: [(&str, Value); 8] = [
        ("p0", json!({"socketType": "ping", "t": 1})),
        ("j0", json!({"socketType": "join", "room": "lobby"})),
        ("l0", json!({"socketType": "leave", "room": "lobby"})),
        (
            "c0",
            json!({"socketType": "chat.send", "room": "lobby", "text": "hi"}),
        ),
        ("t0", json!({"socketType": "typing", "room": "lobby"})),
        ("s0", json!({"socketType": "metrics.subscribe"})),
        ("u0", json!({"socketType": "metrics.unsubscribe"})),
        (
            "y0",
            json!({"socketType": "history", "room": "lobby", "before": 9, "limit": 5}),
        ),
    ];
    for (id, frame) in before.clone() {
        send_with_id(&mut ws, frame, id).await;
    }
    send_with_id(&mut ws, json!({"socketType": "hello", "name": "ada"}), "h0").await;
    let (answers, others) = answers_until(&mut ws, "h0").await;
    assert_acked(&answers, "p0");
    for id in ["j0", "l0", "c0", "t0", "s0", "u0", "y0"] {
        assert_refused(&answers, id, "not_welcomed");
    }
    assert_eq!(
        others,
        ["pong", "welcome"],
        "the reply comes before its ack"
    );

    // Welcomed: every type is handled and acked.
    let handled: [(&str, Value); 10] = [
        ("p1", json!({"socketType": "ping", "t": 2})),
        ("j1", json!({"socketType": "join", "room": "lobby"})),
        (
            "c1",
            json!({"socketType": "chat.send", "room": "lobby", "text": "hi"}),
        ),
        ("t1", json!({"socketType": "typing", "room": "lobby"})),
        (
            "s1",
            json!({"socketType": "metrics.subscribe", "interval_ms": 60000}),
        ),
        ("u1", json!({"socketType": "metrics.unsubscribe"})),
        ("l1", json!({"socketType": "leave", "room": "lobby"})),
        // Idempotent: a second leave is handled the same way.
        ("l2", json!({"socketType": "leave", "room": "lobby"})),
        ("j2", json!({"socketType": "join", "room": "own-room"})),
        (
            "y1",
            json!({"socketType": "history", "room": "lobby", "before": 100, "limit": 10}),
        ),
    ];
    for (id, frame) in handled.clone() {
        send_with_id(&mut ws, frame, id).await;
    }
    // Refusals, each final and named.
    let refused: [(&str, Value, &str); 9] = [
        ("r1", json!({"socketType": "nope"}), "unknown_type"),
        ("r2", json!({"room": "lobby"}), "unknown_type"),
        ("r3", json!({"socketType": "join"}), "invalid_field"),
        (
            "r4",
            json!({"socketType": "typing", "room": "lobby"}),
            "invalid_field",
        ),
        (
            "r5",
            json!({"socketType": "chat.send", "room": "lobby", "text": "  "}),
            "invalid_field",
        ),
        (
            "r6",
            json!({"socketType": "hello", "name": "again"}),
            "invalid_field",
        ),
        (
            "r7",
            json!({"socketType": "join", "room": "one-too-many"}),
            "limit_reached",
        ),
        (
            "r8",
            json!({"socketType": "history", "room": "lobby", "before": 100, "limit": 0}),
            "invalid_field",
        ),
        (
            "r9",
            json!({"socketType": "history", "room": "no-such-room", "before": 100, "limit": 5}),
            "unknown_room",
        ),
    ];
    for (id, frame, _) in refused.clone() {
        send_with_id(&mut ws, frame, id).await;
    }
    send_with_id(&mut ws, json!({"socketType": "ping", "t": 3}), "end").await;
    let (answers, others) = answers_until(&mut ws, "end").await;
    for (id, _) in &handled {
        assert_acked(&answers, id);
    }
    for (id, _, code) in &refused {
        assert_refused(&answers, id, code);
    }
    assert!(others.contains(&"joined".to_string()), "{others:?}");
    assert!(others.contains(&"history".to_string()), "{others:?}");
    assert_eq!(
        answers.len(),
        handled.len() + refused.len() + 1,
        "{answers:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn join_is_acked_after_its_history_and_joined() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    chat(&mut ws, "m1", "lobby", "one").await;
    send(
        &mut ws,
        json!({"socketType": "join", "room": "lobby", "since": 0, "id": "j"}),
    )
    .await;
    let mut order = Vec::new();
    loop {
        let v = next_json(&mut ws, WAIT).await;
        let ty = v["socketType"].as_str().unwrap().to_string();
        if ty == "presence" {
            continue;
        }
        order.push(ty.clone());
        if ty == "ack" {
            assert_eq!(v["id"], "j");
            break;
        }
    }
    assert_eq!(order, ["chat.message", "joined", "ack"]);
    server.stop().await;
}

#[tokio::test]
async fn a_rate_limited_frame_is_named_given_a_retry_hint_and_not_handled() {
    let mut cfg = config();
    cfg.rate = 1.0;
    cfg.burst = 3;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await; // 1 token
    send(
        &mut ada,
        json!({"socketType": "join", "room": "lobby", "id": "j"}),
    )
    .await; // 2
    for id in ["a", "b"] {
        // 3, then refused
        send(
            &mut ada,
            json!({"socketType": "chat.send", "id": id, "room": "lobby", "text": id}),
        )
        .await;
    }
    let (answers, _) = answers_until(&mut ada, "a").await;
    assert_acked(&answers, "j");
    let refusal = match answers.get("b") {
        Some(_) => only(&answers, "b"),
        None => next_of(&mut ada, "error").await,
    };
    assert_eq!(refusal["code"], "rate_limited", "{refusal}");
    assert_eq!(refusal["id"], "b", "the refusal names the frame");
    let retry = refusal["retry_after_ms"].as_u64().expect("a retry hint");
    assert!((1..=1000).contains(&retry), "{retry}");

    // "b" was not handled: another client sees only "a" in the history.
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    let (history, _) = join(&mut bob, "lobby", Some(0)).await;
    assert_eq!(
        history
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a"]
    );
    // Sent again after the hint, it goes through, on the same connection.
    tokio::time::sleep(Duration::from_millis(retry)).await;
    send(
        &mut ada,
        json!({"socketType": "chat.send", "id": "b", "room": "lobby", "text": "b"}),
    )
    .await;
    let (answers, _) = answers_until(&mut ada, "b").await;
    assert_acked(&answers, "b");
    server.stop().await;
}

#[tokio::test]
async fn up_to_burst_refusals_in_a_row_keep_the_connection_open() {
    let mut cfg = config();
    cfg.rate = 2.0;
    cfg.burst = 4;
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    // 4 admitted, then 4 refused: not more than the burst, so no close.
    for i in 0..8 {
        send(
            &mut ws,
            json!({"socketType": "ping", "t": i, "id": format!("p{i}")}),
        )
        .await;
    }
    let mut refused = Vec::new();
    let mut retry = 0;
    while refused.len() < 4 {
        let v = next_json(&mut ws, WAIT).await;
        if v["socketType"] == "error" {
            assert_eq!(v["code"], "rate_limited");
            refused.push(v["id"].as_str().unwrap().to_string());
            retry = v["retry_after_ms"].as_u64().unwrap();
        }
    }
    assert_eq!(refused, ["p4", "p5", "p6", "p7"]);
    // After the hint, the connection is still open and the next is handled.
    tokio::time::sleep(Duration::from_millis(retry)).await;
    send(&mut ws, json!({"socketType": "ping", "t": 9, "id": "p9"})).await;
    let (answers, _) = answers_until(&mut ws, "p9").await;
    assert_acked(&answers, "p9");
    server.stop().await;
}

#[tokio::test]
async fn a_join_with_a_stale_epoch_gets_the_history_from_seq_1() {
    let mut cfg = config();
    cfg.history_recent = 1;
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    let (_, joined) = join(&mut ws, "lobby", None).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    for i in 1..=3 {
        chat(&mut ws, &format!("m{i}"), "lobby", "x").await;
    }
    let join_with = |since: u64, epoch: u64| json!({"socketType": "join", "room": "lobby", "since": since, "epoch": epoch});
    // The room's own epoch: `since` holds.
    send(&mut ws, join_with(2, epoch)).await;
    let (seqs, joined) = history_of_join(&mut ws).await;
    assert_eq!((seqs, joined["epoch"].as_u64()), (vec![3], Some(epoch)));
    // Another epoch: `since` is ignored, everything from seq 1.
    send(&mut ws, join_with(2, epoch ^ 1)).await;
    let (seqs, joined) = history_of_join(&mut ws).await;
    assert_eq!(
        (seqs, joined["epoch"].as_u64()),
        (vec![1, 2, 3], Some(epoch))
    );
    server.stop().await;
}

/// The `seq`s replayed before `joined` (checking each carries the epoch of
/// the `joined`), and the `joined`.
async fn history_of_join(ws: &mut Ws) -> (Vec<u64>, Value) {
    let mut messages = Vec::new();
    loop {
        let v = next_json(ws, WAIT).await;
        match v["socketType"].as_str() {
            Some("chat.message") => messages.push(v),
            Some("joined") => {
                assert!(
                    messages.iter().all(|m| m["epoch"] == v["epoch"]),
                    "{messages:?}"
                );
                let seqs = messages
                    .iter()
                    .map(|m| m["seq"].as_u64().unwrap())
                    .collect();
                return (seqs, v);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn epochs_are_stable_across_restarts_and_new_after_expiry_or_a_wiped_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut cfg = config();
    cfg.db = db.to_string_lossy().into_owned();
    cfg.room_expiry_ms = 200;

    let server = start(cfg.clone()).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    let (_, joined) = join(&mut ws, "lobby", None).await;
    let lobby = joined["epoch"].as_u64().unwrap();
    send(
        &mut ws,
        json!({"socketType": "chat.send", "id": "m1", "room": "lobby", "text": "x"}),
    )
    .await;
    let m = next_of(&mut ws, "chat.message").await;
    assert_eq!(
        (m["epoch"].as_u64(), m["seq"].as_u64()),
        (Some(lobby), Some(1))
    );
    assert_eq!(next_of(&mut ws, "ack").await["id"], "m1");
    // A user's room expires once empty and idle; made again, a new epoch.
    let (_, joined) = join(&mut ws, "short-lived", None).await;
    let first = joined["epoch"].as_u64().unwrap();
    send(
        &mut ws,
        json!({"socketType": "leave", "room": "short-lived"}),
    )
    .await;
    assert!(eventually(WAIT, || !server.state.hub().has_room("short-lived")).await);
    let (_, joined) = join(&mut ws, "short-lived", None).await;
    assert_ne!(joined["epoch"].as_u64().unwrap(), first);
    drop(ws);
    server.stop().await;

    // Restarted on the same file: the same epoch.
    let server = start(cfg.clone()).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    let (history, joined) = join(&mut ws, "lobby", Some(0)).await;
    assert_eq!(joined["epoch"].as_u64(), Some(lobby));
    assert_eq!(history[0]["epoch"].as_u64(), Some(lobby));
    drop(ws);
    server.stop().await;

    // Wiped: a new epoch, seq from 1 again.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    let (_, joined) = join(&mut ws, "lobby", None).await;
    assert_ne!(joined["epoch"].as_u64(), Some(lobby));
    assert_eq!(joined["last_seq"], 0);
    server.stop().await;
}
