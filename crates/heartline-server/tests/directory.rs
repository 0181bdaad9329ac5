//! The live room directory (`rooms` frames) and `/healthz`'s
//! `metrics_subscribers`, with real WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn online(rooms: &[Value], name: &str) -> Option<u64> {
    room_in(rooms, name).and_then(|r| r["online"].as_u64())
}

#[tokio::test]
async fn rooms_come_right_after_welcome_and_before_the_ack() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"socketType": "hello", "name": "ada", "id": "h"}),
    )
    .await;
    let mut order = Vec::new();
    let mut rooms = None;
    while order.last().map(String::as_str) != Some("ack") {
        let msg = next_frame_all(&mut ws, WAIT).await;
        let v: Value = serde_json::from_str(text(&msg).unwrap().as_str()).unwrap();
        if v["socketType"] == "rooms" {
            rooms = Some(v["rooms"].clone());
        }
        order.push(v["socketType"].as_str().unwrap().to_string());
    }
    assert_eq!(order, ["welcome", "rooms", "ack"]);
    let rooms = rooms.unwrap();
    let names: Vec<&str> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["help", "lobby", "random"], "sorted, every room");
    for r in rooms.as_array().unwrap() {
        assert!(r["epoch"].as_u64().is_some_and(|e| e >= 1), "{r}");
        assert_eq!(
            (r["last_seq"].as_u64(), r["online"].as_u64()),
            (Some(0), Some(0))
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_directory_follows_new_rooms_occupancy_and_messages() {
    // bo and cy's tabs are never read, so they never answer a ping: with
    // the tests' 2 s idle timeout the server would drop them mid-test and
    // the counts would fall for a reason this test is not about.
    let mut cfg = config();
    cfg.idle_timeout_ms = 60_000;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let first = next_rooms(&mut ada, |_| true).await;
    assert!(room_in(&first, "garden").is_none());

    // Another client creates a room: ada's directory shows it, occupied.
    let mut bo = connect(&server).await;
    hello(&mut bo, "bo", None).await;
    join(&mut bo, "garden", None).await;
    let rooms = next_rooms(&mut ada, |r| online(r, "garden") == Some(1)).await;
    let garden = room_in(&rooms, "garden").unwrap().clone();
    assert_eq!(garden["last_seq"], 0);
    assert!(garden["epoch"].as_u64().is_some_and(|e| e >= 1));

    // A message moves last_seq.
    chat(&mut bo, "m1", "garden", "hello").await;
    let rooms = next_rooms(&mut ada, |r| {
        room_in(r, "garden").is_some_and(|g| g["last_seq"] == 1)
    })
    .await;
    assert_eq!(room_in(&rooms, "garden").unwrap()["epoch"], garden["epoch"]);

    // Distinct users: cy's second tab (same token) does not count twice,
    // ada joining does.
    let token = {
        let mut probe = connect(&server).await;
        let w = hello(&mut probe, "cy", None).await;
        w["token"].as_str().unwrap().to_string()
    };
    let mut cy1 = connect(&server).await;
    hello(&mut cy1, "cy", Some(&token)).await;
    join(&mut cy1, "garden", None).await;
    let mut cy2 = connect(&server).await;
    hello(&mut cy2, "cy", Some(&token)).await;
    join(&mut cy2, "garden", None).await;
    join(&mut ada, "garden", None).await;
    next_rooms(&mut ada, |r| online(r, "garden") == Some(3)).await;

    // Leave and disconnect bring the count down.
    send(&mut ada, json!({"socketType": "leave", "room": "garden"})).await;
    next_rooms(&mut ada, |r| online(r, "garden") == Some(2)).await;
    // cy stays through the second tab until both are gone.
    drop(cy1);
    cy2.close(None).await.unwrap();
    bo.close(None).await.unwrap();
    next_rooms(&mut ada, |r| online(r, "garden") == Some(0)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_burst_of_changes_is_coalesced_and_ends_with_the_final_state() {
    let mut cfg = config();
    cfg.rate = 10_000.0;
    cfg.burst = 1_000;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    next_rooms(&mut ada, |_| true).await; // the welcome snapshot
    let mut bo = connect(&server).await;
    hello(&mut bo, "bo", None).await;
    join(&mut bo, "lobby", None).await;
    let started = tokio::time::Instant::now();
    for i in 1..=30 {
        chat(&mut bo, &format!("m{i}"), "lobby", "x").await;
    }
    let mut frames = 0;
    next_rooms(&mut ada, |r| {
        frames += 1;
        room_in(r, "lobby").is_some_and(|l| l["last_seq"] == 30)
    })
    .await;
    let elapsed = started.elapsed();
    // One at once, then at most one per second after it.
    let allowed = 2 + elapsed.as_secs();
    assert!(
        frames <= allowed,
        "{frames} frames in {elapsed:?} (at most {allowed})"
    );
    // Then the directory is quiet.
    expect_no_rooms(&mut ada, Duration::from_millis(1_300)).await;
    server.stop().await;
}

/// No `rooms` frame within `within` (other frames are ignored).
async fn expect_no_rooms(ws: &mut Ws, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let Ok(msg) = tokio::time::timeout(left, futures_util::StreamExt::next(ws)).await else {
            return;
        };
        let msg = msg.expect("open").expect("frame");
        assert!(!is_rooms(&msg), "unexpected rooms frame: {msg:?}");
    }
}

async fn metrics_subscribers(server: &TestServer) -> u64 {
    let (status, headers, body) = http_get(server.addr, "/healthz", "").await;
    assert_eq!(status, 200);
    // Readable from any origin (browser tests and dashboards poll it).
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"),
        "{headers:?}"
    );
    let health: Value = serde_json::from_slice(&body).unwrap();
    health["metrics_subscribers"]
        .as_u64()
        .expect("metrics_subscribers")
}

async fn wait_subscribers(server: &TestServer, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = metrics_subscribers(server).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics_subscribers stayed {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn healthz_counts_metrics_subscribers() {
    let server = start(config()).await;
    assert_eq!(metrics_subscribers(&server).await, 0);
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    send(
        &mut ws,
        json!({"socketType": "metrics.subscribe", "id": "s"}),
    )
    .await;
    assert_eq!(next_of(&mut ws, "ack").await["id"], "s");
    assert_eq!(metrics_subscribers(&server).await, 1);
    send(
        &mut ws,
        json!({"socketType": "metrics.unsubscribe", "id": "u"}),
    )
    .await;
    assert_eq!(next_of(&mut ws, "ack").await["id"], "u");
    assert_eq!(metrics_subscribers(&server).await, 0);

    // A subscriber that disconnects is no longer counted.
    send(
        &mut ws,
        json!({"socketType": "metrics.subscribe", "id": "s2"}),
    )
    .await;
    assert_eq!(next_of(&mut ws, "ack").await["id"], "s2");
    assert_eq!(metrics_subscribers(&server).await, 1);
    drop(ws);
    wait_subscribers(&server, 0).await;
    server.stop().await;
}
