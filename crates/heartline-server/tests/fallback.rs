//! The socket layer's native client behind a proxy that refuses WebSocket
//! upgrades: it falls back to the server's long-poll endpoints, chats with a
//! WebSocket client in the same room, and moves back to WebSocket when the
//! proxy allows upgrades again, while it keeps sending. Every message is
//! acked once, stored once and seen once, in order, by both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::native::{fast_retries, native_client};
use common::{config, connect, hello, join, next_json, send, start};
use heartline::core::{
    BackoffConfig, ConnectionStatus, DeliveryState, FallbackConfig, Jitter, MessageId, Transport,
};
use heartline_faultproxy::Proxy;
use serde_json::json;
use tokio::time::Instant;

/// Longest wait for any single condition.
const DEADLINE: Duration = Duration::from_secs(30);

fn transport_of(status: &ConnectionStatus) -> Option<Transport> {
    match status {
        ConnectionStatus::Open { transport, .. } => Some(*transport),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrades_fall_back_to_long_polling_and_move_back_without_loss() {
    let server = start(config()).await;
    let proxy = Proxy::start(heartline_faultproxy::Config::new(server.addr))
        .await
        .unwrap();
    proxy.refuse_upgrades(true);
    let url = format!("ws://{}/ws", proxy.listen_addr());

    let mut policy = fast_retries();
    policy.fallback = FallbackConfig {
        probe: BackoffConfig {
            base: 300,
            factor: 1.5,
            cap: 600,
            jitter: Jitter::None,
        },
        ..FallbackConfig::default()
    };
    let (client, deliveries, _guards) = native_client(&[&url], policy);
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
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| transport_of(s) == Some(Transport::LongPoll)),
    )
    .await
    .expect("falls back in time")
    .expect("driver alive");
    assert_eq!(
        client.status().borrow().description(0),
        "Connected (long-polling)"
    );
    assert!(proxy.status().refused_upgrades >= 2);

    // A WebSocket client straight to the server, in the same room.
    let mut ws = connect(&server).await;
    hello(&mut ws, "bob", None).await;
    join(&mut ws, "lobby", None).await;

    let mut ids: Vec<MessageId> = Vec::new();
    let send_native = |text: String| {
        let client = client.clone();
        async move {
            client
                .send(json!({"socketType": "chat.send", "room": "lobby", "text": text}))
                .await
                .unwrap()
        }
    };
    for n in 0..10 {
        ids.push(send_native(format!("poll {n}")).await);
    }
    // Its ack is skipped below, with the other frames that are not chat.
    send(
        &mut ws,
        json!({"socketType": "chat.send", "id": "bob-1", "room": "lobby", "text": "hello from a socket"}),
    )
    .await;

    // The proxy lets upgrades through again while messages keep coming.
    proxy.refuse_upgrades(false);
    for n in 10..30 {
        ids.push(send_native(format!("switch {n}")).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| transport_of(s) == Some(Transport::WebSocket)),
    )
    .await
    .expect("moves back to WebSocket in time")
    .expect("driver alive");
    for n in 30..35 {
        ids.push(send_native(format!("ws {n}")).await);
    }
    let stats = client.stats().await;
    assert_eq!((stats.fallbacks, stats.upgrades), (1, 1), "{stats:?}");

    // Each message acked exactly once.
    let mut finals: HashMap<MessageId, Vec<DeliveryState>> = HashMap::new();
    tokio::time::timeout(DEADLINE, async {
        while !ids.iter().all(|id| finals.contains_key(id)) {
            let (id, state) = events.recv().await.expect("driver runs");
            if state.is_final() {
                finals.entry(id).or_default().push(state);
            }
        }
    })
    .await
    .expect("every message settles");
    for id in &ids {
        assert_eq!(finals[id], [DeliveryState::Acked], "{id}");
    }

    // The socket client saw the 35 poll-and-switch messages and its own, in
    // order, once each.
    let mut seen = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    while seen.len() < 36 {
        assert!(Instant::now() < give_up, "socket client saw {seen:?}");
        let frame = next_json(&mut ws, DEADLINE).await;
        if frame["socketType"] == "chat.message" {
            seen.push(frame["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, (1..=36).collect::<Vec<u64>>());

    // The native client's handler got every message once, in order.
    let give_up = Instant::now() + DEADLINE;
    loop {
        let got: Vec<u64> = deliveries.lock().unwrap().iter().map(|d| d.1).collect();
        if got.len() >= 36 {
            assert_eq!(got, (1..=36).collect::<Vec<u64>>());
            break;
        }
        assert!(Instant::now() < give_up, "native client saw {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stored once each.
    let mut reader = connect(&server).await;
    hello(&mut reader, "reader", None).await;
    let (history, _) = join(&mut reader, "lobby", Some(0)).await;
    assert_eq!(history.len(), 36);
    client.stop();
    proxy.shutdown().await;
}
