//! Chat rooms, history, de-duplication, persistence and metrics, with real
//! WebSocket clients against a server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn seqs(history: &[Value]) -> Vec<u64> {
    history.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn join_with_since_returns_exactly_the_missed_messages_in_order() {
    let server = start(config()).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let (history, joined) = join(&mut ada, "lobby", None).await;
    assert!(history.is_empty());
    let epoch = joined["epoch"].as_u64().expect("an epoch");
    assert!((1..1 << 53).contains(&epoch), "{joined}");
    assert_eq!(
        joined,
        json!({"socketType": "joined", "stream": "lobby", "last_seq": 0, "epoch": epoch})
    );
    for i in 1..=5 {
        chat(
            &mut ada,
            &format!("m{i}"),
            "lobby",
            &format!("  message {i} "),
        )
        .await;
    }

    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    let (history, joined) = join(&mut bob, "lobby", Some(2)).await;
    assert_eq!(seqs(&history), vec![3, 4, 5]);
    assert_eq!(joined["last_seq"], 5);
    let m = &history[0];
    assert_eq!(m["socketType"], "chat.message");
    assert_eq!(m["stream"], "lobby");
    assert_eq!(m["id"], "m3");
    assert_eq!(m["from"], "ada");
    assert_eq!(m["text"], "message 3", "trimmed");
    assert!(m["at"].as_i64().unwrap() > 1_600_000_000_000);

    // Then live messages, continuing the sequence, to both.
    chat(&mut ada, "m6", "lobby", "six").await;
    let live = next_of(&mut bob, "chat.message").await;
    assert_eq!(
        (live["seq"].as_u64(), live["id"].as_str()),
        (Some(6), Some("m6"))
    );

    // Up to date: nothing missed. Without since: the recent history.
    let mut cy = connect(&server).await;
    hello(&mut cy, "cy", None).await;
    let (history, joined) = join(&mut cy, "lobby", Some(6)).await;
    assert!(history.is_empty());
    assert_eq!(joined["last_seq"], 6);
    let (history, _) = join(&mut cy, "random", None).await;
    assert!(history.is_empty());
    let mut cfg_recent = connect(&server).await;
    hello(&mut cfg_recent, "dee", None).await;
    let (history, _) = join(&mut cfg_recent, "lobby", None).await;
    assert_eq!(seqs(&history), vec![1, 2, 3, 4, 5, 6]);
    server.stop().await;
}

#[tokio::test]
async fn recent_history_is_capped_when_since_is_absent() {
    let mut cfg = config();
    cfg.history_recent = 3;
    cfg.rate = 1000.0;
    cfg.burst = 1000;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    for i in 1..=7 {
        chat(&mut ada, &format!("m{i}"), "lobby", "x").await;
    }
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    let (history, joined) = join(&mut bob, "lobby", None).await;
    assert_eq!(seqs(&history), vec![5, 6, 7]);
    assert_eq!(joined["last_seq"], 7);
    server.stop().await;
}

#[tokio::test]
async fn a_resent_id_is_acked_twice_but_stored_and_broadcast_once() {
    let server = start(config()).await;
    let mut ada = connect(&server).await;
    let welcome = hello(&mut ada, "ada", None).await;
    let token = welcome["token"].as_str().unwrap().to_string();
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    join(&mut bob, "lobby", None).await;

    chat(&mut ada, "dup", "lobby", "once").await;
    chat(&mut ada, "dup", "lobby", "once").await; // acked again
    let first = next_of(&mut bob, "chat.message").await;
    assert_eq!(
        (first["seq"].as_u64(), first["id"].as_str()),
        (Some(1), Some("dup"))
    );

    // The same id from a new connection with the same token: still a
    // duplicate (this is how a client re-sends after a reconnect).
    drop(ada);
    let mut ada2 = connect(&server).await;
    let welcome2 = hello(&mut ada2, "ada", Some(&token)).await;
    assert_eq!(welcome2["token"], token.as_str(), "the identity is kept");
    chat(&mut ada2, "dup", "lobby", "once").await;
    // A new id from someone else with the same client id is not a duplicate.
    let mut eve = connect(&server).await;
    hello(&mut eve, "eve", None).await;
    chat(&mut eve, "dup", "lobby", "mine").await;
    chat(&mut ada2, "next", "lobby", "twice?").await;

    // Bob's next messages are eve's and then "next": nothing in between.
    let m = next_of(&mut bob, "chat.message").await;
    assert_eq!(
        (m["seq"].as_u64(), m["from"].as_str()),
        (Some(2), Some("eve"))
    );
    let m = next_of(&mut bob, "chat.message").await;
    assert_eq!(
        (m["seq"].as_u64(), m["id"].as_str()),
        (Some(3), Some("next"))
    );

    // Stored once.
    let mut cy = connect(&server).await;
    hello(&mut cy, "cy", None).await;
    let (history, _) = join(&mut cy, "lobby", Some(0)).await;
    assert_eq!(seqs(&history), vec![1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn invalid_chat_send_is_refused_with_its_id() {
    let server = start(config()).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let long = "x".repeat(2001);
    for (id, room, text) in [
        ("e1", "lobby", "   "),
        ("e2", "lobby", long.as_str()),
        ("e3", "lobby", "bell\u{7}"),
        ("e4", "", "hi"),
        ("e5", "no-such-room", "hi"),
        (
            "e6",
            "a room name that is far too long to be accepted",
            "hi",
        ),
    ] {
        send(
            &mut ada,
            json!({"socketType": "chat.send", "id": id, "room": room, "text": text}),
        )
        .await;
        let e = next_json(&mut ada, WAIT).await;
        assert_eq!(e["socketType"], "error");
        assert_eq!(e["code"], "invalid_field", "{id}: {e}");
        assert_eq!(e["id"], id);
    }
    send(
        &mut ada,
        json!({"socketType": "chat.send", "id": "", "room": "lobby", "text": "hi"}),
    )
    .await;
    assert_eq!(next_json(&mut ada, WAIT).await["code"], "invalid_field");
    // 2000 characters (multi-byte) are fine.
    chat(&mut ada, "ok", "lobby", &"é".repeat(2000)).await;
    server.stop().await;
}

#[tokio::test]
async fn presence_and_typing_follow_join_leave_and_disconnect() {
    let server = start(config()).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    join(&mut ada, "lobby", None).await;
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    let (_, _) = join(&mut bob, "lobby", None).await;
    let p = next_presence(&mut ada, "lobby", Some(&["ada", "bob"])).await;
    assert_eq!(
        p,
        json!({"socketType": "presence", "room": "lobby", "users": ["ada", "bob"], "count": 2})
    );

    send(&mut bob, json!({"socketType": "typing", "room": "lobby"})).await;
    let t = next_of(&mut ada, "typing").await;
    assert_eq!(
        t,
        json!({"socketType": "typing", "room": "lobby", "from": "bob"})
    );
    // Typing is never stored, and not echoed to the typist.
    send(&mut bob, json!({"socketType": "ping", "t": 1})).await;
    assert_eq!(next_of(&mut bob, "pong").await["t"], 1.0);

    // Typing in a room one has not joined is refused.
    send(&mut bob, json!({"socketType": "typing", "room": "random"})).await;
    assert_eq!(next_of(&mut bob, "error").await["code"], "invalid_field");

    send(&mut bob, json!({"socketType": "leave", "room": "lobby"})).await;
    next_presence(&mut ada, "lobby", Some(&["ada"])).await;
    join(&mut bob, "lobby", None).await;
    next_presence(&mut ada, "lobby", Some(&["ada", "bob"])).await;
    drop(bob);
    next_presence(&mut ada, "lobby", Some(&["ada"])).await;

    let mut cy = connect(&server).await;
    hello(&mut cy, "cy", None).await;
    let (history, _) = join(&mut cy, "lobby", Some(0)).await;
    assert!(history.is_empty(), "typing was not stored");
    server.stop().await;
}

#[tokio::test]
async fn users_create_rooms_by_joining_within_the_room_limit() {
    let mut cfg = config();
    cfg.max_rooms = 4; // three default rooms + one
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let (_, joined) = join(&mut ada, "rust", None).await;
    assert_eq!(joined["stream"], "rust");
    chat(&mut ada, "r1", "rust", "first in a new room").await;
    send(
        &mut ada,
        json!({"socketType": "join", "room": "one-too-many"}),
    )
    .await;
    assert_eq!(next_of(&mut ada, "error").await["code"], "limit_reached");
    let mut bob = connect(&server).await;
    let welcome = hello(&mut bob, "bob", None).await;
    assert_eq!(welcome["rooms"], json!(["help", "lobby", "random", "rust"]));
    server.stop().await;
}

#[tokio::test]
async fn history_and_identities_survive_a_restart_on_a_file_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut cfg = config();
    cfg.db = db.to_string_lossy().into_owned();

    let server = start(cfg.clone()).await;
    let mut ada = connect(&server).await;
    let token = hello(&mut ada, "ada", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    join(&mut ada, "lobby", None).await;
    for i in 1..=3 {
        chat(
            &mut ada,
            &format!("m{i}"),
            "lobby",
            &format!("before restart {i}"),
        )
        .await;
    }
    join(&mut ada, "made-up", None).await;
    chat(&mut ada, "x1", "made-up", "in a user's room").await;
    drop(ada);
    server.stop().await;

    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    let welcome = hello(&mut ada, "ada", Some(&token)).await;
    assert!(
        welcome["rooms"]
            .as_array()
            .unwrap()
            .contains(&json!("made-up"))
    );
    let (history, joined) = join(&mut ada, "lobby", Some(1)).await;
    assert_eq!(seqs(&history), vec![2, 3]);
    assert_eq!(history[1]["text"], "before restart 3");
    assert_eq!(joined["last_seq"], 3);
    // A re-send of an acked id after the restart is still a duplicate.
    chat(&mut ada, "m3", "lobby", "before restart 3").await;
    send(
        &mut ada,
        json!({"socketType": "chat.send", "id": "m4", "room": "lobby", "text": "after"}),
    )
    .await;
    // A member sees its own message broadcast, then the ack.
    let m = next_of(&mut ada, "chat.message").await;
    assert_eq!((m["seq"].as_u64(), m["id"].as_str()), (Some(4), Some("m4")));
    assert_eq!(
        next_of(&mut ada, "ack").await,
        json!({"socketType": "ack", "id": "m4"})
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unclean_kill_loses_no_acked_message() {
    // The real binary, started on port 0 with a ready file, killed with
    // SIGKILL right after the acks.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let spawn = |ready: &std::path::Path| {
        let _ = std::fs::remove_file(ready);
        std::process::Command::new(env!("CARGO_BIN_EXE_heartline-server"))
            .args(["--addr", "127.0.0.1:0", "--dist", "/nonexistent"])
            .arg("--db")
            .arg(&db)
            .arg("--ready-file")
            .arg(ready)
            .env("RUST_LOG", "warn")
            .env_remove("HEARTLINE_ALLOWED_ORIGINS")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let ready = dir.path().join("ready");
    let read_addr = |ready: std::path::PathBuf| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(&ready)
                && let Ok(addr) = s.trim().parse::<std::net::SocketAddr>()
            {
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server ready in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    let mut child = spawn(&ready);
    let addr = read_addr(ready.clone()).await;
    let url = format!("ws://{addr}/ws");
    let mut ada = connect_to(&url).await;
    hello(&mut ada, "ada", None).await;
    for i in 1..=20 {
        chat(
            &mut ada,
            &format!("k{i}"),
            "lobby",
            &format!("kill test {i}"),
        )
        .await;
    }
    child.0.kill().unwrap(); // SIGKILL: no shutdown, no checkpoint
    child.0.wait().unwrap();

    let child = spawn(&ready);
    let addr = read_addr(ready.clone()).await;
    let mut bob = connect_to(&format!("ws://{addr}/ws")).await;
    hello(&mut bob, "bob", None).await;
    let (history, joined) = join(&mut bob, "lobby", Some(0)).await;
    assert_eq!(seqs(&history), (1..=20).collect::<Vec<_>>());
    assert_eq!(joined["last_seq"], 20);
    drop(child);
}

#[tokio::test]
async fn metrics_flow_only_while_subscribed() {
    let server = start(config()).await; // interval: 100 ms
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    assert!(!server.state.metrics().is_sampling());
    send(&mut ada, json!({"socketType": "metrics.subscribe"})).await;
    let mut last_at = 0;
    for _ in 0..3 {
        let s = next_json(&mut ada, WAIT).await;
        assert_eq!(s["socketType"], "metrics.sample", "{s}");
        assert!(!s["cpu_per_core"].as_array().unwrap().is_empty());
        assert!(s["mem_total"].as_u64().unwrap() > 0);
        assert!(s["mem_used"].as_u64().unwrap() > 0);
        assert_eq!(s["load"].as_array().unwrap().len(), 3);
        assert_eq!(s["connections"], 1);
        assert_eq!(s["rooms"], 3);
        assert!(s["messages_in_per_sec"].as_f64().is_some());
        assert!(s["at"].as_i64().unwrap() > last_at);
        last_at = s["at"].as_i64().unwrap();
    }
    assert!(server.state.metrics().is_sampling());

    send(&mut ada, json!({"socketType": "metrics.unsubscribe"})).await;
    // A sample may already be on its way; the pong marks the cut.
    send(&mut ada, json!({"socketType": "ping", "t": 1})).await;
    loop {
        let v = next_json(&mut ada, WAIT).await;
        if v["socketType"] == "pong" {
            break;
        }
        assert_eq!(v["socketType"], "metrics.sample");
    }
    assert!(
        eventually(WAIT, || !server.state.metrics().is_sampling()).await,
        "sampling stops with the last subscriber"
    );
    let taken = server.state.metrics().samples_taken();
    expect_silence(&mut ada, Duration::from_millis(500)).await; // 5 intervals
    assert_eq!(server.state.metrics().samples_taken(), taken, "no sampling");

    // A subscriber that disconnects also stops the sampling.
    send(
        &mut ada,
        json!({"socketType": "metrics.subscribe", "interval_ms": 1}),
    )
    .await;
    assert_eq!(
        next_json(&mut ada, WAIT).await["socketType"],
        "metrics.sample"
    );
    drop(ada);
    assert!(eventually(WAIT, || !server.state.metrics().is_sampling()).await);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_dropped_and_never_stalls_the_room() {
    let mut cfg = config();
    cfg.send_queue = 8;
    cfg.rate = 10_000.0;
    cfg.burst = 10_000;
    let server = start(cfg).await;
    // A client that joins, then never reads: its TCP buffers fill, then its
    // send queue, and it is dropped.
    let mut slow = connect(&server).await;
    hello(&mut slow, "slow", None).await;
    join(&mut slow, "lobby", None).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    join(&mut bob, "lobby", None).await;

    let text = "z".repeat(2000);
    let mut i = 0;
    let dropped = loop {
        i += 1;
        chat(&mut ada, &format!("f{i}"), "lobby", &text).await;
        let m = next_of(&mut bob, "chat.message").await;
        assert_eq!(
            m["seq"].as_u64(),
            Some(i),
            "bob gets every message in order"
        );
        if server.state.open_connections() == 2 {
            break i;
        }
        assert!(i < 20_000, "the slow client was never dropped");
    };
    assert!(dropped > 8);
    drop(slow);
    server.stop().await;
}

#[tokio::test]
async fn metrics_load_rate_sends_many_samples_per_host_reading() {
    // Host readings once a second; the load knob sends 2,000 samples a
    // second between them, each re-stamped.
    let server = start(heartline_server::config::Config {
        metrics_interval_ms: 1_000,
        metrics_load_rate: Some(2_000),
        ..config()
    })
    .await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    send(&mut ada, json!({"socketType": "metrics.subscribe"})).await;
    let first = next_of(&mut ada, "metrics.sample").await;
    assert!(!first["cpu_per_core"].as_array().unwrap().is_empty());
    let taken = server.state.metrics().samples_taken();
    let mut samples = 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    // 500 samples, far more than the host readings taken meanwhile.
    while samples < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{samples} samples in {WAIT:?}"
        );
        let s = next_json(&mut ada, WAIT).await;
        if s["socketType"] == "metrics.sample" {
            assert_eq!(s["mem_total"], first["mem_total"]);
            samples += 1;
        }
    }
    let readings = server.state.metrics().samples_taken() - taken;
    assert!(readings <= 3, "{readings} host readings for 500 samples");
}
