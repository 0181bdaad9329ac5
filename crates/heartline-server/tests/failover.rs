//! Client failover between two real demo servers: the socket layer's native
//! client is given both URLs, server A is killed with SIGKILL mid-session,
//! and the client moves to B, resumes its room with `since` and goes on
//! sending. Every message is acked exactly once and stored exactly once.
//!
//! The two servers have separate SQLite files here (the shared-database
//! cluster is tested elsewhere), so messages are sent in phases that keep
//! none in flight at the moment of the kill: what A acked stays on A, and
//! everything after the kill is on B.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::native::failover_client;
use common::{KillOnDrop, connect_to, hello, join};
use heartline::core::{DeliveryState, MessageId};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Longest wait for any single condition.
const DEADLINE: Duration = Duration::from_secs(30);

/// The real binary on port 0 with its own database; returns it and its
/// address once it wrote its ready file.
async fn spawn_server(dir: &Path, name: &str) -> (KillOnDrop, String) {
    let ready = dir.join(format!("{name}.ready"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_heartline-server"))
        .args(["--addr", "127.0.0.1:0", "--dist", "/nonexistent"])
        .arg("--db")
        .arg(dir.join(format!("{name}.db")))
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        .env_remove("HEARTLINE_ALLOWED_ORIGINS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let addr = read_addr(&ready).await;
    (child, format!("ws://{addr}/ws"))
}

async fn read_addr(ready: &PathBuf) -> std::net::SocketAddr {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(ready)
            && let Ok(addr) = s.trim().parse::<std::net::SocketAddr>()
        {
            return addr;
        }
        assert!(Instant::now() < deadline, "server ready in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every stored message of `room` on the server at `url`, read by a fresh
/// raw client.
async fn history(url: &str, room: &str) -> Vec<Value> {
    let mut ws = connect_to(url).await;
    hello(&mut ws, "reader", None).await;
    let (history, _joined) = join(&mut ws, room, Some(0)).await;
    history
}

/// Reads message moves until every id in `ids` has a final state.
async fn settle(
    events: &mut broadcast::Receiver<(MessageId, DeliveryState)>,
    ids: &[MessageId],
    finals: &mut HashMap<MessageId, Vec<DeliveryState>>,
) {
    tokio::time::timeout(DEADLINE, async {
        while !ids.iter().all(|id| finals.contains_key(id)) {
            let (id, state) = events.recv().await.expect("the driver runs");
            if state.is_final() {
                finals.entry(id).or_default().push(state);
            }
        }
    })
    .await
    .expect("every message settles in time");
}

/// Polls until `done` holds; fails after [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_replaced_by_the_next_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, url_a) = spawn_server(dir.path(), "a").await;
    let (_b, url_b) = spawn_server(dir.path(), "b").await;
    let (client, deliveries, _guards) = failover_client([&url_a, &url_b]);
    client
        .add_standing(
            "room:lobby",
            json!({"socketType": "join", "room": "lobby"}),
            Some("lobby".into()),
        )
        .await
        .unwrap();
    let mut events = client.message_events();
    let mut status = client.status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.is_open()))
        .await
        .expect("opens in time")
        .expect("driver alive");
    assert_eq!(*client.endpoint().borrow(), url_a);

    let send = |text: String| {
        let client = client.clone();
        async move {
            client
                .send(json!({"socketType": "chat.send", "room": "lobby", "text": text}))
                .await
                .expect("accepted by the core")
        }
    };
    let mut finals = HashMap::new();

    // Phase 1, on A: acked (so committed) before the kill.
    let mut on_a = Vec::new();
    for i in 0..10 {
        on_a.push(send(format!("on A {i}")).await);
    }
    settle(&mut events, &on_a, &mut finals).await;
    let wanted = on_a.len();
    wait_until("A's broadcasts", || {
        deliveries.lock().unwrap().len() == wanted
    })
    .await;
    let stored_a = history(&url_a, "lobby").await;

    // SIGKILL: no close frame, no goodbye.
    a.0.kill().unwrap();
    a.0.wait().unwrap();

    // Phase 2: sent while the client finds out and moves to B.
    let mut on_b = Vec::new();
    for i in 0..10 {
        on_b.push(send(format!("during failover {i}")).await);
    }
    let mut endpoint = client.endpoint();
    tokio::time::timeout(DEADLINE, endpoint.wait_for(|url| *url == url_b))
        .await
        .expect("moves to B in time")
        .expect("driver alive");
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.is_open()))
        .await
        .expect("opens on B in time")
        .expect("driver alive");
    // Phase 3, on B.
    for i in 0..10 {
        on_b.push(send(format!("on B {i}")).await);
    }
    settle(&mut events, &on_b, &mut finals).await;

    // Every message acked exactly once, none failed or left behind.
    assert_eq!(finals.len(), 30);
    for (id, states) in &finals {
        assert_eq!(states, &[DeliveryState::Acked], "{id}");
    }
    let stats = client.stats().await;
    assert_eq!((stats.acked, stats.failed), (30, 0));
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
    assert!(stats.failovers >= 1, "{stats:?}");

    // Stored exactly once: A holds phase 1, B the rest, each gap-free.
    let ids_of = |history: &[Value]| -> Vec<String> {
        history
            .iter()
            .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let as_strings =
        |ids: &[MessageId]| -> Vec<String> { ids.iter().map(|id| id.to_string()).collect() };
    assert_eq!(ids_of(&stored_a), as_strings(&on_a));
    let stored_b = history(&url_b, "lobby").await;
    let mut stored_b_ids = ids_of(&stored_b);
    let mut expected_b = as_strings(&on_b);
    stored_b_ids.sort();
    expected_b.sort();
    assert_eq!(stored_b_ids, expected_b, "B stored each message once");
    let seqs: Vec<u64> = stored_b.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());

    // The client's handler saw every message once, in order per epoch: B's
    // room is a new stream (another database), which the epoch says.
    let wanted = 30;
    wait_until("B's broadcasts", || {
        deliveries.lock().unwrap().len() >= wanted
    })
    .await;
    let got = deliveries.lock().unwrap().clone();
    assert_eq!(got.len(), 30, "{got:?}");
    let unique: HashSet<&String> = got.iter().map(|(_, _, id)| id).collect();
    assert_eq!(unique.len(), 30, "a message delivered twice: {got:?}");
    let epochs: Vec<u64> = got.iter().map(|(epoch, _, _)| *epoch).collect();
    assert_ne!(epochs[0], epochs[29], "B's stream has its own epoch");
    for pair in got.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert_eq!(pair[1].1, pair[0].1 + 1, "in order, gap-free: {got:?}");
        }
    }
}
