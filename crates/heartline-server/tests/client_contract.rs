//! The wire contract, end to end: the socket layer's real core (on its native
//! tokio driver) against the real server. Every client message type sent
//! reliably ends acked or refused, never stuck in the outbox; a long outbox
//! drains after an outage without one `rate_limited` refusal or close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use heartline::core::{Config as CoreConfig, DeliveryState, MessageFailure, MessageId};
use heartline::native::{Client, ClientOptions};
use heartline_faultproxy::{Mode, Proxy};
use heartline_protocol::{ClientMessage, error_code};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Longest wait for any single condition.
const DEADLINE: Duration = Duration::from_secs(30);

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let give_up = Instant::now() + DEADLINE;
    while !done().await {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client(url: &str, name: &str) -> Client {
    let name = name.to_owned();
    let options = ClientOptions {
        config: CoreConfig::default(),
        greeting: Some(Box::new(move || {
            serde_json::to_value(ClientMessage::Hello {
                name: name.clone(),
                token: None,
            })
            .ok()
        })),
        seed: Some(7),
    };
    Client::spawn(url, options).expect("client")
}

async fn wait_open(client: &Client) {
    let mut status = client.status();
    tokio::time::timeout(DEADLINE, status.wait_for(|s| s.is_open()))
        .await
        .expect("opens in time")
        .expect("driver alive");
}

async fn final_state(client: &Client, id: &MessageId) -> DeliveryState {
    let give_up = Instant::now() + DEADLINE;
    loop {
        if let Some(state) = client.message_state(id).await
            && state.is_final()
        {
            return state;
        }
        assert!(Instant::now() < give_up, "message {id} never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every stored message of `room`, read by a fresh raw client.
async fn history_of(server: &common::TestServer, room: &str) -> Vec<Value> {
    let mut ws = common::connect(server).await;
    common::hello(&mut ws, "reader", None).await;
    let (history, _joined) = common::join(&mut ws, room, Some(0)).await;
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_message_type_sent_with_an_id_ends_acked_or_refused() {
    let server = common::start(common::config()).await;
    let client = client(&server.url(), "contract");
    wait_open(&client).await;
    let mut welcome = client.subscribe("welcome");
    tokio::time::timeout(DEADLINE, welcome.recv())
        .await
        .expect("welcome in time")
        .expect("welcome");

    let accepted = [
        ClientMessage::Ping { t: 1.0 },
        ClientMessage::Join {
            room: "lobby".into(),
            since: None,
            epoch: None,
            limit: None,
        },
        ClientMessage::ChatSend {
            id: String::new(), // replaced by the core's id
            room: "lobby".into(),
            text: "hello".into(),
        },
        ClientMessage::Typing {
            room: "lobby".into(),
        },
        ClientMessage::MetricsSubscribe {
            interval_ms: Some(1_000),
        },
        ClientMessage::MetricsUnsubscribe,
        ClientMessage::History {
            id: String::new(), // replaced by the core's id
            room: "lobby".into(),
            before: u64::MAX,
            limit: 50,
        },
        ClientMessage::Leave {
            room: "lobby".into(),
        },
    ];
    for message in accepted {
        let value = serde_json::to_value(&message).unwrap();
        let id = client.send(value).await.expect("accepted by the core");
        assert_eq!(
            final_state(&client, &id).await,
            DeliveryState::Acked,
            "{message:?}"
        );
    }

    // Refused ones fail with the server's reason; none stays queued.
    let refused = [
        (
            json!({"socketType": "hello", "name": "again"}),
            error_code::INVALID_FIELD,
        ),
        (
            json!({"socketType": "join", "room": ""}),
            error_code::INVALID_FIELD,
        ),
        (
            json!({"socketType": "chat.send", "room": "lobby", "text": "   "}),
            error_code::INVALID_FIELD,
        ),
        (
            json!({"socketType": "no.such.type"}),
            error_code::UNKNOWN_TYPE,
        ),
        (
            json!({"socketType": "typing", "room": "not-joined"}),
            error_code::INVALID_FIELD,
        ),
        (
            json!({"socketType": "history", "room": "lobby", "before": 5, "limit": 0}),
            error_code::INVALID_FIELD,
        ),
        (
            json!({"socketType": "history", "room": "no-such-room", "before": 5, "limit": 5}),
            error_code::UNKNOWN_ROOM,
        ),
    ];
    for (value, code) in refused {
        let id = client
            .send(value.clone())
            .await
            .expect("accepted by the core");
        match final_state(&client, &id).await {
            DeliveryState::Failed(MessageFailure::Refused { code: got, .. }) => {
                assert_eq!(got, code, "{value}");
            }
            other => panic!("{value}: expected a refusal, got {other:?}"),
        }
    }
    let stats = client.stats().await;
    assert_eq!((stats.queued, stats.in_flight), (0, 0), "{stats:?}");
    client.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_queued_messages_drain_without_a_rate_limit_refusal_or_close() {
    // The server's real default limits, not the test config's.
    let defaults = heartline_server::config::Config::default();
    let config = heartline_server::config::Config {
        rate: defaults.rate,
        burst: defaults.burst,
        ..common::config()
    };
    let server = common::start(config).await;
    let proxy = Proxy::start(heartline_faultproxy::Config::new(server.addr))
        .await
        .expect("proxy");
    let url = format!("ws://{}/ws", proxy.listen_addr());
    let client = client(&url, "drainer");
    let refusals = Arc::new(AtomicUsize::new(0));
    let counted = refusals.clone();
    let _errors = client.on("error", move |error| {
        if error.value.get("code").and_then(Value::as_str) == Some(error_code::RATE_LIMITED) {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let join = serde_json::to_value(ClientMessage::Join {
        room: "lobby".into(),
        since: None,
        epoch: None,
        limit: None,
    })
    .unwrap();
    client
        .add_standing("room:lobby", join, Some("lobby".into()))
        .await
        .unwrap();
    wait_open(&client).await;

    proxy.set_mode(Mode::Cut);
    wait_until("the client to see the cut", async || {
        !client.status().borrow().is_open()
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..500 {
        let frame =
            json!({"socketType": "chat.send", "room": "lobby", "text": format!("queued #{n}")});
        ids.push(client.send(frame).await.expect("queued"));
    }
    assert_eq!(client.stats().await.queued, 500);

    proxy.set_mode(Mode::Pass);
    let restored = Instant::now();
    wait_open(&client).await;
    let reconnects = client.stats().await.reconnects;
    for id in &ids {
        assert_eq!(final_state(&client, id).await, DeliveryState::Acked);
    }
    let drained = restored.elapsed();
    eprintln!("drain: 500 queued messages acked {drained:?} after the link came back");

    assert_eq!(refusals.load(Ordering::Relaxed), 0, "rate_limited refusals");
    assert!(client.status().borrow().is_open(), "closed while draining");
    assert_eq!(
        client.stats().await.reconnects,
        reconnects,
        "reconnected while draining"
    );
    // Stored once each, in the order sent.
    let history = history_of(&server, "lobby").await;
    let texts: Vec<&str> = history
        .iter()
        .filter_map(|m| m.get("text").and_then(Value::as_str))
        .collect();
    let expected: Vec<String> = (0..500).map(|n| format!("queued #{n}")).collect();
    assert_eq!(texts, expected);

    client.stop();
    proxy.shutdown().await;
    server.stop().await;
}
