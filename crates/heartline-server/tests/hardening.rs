//! Server hardening with real clients (tokio-tungstenite and raw TCP):
//! unfinished HTTP requests, the per-IP cap before the upgrade, room and
//! user expiry, room creation limits and the per-connection idle deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use heartline_server::store::ChatStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A TCP connection to `server` from `from` (any 127/8 address is loopback).
async fn tcp_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

fn token_of(welcome: &serde_json::Value) -> String {
    welcome["token"].as_str().unwrap().to_string()
}

/// A request that never finishes its head.
async fn unfinished_request(from: &str, server: SocketAddr) -> TcpStream {
    let mut s = tcp_from(from, server).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Reads until the server closes; returns what it sent.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("the server closes the connection in time")
        .ok();
    got
}

#[tokio::test]
async fn an_unfinished_request_head_is_timed_out() {
    let mut cfg = config();
    cfg.header_timeout_ms = 300;
    let server = start(cfg).await;
    let started = Instant::now();
    let mut slow = unfinished_request("127.0.0.1", server.addr).await;
    let mut mute = tcp_from("127.0.0.1", server.addr).await;
    read_until_closed(&mut slow).await;
    read_until_closed(&mut mute).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "not early");
    assert!(eventually(WAIT, || server.state.pending().open() == 0).await);
    // A complete request is served as before.
    let (status, _, _) = http_get(server.addr, "/healthz", "").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_pending_cap_per_ip_lets_other_clients_and_healthz_through() {
    let mut cfg = config();
    cfg.max_pending_per_ip = 4;
    cfg.header_timeout_ms = 60_000;
    let server = start(cfg).await;
    // One address holds its 4 unfinished requests...
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(unfinished_request("127.0.0.2", server.addr).await);
    }
    assert!(eventually(WAIT, || server.state.pending().open() == 4).await);
    // ...and every further one is turned away at once, not kept.
    for _ in 0..50 {
        let mut extra = unfinished_request("127.0.0.2", server.addr).await;
        let answer = read_until_closed(&mut extra).await;
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 503"),
            "{answer:?}"
        );
    }
    assert_eq!(server.state.pending().open(), 4);
    // Other addresses are not locked out: /healthz and a WebSocket client.
    let (status, _, body) = http_get(server.addr, "/healthz", "").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    // An upgraded socket no longer counts as pending.
    assert!(eventually(WAIT, || server.state.pending().open() == 4).await);
    drop(held);
    assert!(eventually(WAIT, || server.state.pending().open() == 0).await);
    server.stop().await;
}

#[tokio::test]
async fn empty_idle_rooms_expire_and_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.db = dir.path().join("chat.db").to_string_lossy().into_owned();
    cfg.room_expiry_ms = 300;
    let server = start(cfg.clone()).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let (_, joined) = join(&mut ada, "fleeting", None).await;
    let epoch = joined["epoch"].as_u64().unwrap();
    chat(&mut ada, "f1", "fleeting", "soon gone").await;
    // A room with a member does not expire, however idle.
    let (_, _) = join(&mut ada, "occupied", None).await;
    send(&mut ada, json!({"socketType": "leave", "room": "fleeting"})).await;
    assert!(eventually(WAIT, || !server.state.hub().has_room("fleeting")).await);
    let hub = server.state.hub();
    assert!(hub.has_room("occupied") && hub.has_room("lobby"));
    drop(ada);
    server.stop().await;

    let server = start(cfg).await;
    let mut bob = connect(&server).await;
    let rooms = hello(&mut bob, "bob", None).await["rooms"].clone();
    assert!(
        !rooms.as_array().unwrap().contains(&json!("fleeting")),
        "{rooms}"
    );
    // Its history went with it: the name starts a new stream.
    let (history, joined) = join(&mut bob, "fleeting", Some(0)).await;
    assert!(history.is_empty());
    assert_eq!(joined["last_seq"], 0);
    assert_ne!(joined["epoch"].as_u64(), Some(epoch));
    server.stop().await;
}

#[tokio::test]
async fn expired_rooms_keep_their_history_under_the_retention_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.db = dir.path().join("chat.db").to_string_lossy().into_owned();
    cfg.room_expiry_ms = 300;
    cfg.keep_expired_history = true;
    let server = start(cfg.clone()).await;
    let mut ada = connect(&server).await;
    hello(&mut ada, "ada", None).await;
    let (_, joined) = join(&mut ada, "archived", None).await;
    chat(&mut ada, "a1", "archived", "kept").await;
    send(&mut ada, json!({"socketType": "leave", "room": "archived"})).await;
    assert!(eventually(WAIT, || !server.state.hub().has_room("archived")).await);
    drop(ada);
    server.stop().await;

    let server = start(cfg).await;
    let mut bob = connect(&server).await;
    let rooms = hello(&mut bob, "bob", None).await["rooms"].clone();
    assert!(
        !rooms.as_array().unwrap().contains(&json!("archived")),
        "{rooms}"
    );
    let (history, again) = join(&mut bob, "archived", Some(0)).await;
    assert_eq!(history.len(), 1);
    assert_eq!(again["epoch"], joined["epoch"], "the same stream goes on");
    server.stop().await;
}

#[tokio::test]
async fn room_creation_is_rate_limited_per_user() {
    let mut cfg = config();
    cfg.room_creations_per_minute = 2;
    let server = start(cfg).await;
    let mut ada = connect(&server).await;
    let token = hello(&mut ada, "ada", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    join(&mut ada, "a1", None).await;
    join(&mut ada, "a2", None).await;
    send(
        &mut ada,
        json!({"socketType": "join", "room": "a3", "id": "j3"}),
    )
    .await;
    let e = next_of(&mut ada, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("rate_limited"), Some("j3"))
    );
    assert!(e["retry_after_ms"].as_u64().unwrap() >= 1);
    assert!(!server.state.hub().has_room("a3"));
    // Existing rooms are still open to her.
    join(&mut ada, "lobby", None).await;
    // The limit is the user's, not the connection's...
    let mut ada2 = connect(&server).await;
    hello(&mut ada2, "ada", Some(&token)).await;
    send(
        &mut ada2,
        json!({"socketType": "join", "room": "a4", "id": "j4"}),
    )
    .await;
    assert_eq!(next_of(&mut ada2, "error").await["code"], "rate_limited");
    // ...and another user is not held back by it.
    let mut bob = connect(&server).await;
    hello(&mut bob, "bob", None).await;
    join(&mut bob, "b1", None).await;
    server.stop().await;
}

#[tokio::test]
async fn idle_users_expire_unless_they_have_messages_or_are_online() {
    let mut cfg = config();
    cfg.user_expiry_ms = 200;
    let server = start(cfg).await;
    let store = server.state.store().clone();
    let mut poster = connect(&server).await;
    let poster_token = token_of(&hello(&mut poster, "poster", None).await);
    chat(&mut poster, "p1", "lobby", "I was here").await;
    let mut lurker = connect(&server).await;
    let lurker_token = token_of(&hello(&mut lurker, "lurker", None).await);
    let mut online = connect(&server).await;
    hello(&mut online, "online", None).await;
    drop(poster);
    drop(lurker);

    // The lurker goes; the poster (messages) and the connected one stay.
    let deadline = Instant::now() + WAIT;
    while store.user_count().await.unwrap() != 2 {
        assert!(Instant::now() < deadline, "the idle user expires");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connected user can still post (its row is there).
    chat(&mut online, "o1", "lobby", "still here").await;

    // The lurker's token is welcomed as a new identity, same token.
    let mut lurker = connect(&server).await;
    let again = hello(&mut lurker, "lurker", Some(&lurker_token)).await;
    assert_eq!(again["token"], lurker_token.as_str());
    // The poster keeps its identity: a re-sent id is still a duplicate.
    let mut poster = connect(&server).await;
    hello(&mut poster, "poster", Some(&poster_token)).await;
    chat(&mut poster, "p1", "lobby", "I was here").await;
    let (history, _) = join(&mut poster, "lobby", Some(0)).await;
    let ids: Vec<_> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["p1", "o1"]);
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_at_the_idle_timeout_not_at_a_ping_tick() {
    let mut cfg = config();
    cfg.idle_timeout_ms = 400;
    // Far apart: the old check ran only on ping ticks.
    cfg.ping_interval_ms = 60_000;
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    // Frames reset the deadline: talking for longer than the timeout is fine.
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    let mut last_sent = Instant::now();
    for i in 0..8 {
        pace.tick().await;
        last_sent = Instant::now(); // before the server can have seen it
        send(&mut ws, json!({"socketType": "ping", "t": i})).await;
        assert_eq!(next_json(&mut ws, WAIT).await["socketType"], "pong");
    }
    // Then silence: dropped with 4005, not before the timeout.
    let (code, _) = expect_close(&mut ws, WAIT).await;
    assert_eq!(code, heartline_protocol::close_code::IDLE_TIMEOUT);
    assert!(
        last_sent.elapsed() >= Duration::from_millis(400),
        "not early"
    );
    server.stop().await;
}
