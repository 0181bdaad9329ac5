//! The Redis bus against a real, private redis-server (started by the
//! test; skipped with a message when redis-server is not installed, unless
//! `HEARTLINE_REQUIRE_SERVICES=1`). No fixed sleeps: every wait polls a
//! condition or reads a notice, within a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use heartline_protocol::ChatMessage;
use heartline_server::bus::{Bus, BusConfig, BusEvent, BusNotice, BusStats, Envelope, NodeId};
use tokio::sync::mpsc::Receiver;

use common::redis::{RedisServer, start};

/// Deadline of any single wait.
const WAIT: Duration = Duration::from_secs(15);

/// Short periods so outages are noticed and repaired quickly.
fn config(redis: &RedisServer, node: NodeId) -> BusConfig {
    let mut config = BusConfig::new(&redis.url(), node);
    config.channel_prefix = "test".into();
    config.heartbeat = Duration::from_millis(200);
    config.link_timeout = Duration::from_millis(500);
    config.reconnect_max = Duration::from_millis(300);
    config
}

async fn bus(config: BusConfig) -> (Bus, Receiver<BusNotice>) {
    Bus::connect_with(config).await.expect("bus connects")
}

fn typing(i: u64) -> BusEvent {
    BusEvent::Typing {
        room: "r".into(),
        from: i.to_string(),
    }
}

fn chat(seq: u64) -> BusEvent {
    BusEvent::Chat(ChatMessage {
        stream: "r".into(),
        epoch: 1,
        seq,
        id: format!("c{seq}"),
        from: "bo".into(),
        text: format!("message {seq}"),
        at: 0,
    })
}

/// The number in a test event (`typing` or `chat`).
fn number(event: &BusEvent) -> Option<u64> {
    match event {
        BusEvent::Typing { from, .. } => from.parse().ok(),
        BusEvent::Chat(m) => Some(m.seq),
        _ => None,
    }
}

/// The next notice, within [`WAIT`].
async fn next(rx: &mut Receiver<BusNotice>) -> BusNotice {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a notice in time")
        .expect("the bus is running")
}

/// Reads notices until `done` says so; returns the numbered events of
/// `from` (heartbeats and other notices are skipped), asserting that no
/// event of `not_from` (the reader itself) shows up.
async fn numbers_until(
    rx: &mut Receiver<BusNotice>,
    from: NodeId,
    own: NodeId,
    mut done: impl FnMut(&[u64]) -> bool,
) -> Vec<u64> {
    let mut got = Vec::new();
    while !done(&got) {
        if let BusNotice::Event { node, event } = next(rx).await {
            assert_ne!(node, own, "a node got its own event back: {event:?}");
            if node == from
                && let Some(n) = number(&event)
            {
                got.push(n);
            }
        }
    }
    got
}

/// Waits for a `Resubscribed` notice, skipping events.
async fn resubscribed(rx: &mut Receiver<BusNotice>) {
    loop {
        if next(rx).await == BusNotice::Resubscribed {
            return;
        }
    }
}

/// Polls `bus.stats()` until `cond` holds.
async fn until_stats(bus: &Bus, what: &str, cond: impl Fn(&BusStats) -> bool) -> BusStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = bus.stats();
        if cond(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_nodes_see_each_others_events_in_order_and_not_their_own() {
    let Some(redis) = start() else { return };
    let (a, mut a_rx) = bus(config(&redis, 1)).await;
    let (b, mut b_rx) = bus(config(&redis, 2)).await;
    assert_eq!((a.node(), b.node()), (1, 2));
    assert_eq!(a.channel(), "test:bus");
    const N: u64 = 500;
    for i in 1..=N {
        a.publish(typing(i));
        b.publish(chat(i));
    }
    let expected: Vec<u64> = (1..=N).collect();
    let at_b = numbers_until(&mut b_rx, 1, 2, |got| got.len() as u64 == N).await;
    assert_eq!(at_b, expected, "B sees A's events in publish order");
    let at_a = numbers_until(&mut a_rx, 2, 1, |got| got.len() as u64 == N).await;
    assert_eq!(at_a, expected, "A sees B's events in publish order");
    // Each node's own events came back from Redis and were filtered.
    let stats = until_stats(&a, "A's own events return", |s| s.own >= N).await;
    assert!(stats.connected && stats.published >= N, "{stats:?}");
    assert_eq!((stats.dropped, stats.malformed, stats.missed), (0, 0, 0));
    assert!(stats.received >= N, "{stats:?}");
    // Heartbeats flow both ways.
    loop {
        if let BusNotice::Event { node: 2, event } = next(&mut a_rx).await
            && event == BusEvent::Alive
        {
            break;
        }
    }
    // A clean shutdown says goodbye.
    assert!(b.close(Duration::from_secs(5)).await, "B's queue drained");
    loop {
        if let BusNotice::Event { node: 2, event } = next(&mut a_rx).await
            && event == BusEvent::Gone
        {
            break;
        }
    }
}

#[tokio::test]
async fn a_redis_restart_mid_stream_resubscribes_both_and_later_events_arrive() {
    let Some(mut redis) = start() else { return };
    let (a, mut a_rx) = bus(config(&redis, 1)).await;
    let (b, mut b_rx) = bus(config(&redis, 2)).await;
    for i in 1..=100 {
        a.publish(typing(i));
    }
    let before = numbers_until(&mut b_rx, 1, 2, |got| got.len() == 100).await;
    assert_eq!(before, (1..=100).collect::<Vec<_>>());

    redis.kill();
    until_stats(&a, "A notices the dead link", |s| !s.subscribed).await;
    until_stats(&b, "B notices the dead link", |s| !s.subscribed).await;
    // Published during the outage: kept or dropped, never fatal.
    for i in 101..=110 {
        a.publish(typing(i));
    }
    redis.restart();

    resubscribed(&mut a_rx).await;
    resubscribed(&mut b_rx).await;
    let a_stats = until_stats(&a, "A back", |s| s.connected).await;
    let b_stats = until_stats(&b, "B back", |s| s.connected).await;
    for stats in [&a_stats, &b_stats] {
        assert!(stats.resubscribes >= 1, "{stats:?}");
    }
    until_stats(&a, "A's publisher reconnected", |s| s.reconnects >= 1).await;

    for i in 1001..=1100 {
        a.publish(typing(i));
        b.publish(chat(i));
    }
    let after = |got: &[u64]| got.iter().filter(|n| **n > 1000).count() == 100;
    let at_b = numbers_until(&mut b_rx, 1, 2, after).await;
    let at_b: Vec<u64> = at_b.into_iter().filter(|n| *n > 1000).collect();
    assert_eq!(at_b, (1001..=1100).collect::<Vec<_>>());
    let at_a = numbers_until(&mut a_rx, 2, 1, after).await;
    let at_a: Vec<u64> = at_a.into_iter().filter(|n| *n > 1000).collect();
    assert_eq!(at_a, (1001..=1100).collect::<Vec<_>>());
}

#[tokio::test]
async fn publishing_while_redis_is_down_never_blocks_and_counts_what_it_dropped() {
    let Some(mut redis) = start() else { return };
    let mut a_config = config(&redis, 1);
    a_config.queue = 100;
    let (a, _a_rx) = bus(a_config).await;
    let (_b, mut b_rx) = bus(config(&redis, 2)).await;

    redis.kill();
    until_stats(&a, "A's publisher notices", |s| !s.publisher_connected).await;
    const N: u64 = 5_000;
    let started = Instant::now();
    for i in 1..=N {
        a.publish(typing(i));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "publish blocked: {took:?}");
    let stats = a.stats();
    assert!(stats.queued <= 100, "{stats:?}");
    assert!(stats.dropped >= N - 100, "{stats:?}");
    assert!(!stats.connected, "{stats:?}");

    // Back up: the newest queued events go out, the queue empties, and
    // events published now arrive.
    redis.restart();
    resubscribed(&mut b_rx).await;
    let stats = until_stats(&a, "A drains its queue", |s| {
        s.connected && s.queued == 0 && s.published >= 100
    })
    .await;
    assert!(stats.dropped >= N - 100 && stats.dropped <= N, "{stats:?}");
    a.publish(typing(N + 1));
    let got = numbers_until(&mut b_rx, 1, 2, |got| got.contains(&(N + 1))).await;
    // Whatever of the old queue B saw came in order, before the new one.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert!(
        got.iter().all(|n| *n > N - 100),
        "only the newest were kept: {got:?}"
    );
}

#[tokio::test]
async fn malformed_payloads_are_ignored_and_counted_and_good_ones_still_arrive() {
    let Some(redis) = start() else { return };
    let mut a_config = config(&redis, 1);
    a_config.max_payload = 1024;
    let (a, mut a_rx) = bus(a_config).await;

    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let big = Envelope {
        node: 9,
        event: BusEvent::Typing {
            room: "r".into(),
            from: "x".repeat(2000),
        },
    }
    .to_json();
    let bad: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        br#"{"node":9,"event":{"kind":"unknown"}}"#.to_vec(),
        br#"{"node":9,"event":{"kind":"chat","stream":"r"}}"#.to_vec(),
        big.into_bytes(),
    ];
    for payload in &bad {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(a.channel())
            .arg(payload.as_slice())
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let good = Envelope {
        node: 9,
        event: typing(7),
    };
    let _: i64 = redis::cmd("PUBLISH")
        .arg(a.channel())
        .arg(good.to_json())
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        next(&mut a_rx).await,
        BusNotice::Event {
            node: 9,
            event: typing(7)
        },
        "the first notice is the good event"
    );
    let stats = a.stats();
    assert_eq!(stats.malformed, bad.len() as u64, "{stats:?}");
    assert_eq!(stats.resubscribes, 0, "bad data does not break the link");
    assert!(stats.subscribed, "{stats:?}");
}

#[tokio::test]
async fn a_slow_consumer_loses_events_but_is_told_so_before_later_ones() {
    let Some(redis) = start() else { return };
    let mut b_config = config(&redis, 2);
    b_config.notices = 8;
    // One heartbeat at start, then none during the test.
    b_config.heartbeat = Duration::from_secs(60);
    let (b, mut b_rx) = bus(b_config).await;
    let mut a_config = config(&redis, 1);
    a_config.heartbeat = Duration::from_secs(60);
    let (a, _a_rx) = bus(a_config).await;
    // A's first heartbeat reaches B: the channel is empty again after it.
    assert_eq!(
        next(&mut b_rx).await,
        BusNotice::Event {
            node: 1,
            event: BusEvent::Alive
        }
    );
    for i in 1..=100 {
        a.publish(typing(i));
    }
    let stats = until_stats(&b, "B reads all 100", |s| s.received >= 101).await;
    assert_eq!(stats.missed, 92, "{stats:?}");
    for i in 1..=8 {
        assert_eq!(
            next(&mut b_rx).await,
            BusNotice::Event {
                node: 1,
                event: typing(i)
            }
        );
    }
    let lagged = next(&mut b_rx).await;
    assert_eq!(lagged, BusNotice::Lagged { missed: 92 });
    assert!(lagged.needs_resync());
    a.publish(typing(101));
    assert_eq!(
        next(&mut b_rx).await,
        BusNotice::Event {
            node: 1,
            event: typing(101)
        }
    );
}

#[tokio::test]
async fn a_half_open_link_is_noticed_by_the_ping_and_resubscribed() {
    use heartline_faultproxy::{Config as ProxyConfig, Mode, Proxy};
    let Some(redis) = start() else { return };
    let proxy = Proxy::start(ProxyConfig::new(redis.addr()))
        .await
        .expect("proxy");
    let mut a_config = config(&redis, 1);
    a_config.url = format!("redis://{}", proxy.listen_addr());
    let (a, mut a_rx) = bus(a_config).await;
    let (b, mut b_rx) = bus(config(&redis, 2)).await;

    // Nothing closes: only the ping can tell the link is dead.
    proxy.set_mode(Mode::Stall);
    until_stats(&a, "A's ping notices the stall", |s| !s.subscribed).await;
    proxy.set_mode(Mode::Pass);
    resubscribed(&mut a_rx).await;
    until_stats(&a, "A back", |s| s.connected).await;

    b.publish(typing(1));
    let got = numbers_until(&mut a_rx, 2, 1, |got| got.contains(&1)).await;
    assert_eq!(got, [1]);
    a.publish(typing(2));
    let got = numbers_until(&mut b_rx, 1, 2, |got| got.contains(&2)).await;
    assert!(got.ends_with(&[2]), "{got:?}");
    proxy.shutdown().await;
}
