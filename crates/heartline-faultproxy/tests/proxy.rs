//! The proxy in-process, against a TCP echo upstream: every mode, and the
//! control API over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{DEADLINE, Echo, expect_closed, expect_silence, http, roundtrip, wait_until};
use heartline_faultproxy::{Config, Error, Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

async fn setup() -> (Echo, Proxy) {
    let echo = Echo::start().await;
    let proxy = Proxy::start(Config::new(echo.addr)).await.unwrap();
    (echo, proxy)
}

async fn connect(proxy: &Proxy) -> TcpStream {
    timeout(DEADLINE, TcpStream::connect(proxy.listen_addr()))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn pass_forwards_both_ways_and_half_close() {
    let (echo, proxy) = setup().await;
    assert_eq!(proxy.mode(), Mode::Pass);
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    roundtrip(&mut a, b"hello").await;
    roundtrip(&mut b, b"world").await;
    roundtrip(&mut a, b"again").await;

    // A megabyte both ways at once goes through intact (backpressure, no loss).
    let data: Vec<u8> = (0..1_000_000_u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = a.split();
    let send = async {
        w.write_all(&data).await.unwrap();
    };
    let receive = async {
        let mut back = vec![0; data.len()];
        timeout(DEADLINE, r.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        back
    };
    let ((), back) = tokio::join!(send, receive);
    assert!(back == data, "the echoed megabyte differs");

    // The client's FIN reaches the upstream, whose FIN comes back.
    a.shutdown().await.unwrap();
    expect_closed(&mut a).await;
    wait_until("the upstream side closed", || echo.open() == 1).await;
    wait_until("the proxy counted it closed", || {
        proxy.status().open_connections == 1
    })
    .await;
    assert_eq!(proxy.status().total_connections, 2);
    drop(b);
    proxy.shutdown().await;
}

#[tokio::test]
async fn cut_closes_open_connections_and_refuses_new_ones() {
    let (echo, proxy) = setup().await;
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    roundtrip(&mut a, b"a").await;
    roundtrip(&mut b, b"b").await;
    assert_eq!(echo.open(), 2);

    proxy.set_mode(Mode::Cut);
    expect_closed(&mut a).await;
    expect_closed(&mut b).await;
    wait_until("the upstream sides closed", || echo.open() == 0).await;
    wait_until("no connection is open", || {
        proxy.status().open_connections == 0
    })
    .await;

    // New connections are accepted, then closed at once without reaching upstream.
    for _ in 0..3 {
        let mut c = connect(&proxy).await;
        let _ = c.write_all(b"anyone?").await;
        expect_closed(&mut c).await;
    }
    let status = proxy.status();
    assert_eq!(status.mode, "cut");
    assert_eq!(status.refused_connections, 3);
    assert_eq!(status.total_connections, 5);
    assert_eq!(echo.open(), 0);

    proxy.set_mode(Mode::Pass);
    let mut d = connect(&proxy).await;
    roundtrip(&mut d, b"back").await;
    assert_eq!(proxy.status().mode, "pass");
}

#[tokio::test]
async fn stall_is_silent_and_keeps_connections_open() {
    let (echo, proxy) = setup().await;
    let mut a = connect(&proxy).await;
    roundtrip(&mut a, b"before").await;

    proxy.set_mode(Mode::Stall);
    a.write_all(b"lost in the void").await.unwrap();
    expect_silence(&mut a).await;

    // A connection made during the stall is held open, silent too.
    let mut b = connect(&proxy).await;
    b.write_all(b"hello?").await.unwrap();
    expect_silence(&mut b).await;

    // Still silent, still open, on both sides of the first connection.
    expect_silence(&mut a).await;
    let status = proxy.status();
    assert_eq!(status.mode, "stall");
    assert_eq!(status.open_connections, 2);
    assert_eq!(
        echo.open(),
        1,
        "the stalled connection's upstream side must stay open"
    );

    // Restore: the stalled connections are closed (a half-open link never
    // recovers) and new ones are forwarded again.
    proxy.set_mode(Mode::Pass);
    expect_closed(&mut a).await;
    expect_closed(&mut b).await;
    wait_until("the upstream side closed", || echo.open() == 0).await;
    let mut c = connect(&proxy).await;
    roundtrip(&mut c, b"after").await;
}

#[tokio::test]
async fn a_stall_hides_the_upstream_closing() {
    // An upstream that hands its connections to the test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tx.send(s).unwrap();
        }
    });
    let proxy = Proxy::start(Config::new(upstream)).await.unwrap();
    let mut a = connect(&proxy).await;
    let mut a_up = timeout(DEADLINE, accepted.recv()).await.unwrap().unwrap();
    a_up.write_all(b"hi").await.unwrap();
    let mut hi = [0; 2];
    timeout(DEADLINE, a.read_exact(&mut hi))
        .await
        .unwrap()
        .unwrap();

    proxy.set_mode(Mode::Stall);
    // The upstream sends more, then resets: the client hears neither.
    a_up.write_all(b"more").await.unwrap();
    a_up.set_zero_linger().unwrap();
    drop(a_up);
    expect_silence(&mut a).await;
    a.write_all(b"x").await.unwrap();
    expect_silence(&mut a).await;
    assert_eq!(proxy.status().open_connections, 1);

    proxy.set_mode(Mode::Pass);
    expect_closed(&mut a).await;
    wait_until("no connection is open", || {
        proxy.status().open_connections == 0
    })
    .await;
    server.abort();
}

#[tokio::test]
async fn delay_adds_latency_each_way() {
    let (_echo, proxy) = setup().await;
    let mut a = connect(&proxy).await;
    roundtrip(&mut a, b"warm").await;

    let delay = Duration::from_millis(150);
    proxy.set_mode(Mode::Delay(delay));
    assert_eq!(proxy.status().delay_ms, Some(150));
    let started = Instant::now();
    roundtrip(&mut a, b"slow").await;
    let rtt = started.elapsed();
    assert!(
        rtt >= 2 * delay,
        "round trip took {rtt:?}, expected at least {:?}",
        2 * delay
    );

    // Bulk data under delay arrives intact and in order.
    let data: Vec<u8> = (0..300_000_u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = a.split();
    let send = async { w.write_all(&data).await.unwrap() };
    let receive = async {
        let mut back = vec![0; data.len()];
        timeout(DEADLINE, r.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        back
    };
    let ((), back) = tokio::join!(send, receive);
    assert!(back == data, "the echoed data differs");

    // Back to pass: the connection survives and is forwarded.
    proxy.set_mode(Mode::Pass);
    roundtrip(&mut a, b"fast again").await;
}

#[tokio::test]
async fn refuses_non_loopback_addresses() {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let cases = [
        ("upstream", Config::new("10.1.2.3:80".parse().unwrap())),
        (
            "listen",
            Config {
                listen: "0.0.0.0:0".parse().unwrap(),
                ..Config::new(local)
            },
        ),
        (
            "control",
            Config {
                control: "192.168.1.1:0".parse().unwrap(),
                ..Config::new(local)
            },
        ),
    ];
    for (role, config) in cases {
        match Proxy::start(config).await {
            Err(Error::NotLoopback { role: r, .. }) => assert_eq!(r, role),
            other => panic!("expected NotLoopback for {role}, got {other:?}"),
        }
    }
    let v6 = Config {
        listen: "[::1]:0".parse().unwrap(),
        upstream: "[::1]:1".parse().unwrap(),
        control: "[::1]:0".parse().unwrap(),
    };
    assert!(v6.validate().is_ok());
}

#[tokio::test]
async fn control_api_over_http() {
    let (echo, proxy) = setup().await;
    let control = proxy.control_addr();

    let status = http(
        control,
        "GET",
        "/status",
        &[("Origin", "http://127.0.0.1:9999")],
    )
    .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("access-control-allow-origin"), Some("*"));
    assert!(
        status
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let json = status.json();
    assert_eq!(json["mode"], "pass");
    assert_eq!(json["open_connections"], 0);
    assert_eq!(json["total_connections"], 0);

    let mut a = connect(&proxy).await;
    roundtrip(&mut a, b"ping").await;
    let json = http(control, "GET", "/status", &[]).await.json();
    assert_eq!(json["open_connections"], 1);
    assert_eq!(json["total_connections"], 1);

    // A preflight is answered and changes nothing.
    let preflight = http(
        control,
        "OPTIONS",
        "/cut",
        &[
            ("Origin", "http://127.0.0.1:9999"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
            ("Access-Control-Request-Private-Network", "true"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(
        preflight.header("access-control-allow-private-network"),
        Some("true")
    );
    assert_eq!(proxy.mode(), Mode::Pass);

    // POST and GET both switch modes, and answer with the new status.
    let cut = http(control, "POST", "/cut", &[]).await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.header("access-control-allow-origin"), Some("*"));
    assert_eq!(cut.json()["mode"], "cut");
    expect_closed(&mut a).await;
    wait_until("the upstream side closed", || echo.open() == 0).await;

    let restored = http(control, "GET", "/restore", &[]).await;
    assert_eq!(restored.status, 200);
    assert_eq!(restored.json()["mode"], "pass");
    let mut b = connect(&proxy).await;
    roundtrip(&mut b, b"pong").await;

    assert_eq!(
        http(control, "GET", "/stall", &[]).await.json()["mode"],
        "stall"
    );
    assert_eq!(proxy.mode(), Mode::Stall);
    assert_eq!(
        http(control, "POST", "/restore", &[]).await.json()["mode"],
        "pass"
    );

    let delay = http(control, "POST", "/delay?ms=120", &[]).await;
    assert_eq!(delay.status, 200);
    assert_eq!(delay.json()["mode"], "delay");
    assert_eq!(delay.json()["delay_ms"], 120);
    assert_eq!(proxy.mode(), Mode::Delay(Duration::from_millis(120)));
    assert_eq!(
        http(control, "GET", "/delay?ms=0", &[]).await.json()["delay_ms"],
        0
    );

    for bad in [
        "/delay",
        "/delay?ms=",
        "/delay?ms=-5",
        "/delay?ms=abc",
        "/delay?ms=99999999999",
    ] {
        let answer = http(control, "POST", bad, &[]).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    }
    assert_eq!(proxy.mode(), Mode::Delay(Duration::ZERO));

    let missing = http(control, "GET", "/nope", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("access-control-allow-origin"), Some("*"));

    let json = http(control, "GET", "/status", &[]).await.json();
    assert_eq!(json["mode"], "delay");
    assert_eq!(json["total_connections"], 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn refusing_upgrades_answers_403_and_passes_plain_http() {
    let (_echo, proxy) = setup().await;
    proxy.refuse_upgrades(true);
    // A WebSocket handshake (headers in any case) gets a 403 and a close.
    let mut ws = connect(&proxy).await;
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nconnection: Upgrade\r\nUPGRADE: WebSocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    timeout(DEADLINE, ws.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(
        answer.ends_with("WebSocket upgrades are refused\n"),
        "{answer}"
    );
    // Plain HTTP reaches the upstream (the echo sends the head back), and
    // the connection then forwards as usual.
    let mut plain = connect(&proxy).await;
    let head = b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    roundtrip(&mut plain, head).await;
    roundtrip(&mut plain, b"more bytes").await;
    let status = proxy.status();
    assert!(status.refuse_upgrades);
    assert_eq!(status.refused_upgrades, 1);
    // Allowed again: the handshake goes through to the upstream.
    proxy.refuse_upgrades(false);
    let mut again = connect(&proxy).await;
    roundtrip(
        &mut again,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    // And over the control API.
    let on = http(proxy.control_addr(), "POST", "/refuse-upgrades", &[]).await;
    assert_eq!(on.status, 200);
    assert!(on.body.contains(r#""refuse_upgrades":true"#), "{}", on.body);
    let off = http(proxy.control_addr(), "POST", "/allow-upgrades", &[]).await;
    assert!(
        off.body.contains(r#""refuse_upgrades":false"#),
        "{}",
        off.body
    );
}
