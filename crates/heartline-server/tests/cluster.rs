//! Two server processes sharing PostgreSQL (history) and Redis (the bus),
//! driven by real WebSocket clients: chat across processes, concurrent
//! writers, a Redis restart, and a process killed with its clients failing
//! over (see also `failover.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use std::collections::{HashMap, HashSet};

use common::cluster::{ServerProcess, fresh_database, pg_admin_url, pg_client};
use common::native::failover_client;
use common::*;
use futures_util::StreamExt;
use heartline::core::{DeliveryState, MessageId};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a heartbeat expiry (3 × 2 s) and a re-sync (2 s).
const CLUSTER_WAIT: Duration = Duration::from_secs(20);

/// A fresh database, Redis, and two processes A and B on them.
async fn cluster() -> Option<(
    common::redis::RedisServer,
    ServerProcess,
    ServerProcess,
    String,
)> {
    let admin = pg_admin_url()?;
    let redis = common::redis::start()?;
    let db = fresh_database(&admin).await;
    let a = ServerProcess::start(&db, &redis.url()).await;
    let b = ServerProcess::start(&db, &redis.url()).await;
    Some((redis, a, b, db))
}

/// A client in one room that keeps every `chat.message` it reads, also
/// while it waits for something else.
struct Member {
    ws: Ws,
    room: String,
    seen: Vec<Value>,
}

/// A client that said hello as `name` and joined `room`.
async fn member(server: &ServerProcess, name: &str, room: &str) -> Member {
    let mut ws = connect_to(&server.ws_url()).await;
    hello(&mut ws, name, None).await;
    send(&mut ws, json!({"socketType": "join", "room": room})).await;
    let mut member = Member {
        ws,
        room: room.to_string(),
        seen: Vec::new(),
    };
    // The history, then `joined`; every chat message read on the way (and
    // later: live ones may come before the room's first `presence`) is kept.
    member.next_of("joined", CLUSTER_WAIT).await;
    member
}

impl Member {
    /// The next frame of type `ty` within `within` (chat messages read on
    /// the way are kept).
    async fn next_of(&mut self, ty: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no {ty} in time; messages so far {:?}",
                seqs(&self.seen)
            );
            let frame = tokio::time::timeout(left, self.ws.next()).await;
            let v: Value = match frame {
                Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).unwrap(),
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("no {ty} in time; messages so far {:?}", seqs(&self.seen)),
                other => panic!("socket ended: {other:?}"),
            };
            if v["socketType"] == "chat.message" && v["stream"] == self.room.as_str() {
                self.seen.push(v.clone());
            }
            if v["socketType"] == ty {
                return v;
            }
        }
    }

    /// Sends a chat message and waits for its ack.
    async fn chat(&mut self, id: &str, text: &str) {
        send_chat(&mut self.ws, id, &self.room.clone(), text).await;
        let ack = self.next_of("ack", CLUSTER_WAIT).await;
        assert_eq!(ack["id"], id);
    }

    /// Reads for `within` and fails on any chat message.
    async fn expect_no_more_messages(&mut self, within: Duration) {
        let before = self.seen.len();
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(v["socketType"], "chat.message", "extra message {v}");
            }
        }
        assert_eq!(self.seen.len(), before);
    }

    /// Waits until `n` chat messages were read; returns them.
    async fn messages(&mut self, n: usize) -> Vec<Value> {
        while self.seen.len() < n {
            self.next_of("chat.message", CLUSTER_WAIT).await;
        }
        self.seen.clone()
    }
}

fn seqs(msgs: &[Value]) -> Vec<u64> {
    msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

/// Sends without waiting for the ack.
async fn send_chat(ws: &mut Ws, id: &str, room: &str, text: &str) {
    send(
        ws,
        json!({"socketType": "chat.send", "id": id, "room": room, "text": text}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_each_process_sees_the_other_in_order_with_presence_and_typing() {
    let Some((_redis, a, b, _db)) = cluster().await else {
        return;
    };
    let mut ada = member(&a, "ada", "lobby").await;
    let mut bo = member(&b, "bo", "lobby").await;
    // Presence is the union: each sees both names.
    next_presence(&mut ada.ws, "lobby", Some(&["ada", "bo"])).await;
    send(&mut bo.ws, json!({"socketType": "typing", "room": "lobby"})).await;
    let typing = ada.next_of("typing", CLUSTER_WAIT).await;
    assert_eq!(typing["from"], "bo");
    for i in 0..10 {
        let (m, who) = if i % 2 == 0 {
            (&mut ada, "ada")
        } else {
            (&mut bo, "bo")
        };
        m.chat(&format!("{who}-{i}"), &format!("{who} says {i}"))
            .await;
    }
    for m in [&mut ada, &mut bo] {
        let got = m.messages(10).await;
        assert_eq!(seqs(&got), (1..=10).collect::<Vec<_>>(), "in order, once");
        let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts[0], "ada says 0");
        assert_eq!(texts[1], "bo says 1");
        m.expect_no_more_messages(Duration::from_millis(300)).await;
    }
    // A room made on A is listed on B (re-sync from the database).
    let mut cy = member(&a, "cy", "made-on-a").await;
    cy.chat("cy-1", "here").await;
    let mut dee = connect_to(&b.ws_url()).await;
    hello(&mut dee, "dee", None).await;
    let rooms = next_rooms(&mut dee, |rooms| room_in(rooms, "made-on-a").is_some()).await;
    assert_eq!(room_in(&rooms, "made-on-a").unwrap()["last_seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_through_both_processes_give_gap_free_seqs_in_postgres() {
    let Some((_redis, a, b, db)) = cluster().await else {
        return;
    };
    const PER_CLIENT: usize = 40;
    let mut senders = Vec::new();
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let mut m = member(server, &format!("w{i}"), "lobby").await;
        senders.push(tokio::spawn(async move {
            for n in 0..PER_CLIENT {
                send_chat(&mut m.ws, &format!("w{i}-{n}"), "lobby", "x").await;
            }
            for _ in 0..PER_CLIENT {
                m.next_of("ack", CLUSTER_WAIT).await;
            }
            m
        }));
    }
    let mut clients = Vec::new();
    for s in senders {
        clients.push(s.await.unwrap());
    }
    let total = 4 * PER_CLIENT;
    let pg = pg_client(&db).await;
    let rows = pg
        .query(
            "SELECT seq FROM messages WHERE room = 'lobby' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(stored, (1..=total as i64).collect::<Vec<_>>(), "gap-free");
    let last: i64 = pg
        .query_one("SELECT last_seq FROM rooms WHERE name = 'lobby'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, total as i64);
    // And every client, on either process, saw all of them in order.
    for m in &mut clients {
        let got = m.messages(total).await;
        assert_eq!(seqs(&got), (1..=total as u64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_mid_chat_no_client_sees_a_gap() {
    let Some((mut redis, a, b, _db)) = cluster().await else {
        return;
    };
    let mut ada = member(&a, "ada", "lobby").await;
    let mut bo = member(&b, "bo", "lobby").await;
    ada.chat("a1", "before").await;
    bo.chat("b1", "before").await;
    redis.kill();
    // Sent while the bus is down: stored, acked, and delivered across by
    // the periodic re-sync from the database.
    ada.chat("a2", "during").await;
    bo.chat("b2", "during").await;
    redis.restart();
    // Both processes are back on the bus (healthz says so).
    for server in [&a, &b] {
        let mut up = false;
        let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
        while !up && tokio::time::Instant::now() < deadline {
            let (_, _, body) = http_get(server.addr(), "/healthz", "").await;
            let health: Value = serde_json::from_slice(&body).unwrap();
            up = health["bus"]["connected"] == true;
            if !up {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(up, "bus reconnected:\n{}", server.log());
    }
    ada.chat("a3", "after").await;
    bo.chat("b3", "after").await;
    for m in [&mut ada, &mut bo] {
        let got = m.messages(6).await;
        assert_eq!(seqs(&got), vec![1, 2, 3, 4, 5, 6], "no gap, no repeat");
        m.expect_no_more_messages(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_of_a_killed_process_expires() {
    let Some((_redis, mut a, b, _db)) = cluster().await else {
        return;
    };
    let _ghost = member(&a, "ghost", "lobby").await;
    let mut bo = member(&b, "bo", "lobby").await;
    next_presence(&mut bo.ws, "lobby", Some(&["bo", "ghost"])).await;
    a.kill9();
    // No goodbye: B forgets A's members once A's heartbeats stop.
    let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "ghost still present:\n{}", b.log());
        let v = next_json(&mut bo.ws, left).await;
        if v["socketType"] == "presence" && v["users"] == json!(["bo"]) {
            assert_eq!(v["count"], 1);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_moves_its_client_to_b_and_nothing_is_lost_or_doubled() {
    let Some((_redis, mut a, b, db)) = cluster().await else {
        return;
    };
    let mut watcher = member(&b, "watcher", "lobby").await;
    let (client, deliveries, _guards) = failover_client([&a.ws_url(), &b.ws_url()]);
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
    tokio::time::timeout(CLUSTER_WAIT, status.wait_for(|s| s.is_open()))
        .await
        .expect("opens in time")
        .expect("driver alive");
    assert_eq!(*client.endpoint().borrow(), a.ws_url());
    let send = |text: String| {
        let client = client.clone();
        async move {
            client
                .send(json!({"socketType": "chat.send", "room": "lobby", "text": text}))
                .await
                .expect("accepted by the core")
        }
    };
    let mut ids: Vec<MessageId> = Vec::new();
    for i in 0..10 {
        ids.push(send(format!("on A {i}")).await);
    }
    // Some of these are in flight (maybe stored by A, not acked) at the kill.
    for i in 0..5 {
        ids.push(send(format!("racing the kill {i}")).await);
    }
    a.kill9();
    for i in 0..15 {
        ids.push(send(format!("after the kill {i}")).await);
    }
    let mut finals: HashMap<MessageId, Vec<DeliveryState>> = HashMap::new();
    tokio::time::timeout(CLUSTER_WAIT, async {
        while !ids.iter().all(|id| finals.contains_key(id)) {
            let (id, state) = events.recv().await.expect("the driver runs");
            if state.is_final() {
                finals.entry(id).or_default().push(state);
            }
        }
    })
    .await
    .expect("every message settles in time");
    assert_eq!(*client.endpoint().borrow(), b.ws_url(), "moved to B");
    for (id, states) in &finals {
        assert_eq!(states, &[DeliveryState::Acked], "{id}");
    }
    let total = ids.len();

    // Stored once each, gap-free, in the one shared history.
    let pg = pg_client(&db).await;
    let rows = pg
        .query(
            "SELECT seq, client_id FROM messages WHERE room = 'lobby' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let seqs_stored: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(seqs_stored, (1..=total as i64).collect::<Vec<_>>());
    let stored_ids: HashSet<String> = rows.iter().map(|r| r.get(1)).collect();
    let sent_ids: HashSet<String> = ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(stored_ids, sent_ids, "each message stored once");

    // The client saw every message once and in order across the move; so
    // did a client that was on B all along.
    let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
    while deliveries.lock().unwrap().len() < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = deliveries.lock().unwrap().clone();
    let got_seqs: Vec<u64> = got.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(got_seqs, (1..=total as u64).collect::<Vec<_>>(), "{got:?}");
    assert!(
        got.iter().all(|(epoch, _, _)| *epoch == got[0].0),
        "one stream"
    );
    let watched = watcher.messages(total).await;
    assert_eq!(seqs(&watched), (1..=total as u64).collect::<Vec<_>>());
    watcher
        .expect_no_more_messages(Duration::from_millis(300))
        .await;
}
