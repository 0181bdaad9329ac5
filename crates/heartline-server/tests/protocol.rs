//! The `/ws` endpoint's protocol and hardening, with real WebSocket clients
//! against a server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn ping_pong_in_json_and_plain_text_even_before_hello() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"socketType": "ping", "t": 1234.5})).await;
    let pong = next_json(&mut ws, WAIT).await;
    assert_eq!(pong, json!({"socketType": "pong", "t": 1234.5}));

    send_text(&mut ws, "ping").await;
    let plain = next_frame(&mut ws, WAIT).await;
    assert_eq!(plain, Message::text("pong"));

    hello(&mut ws, "ada", None).await;
    send(&mut ws, json!({"socketType": "ping", "t": 1})).await;
    assert_eq!(next_json(&mut ws, WAIT).await["t"], 1.0);
    server.stop().await;
}

#[tokio::test]
async fn server_sends_ping_frames_and_drops_a_silent_client() {
    let mut cfg = config();
    cfg.ping_interval_ms = 50;
    cfg.idle_timeout_ms = 400;
    let server = start(cfg).await;

    // A client that reads answers the Pings (tungstenite does, like a
    // browser) and so stays connected past the idle timeout.
    let (mut alive_tx, mut alive_rx) = connect(&server).await.split();
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(msg) = alive_rx.next().await {
            match msg.expect("alive client stays connected") {
                Message::Ping(_) => pings += 1,
                Message::Text(t) if t.as_str().contains("pong") => return pings,
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("alive client was dropped");
    });

    // A client that reads nothing answers nothing: it is closed with 4005.
    let silent = RawClient::connect(server.addr).await;
    assert!(
        eventually(Duration::from_secs(3), || server.state.open_connections()
            == 1)
        .await,
        "silent client dropped"
    );
    let (opcodes, code) = silent.read_to_end().await;
    assert!(
        opcodes.starts_with(&[0x1, 0x9, 0x9]),
        "the limits, then pings: {opcodes:?}"
    );
    assert_eq!(code, Some(heartline_protocol::close_code::IDLE_TIMEOUT));

    // The reading client is still fine, and saw a Ping every 50 ms.
    alive_tx
        .send(Message::text(
            json!({"socketType": "ping", "t": 2}).to_string(),
        ))
        .await
        .unwrap();
    let pings = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert!(pings >= 5, "only {pings} pings");
    server.stop().await;
}

#[tokio::test]
async fn hello_is_refused_for_bad_names_with_4001() {
    let server = start(config()).await;
    let long = "x".repeat(33);
    for name in ["", "   ", long.as_str(), "bad\u{7}name", "new\nline"] {
        let mut ws = connect(&server).await;
        send(&mut ws, json!({"socketType": "hello", "name": name})).await;
        let (code, reason) = expect_close(&mut ws, WAIT).await;
        assert_eq!(code, 4001, "name {name:?}");
        assert!(reason.contains("name"), "{reason}");
    }
    // A malformed token is refused too.
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"socketType": "hello", "name": "ada", "token": "nope"}),
    )
    .await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 4001);

    // 32 characters is fine, and the name comes back trimmed.
    let mut ws = connect(&server).await;
    let name32 = "é".repeat(32);
    let welcome = hello(&mut ws, &format!("  {name32} "), None).await;
    assert_eq!(welcome["name"], name32);
    assert!(welcome["token"].as_str().unwrap().len() >= 16);
    assert!(welcome["session"].as_str().is_some());
    assert_eq!(welcome["rooms"], json!(["help", "lobby", "random"]));
    server.stop().await;
}

#[tokio::test]
async fn everything_but_ping_needs_hello_first() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"socketType": "join", "room": "lobby"})).await;
    let e = next_json(&mut ws, WAIT).await;
    assert_eq!(e["code"], "not_welcomed");
    send(
        &mut ws,
        json!({"socketType": "chat.send", "id": "c1", "room": "lobby", "text": "hi"}),
    )
    .await;
    let e = next_json(&mut ws, WAIT).await;
    assert_eq!(e["code"], "not_welcomed");
    assert_eq!(e["id"], "c1");
    hello(&mut ws, "ada", None).await;
    let (_, joined) = join(&mut ws, "lobby", None).await;
    assert_eq!(joined["last_seq"], 0);
    // Out-of-range numbers are handled, not stored or crashed on.
    let (history, joined) = join(&mut ws, "lobby", Some(u64::MAX)).await;
    assert!(history.is_empty());
    assert_eq!(joined["last_seq"], 0);
    send(
        &mut ws,
        json!({"socketType": "metrics.subscribe", "interval_ms": u64::MAX}),
    )
    .await;
    send(&mut ws, json!({"socketType": "metrics.unsubscribe"})).await;
    send(&mut ws, json!({"socketType": "ping", "t": 1e308})).await;
    assert_eq!(next_of(&mut ws, "pong").await["t"], 1e308);
    server.stop().await;
}

#[tokio::test]
async fn bad_json_and_unknown_type_get_an_error_and_the_connection_stays_usable() {
    let server = start(config()).await;
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    for (frame, code) in [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        (r#"{"socketType":"warp.drive"}"#, "unknown_type"),
        (r#"{"room":"lobby"}"#, "unknown_type"),
        ("[1,2,3]", "unknown_type"),
        (r#"{"socketType":"join"}"#, "invalid_field"),
        (r#"{"socketType":"ping","t":"soon"}"#, "invalid_field"),
    ] {
        send_text(&mut ws, frame).await;
        let e = next_json(&mut ws, WAIT).await;
        assert_eq!(e["socketType"], "error", "{frame}");
        assert_eq!(e["code"], code, "{frame}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut ws, WAIT).await["code"], "bad_json");
    // Still usable.
    send(&mut ws, json!({"socketType": "ping", "t": 7})).await;
    assert_eq!(next_json(&mut ws, WAIT).await["socketType"], "pong");
    let (_, joined) = join(&mut ws, "lobby", None).await;
    assert_eq!(joined["stream"], "lobby");
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = start(config()).await; // cap: 64 KiB
    let mut ws = connect(&server).await;
    hello(&mut ws, "ada", None).await;
    // Just under the cap is fine (and refused as a field error, not a close).
    let text = "x".repeat(60 * 1024);
    send(
        &mut ws,
        json!({"socketType": "chat.send", "id": "big", "room": "lobby", "text": text}),
    )
    .await;
    let e = next_json(&mut ws, WAIT).await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("invalid_field"), Some("big"))
    );

    let text = "x".repeat(65 * 1024);
    send_text(&mut ws, &text).await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1009);

    // Far bigger, too.
    let mut ws = connect(&server).await;
    let _ = ws.send(Message::text("y".repeat(1024 * 1024))).await;
    assert_eq!(expect_close(&mut ws, WAIT).await.0, 1009);
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_then_closed() {
    let mut cfg = config();
    cfg.rate = 2.0;
    cfg.burst = 5;
    let server = start(cfg).await;
    let mut ws = connect(&server).await;
    for i in 0..30 {
        send(&mut ws, json!({"socketType": "ping", "t": i})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        match next_frame(&mut ws, WAIT).await {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                match v["socketType"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => {
                        assert_eq!(v["code"], "rate_limited");
                        limited += 1;
                    }
                    _ => panic!("{v}"),
                }
            }
            Message::Close(Some(f)) => break u16::from(f.code),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(pongs, 5, "the burst goes through");
    assert!(limited >= 1, "refusals are answered");
    assert_eq!(code, heartline_protocol::close_code::RATE_LIMITED);

    // A client within the rate is never limited.
    let mut calm = connect(&server).await;
    for i in 0..4 {
        send(&mut calm, json!({"socketType": "ping", "t": i})).await;
        assert_eq!(next_json(&mut calm, WAIT).await["socketType"], "pong");
    }
    server.stop().await;
}

#[tokio::test]
async fn origin_is_checked_against_the_allow_list() {
    let server = start(config()).await;
    let url = server.url();
    let err = connect_url(&url, Some("http://evil.example"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 403),
        other => panic!("expected a 403, got {other}"),
    }
    // Own origin, trunk's dev server and native clients (no Origin) pass.
    let own = format!("http://{}", server.addr);
    let own_localhost = format!("http://localhost:{}", server.addr.port());
    for origin in [
        Some(own.as_str()),
        Some(own_localhost.as_str()),
        Some("http://127.0.0.1:8080"),
        Some("http://localhost:8080"),
        None,
    ] {
        let mut ws = connect_url(&url, origin).await.expect("allowed origin");
        assert_eq!(next_json(&mut ws, WAIT).await["socketType"], "limits");
        send_text(&mut ws, "ping").await;
        assert_eq!(next_frame(&mut ws, WAIT).await, Message::text("pong"));
    }
    server.stop().await;

    // An explicit list with a port wildcard.
    let mut cfg = config();
    cfg.allowed_origins = Some(vec!["http://app.example:*".into()]);
    let server = start(cfg).await;
    assert!(
        connect_url(&server.url(), Some("http://app.example:9000"))
            .await
            .is_ok()
    );
    assert!(
        connect_url(&server.url(), Some("http://127.0.0.1:8080"))
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_per_ip_are_limited_with_4004() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 2;
    let server = start(cfg).await;
    let _a = connect(&server).await;
    let mut b = connect(&server).await;
    // A refused connection gets no `limits`, only the close.
    let mut c = connect_url(&server.url(), None).await.unwrap();
    assert_eq!(expect_close(&mut c, WAIT).await.0, 4004);
    drop(_a);
    assert!(eventually(WAIT, || server.state.open_connections() == 1).await);
    let mut d = connect(&server).await;
    send_text(&mut d, "ping").await;
    assert_eq!(next_frame(&mut d, WAIT).await, Message::text("pong"));
    send_text(&mut b, "ping").await;
    assert_eq!(next_frame(&mut b, WAIT).await, Message::text("pong"));
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_every_socket_with_1001() {
    let mut server = start(config()).await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    hello(&mut a, "ada", None).await;
    join(&mut a, "lobby", None).await;
    let addr = server.addr;
    let task = server.shutdown();
    let (code, reason) = expect_close(&mut a, WAIT).await;
    assert_eq!(code, 1001, "{reason}");
    assert_eq!(expect_close(&mut b, WAIT).await.0, 1001);
    drop((a, b));
    tokio::time::timeout(WAIT, task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    // Stopped accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn healthz_and_the_spa_with_content_types_compression_and_fallback() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>Heartline</title>",
    )
    .unwrap();
    std::fs::write(dist.path().join("app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        dist.path().join("app.css"),
        "body { color: red; }\n".repeat(200),
    )
    .unwrap();
    let mut cfg = config();
    cfg.dist = dist.path().to_path_buf();
    let server = start(cfg).await;

    let (status, headers, body) = http_get(server.addr, "/healthz", "").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let (status, headers_root, body) = http_get(server.addr, "/", "").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Heartline"));
    assert!(
        header(&headers_root, "content-type")
            .unwrap()
            .starts_with("text/html")
    );

    let (status, h, body) = http_get(server.addr, "/chat/lobby", "").await;
    assert_eq!(status, 200, "client route falls back to index.html");
    assert!(String::from_utf8_lossy(&body).contains("Heartline"));
    assert!(header(&h, "content-type").unwrap().starts_with("text/html"));

    let (status, h, _) = http_get(server.addr, "/app_bg.wasm", "").await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("application/wasm"));

    let (status, h, body) = http_get(server.addr, "/app.css", "Accept-Encoding: gzip\r\n").await;
    assert_eq!(status, 200);
    assert!(header(&h, "content-type").unwrap().starts_with("text/css"));
    assert_eq!(header(&h, "content-encoding"), Some("gzip"));
    assert!(body.len() < 4000, "compressed: {} bytes", body.len());

    let (status, _, _) = http_get(server.addr, "/missing.js", "").await;
    assert_eq!(status, 404);
    let _ = headers;
    server.stop().await;
}

#[tokio::test]
async fn static_files_are_brotli_or_gzip_and_client_routes_get_the_app() {
    let dist = tempfile::tempdir().unwrap();
    let index = "<!doctype html><title>Heartline</title>".repeat(20);
    std::fs::write(dist.path().join("index.html"), &index).unwrap();
    std::fs::write(
        dist.path().join("app.js"),
        "console.log('hi');\n".repeat(300),
    )
    .unwrap();
    // A precompressed file is served as it is (its bytes, not recompressed).
    std::fs::write(dist.path().join("big.css"), "a { b: c }\n".repeat(300)).unwrap();
    std::fs::write(dist.path().join("big.css.br"), b"precompressed-br").unwrap();
    let mut cfg = config();
    cfg.dist = dist.path().to_path_buf();
    let server = start(cfg).await;

    for (encoding, want) in [("br", "br"), ("gzip", "gzip"), ("br, gzip", "br")] {
        let (status, h, body) = http_get(
            server.addr,
            "/app.js",
            &format!("Accept-Encoding: {encoding}\r\n"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-encoding"), Some(want), "{encoding}");
        assert!(body.len() < 1000, "{want}: {} bytes", body.len());
    }
    let (status, h, body) = http_get(server.addr, "/app.js", "").await;
    assert_eq!((status, header(&h, "content-encoding")), (200, None));
    assert_eq!(body.len(), "console.log('hi');\n".len() * 300);

    let (status, h, body) = http_get(server.addr, "/big.css", "Accept-Encoding: br\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-encoding"), Some("br"));
    assert_eq!(body, b"precompressed-br");
    assert!(header(&h, "content-type").unwrap().starts_with("text/css"));

    for route in [
        "/chat/lobby",
        "/chat/some%20room",
        "/chat/v1.2",
        "/dashboard",
        "/connection",
    ] {
        let (status, h, body) = http_get(server.addr, route, "").await;
        assert_eq!(status, 200, "{route}");
        assert!(header(&h, "content-type").unwrap().starts_with("text/html"));
        assert_eq!(String::from_utf8_lossy(&body), index, "{route}");
        // The shell is compressed too.
        let (_, h, _) = http_get(server.addr, route, "Accept-Encoding: br\r\n").await;
        assert_eq!(header(&h, "content-encoding"), Some("br"), "{route}");
    }
    let (status, _, _) = http_get(server.addr, "/missing.js", "").await;
    assert_eq!(status, 404);
    server.stop().await;
}
