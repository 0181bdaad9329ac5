//! Broadcast load generator for the demo server, loopback only.
//!
//! Opens `--clients` clients of the socket layer's native driver
//! (`heartline::native`, the same core as the browser), all on one
//! `LocalSet`; each says `hello` and joins one room (a standing
//! subscription); then every client sends `chat.send` reliably (through the
//! core's outbox, acked by the server) at `--rate` messages per second for
//! `--duration` seconds. Each message carries its send time, so every
//! receiver measures the broadcast latency (send → stored → fanned out →
//! received). Prints p50/p90/p99/max latency and delivered messages per
//! second, as text and as one JSON line.
//!
//! ```text
//! cargo run --release -p heartline-server --example loadgen -- \
//!     --url ws://127.0.0.1:3000/ws --clients 1000 --rate 0.5 --duration 10
//! ```
//!
//! The server must allow that many connections from 127.0.0.1
//! (`--max-connections-per-ip`) and that rate (`--rate`, `--burst`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use futures_util::stream;
use heartline::core::{Config, Inbound};
use heartline::native::{Client, ClientOptions, SubscriptionGuard};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::Uri;

#[derive(Debug, Parser)]
#[command(about = "Broadcast load on one room of a local heartline-server")]
struct Args {
    /// The server's `/ws` URL; must be on loopback.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Clients, all in one room.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages per second each client sends.
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for deliveries in flight after the last send.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Room name.
    #[arg(long, default_value = "bench")]
    room: String,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 50)]
    connect_concurrency: usize,
    /// Bytes of padding in each message's text (the timestamp comes first).
    #[arg(long, default_value_t = 64)]
    pad: usize,
}

/// When deliveries count: from the start of sending to the end of the
/// drain, in microseconds since `t0`. Set once every client has joined.
#[derive(Debug)]
struct Window {
    t0: Instant,
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Window {
    fn new(t0: Instant) -> Window {
        Window {
            t0,
            start_us: AtomicU64::new(u64::MAX),
            end_us: AtomicU64::new(u64::MAX),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What one client saw (filled by its handlers on the driver's thread).
#[derive(Debug, Default)]
struct Seen {
    latencies_us: Vec<u32>,
    errors: u64,
    last_delivery_us: u64,
}

/// One joined client and the handlers that record what it sees.
struct Bench {
    client: Client,
    seen: Arc<Mutex<Seen>>,
    _handlers: [SubscriptionGuard; 2],
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let uri: Uri = args.url.parse()?;
    let host = uri.host().unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
        return Err(format!("refusing a non-loopback target: {host}").into());
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.clients == 0 || !positive(args.rate) || !positive(args.duration) {
        return Err("clients, rate and duration must be positive".into());
    }
    // Every client's driver runs on this thread's LocalSet.
    tokio::task::LocalSet::new().run_until(run(args)).await
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Everything is timed against one clock in this process: senders and
    // receivers are the same program.
    let t0 = Instant::now();
    let window = Arc::new(Window::new(t0));
    eprintln!("connecting {} clients to {} …", args.clients, args.url);
    let opened: Vec<Result<Bench, String>> = stream::iter(0..args.clients)
        .map(|i| open(&args.url, &args.room, i, Arc::clone(&window)))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut benches = Vec::with_capacity(opened.len());
    for r in opened {
        match r {
            Ok(bench) => benches.push(bench),
            Err(e) => return Err(format!("a client failed to join: {e}").into()),
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    eprintln!("{} clients joined in {connect_secs:.1} s", benches.len());

    let start = Instant::now() + Duration::from_millis(500);
    let send_end = start + Duration::from_secs_f64(args.duration);
    let read_end = send_end + Duration::from_secs_f64(args.drain);
    let micros = |at: Instant| u64::try_from(at.duration_since(t0).as_micros()).unwrap_or(0);
    window.start_us.store(micros(start), Ordering::Relaxed);
    window.end_us.store(micros(read_end), Ordering::Relaxed);

    let sent = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let n = benches.len();
    let mut writers = Vec::with_capacity(n);
    for (i, bench) in benches.iter().enumerate() {
        // Phases spread evenly over one period, so the load is steady.
        let first = start + period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::task::spawn_local(write(
            bench.client.clone(),
            args.room.clone(),
            t0,
            first,
            period,
            send_end,
            args.pad,
            Arc::clone(&sent),
        )));
    }
    for w in writers {
        w.await?;
    }
    tokio::time::sleep_until(read_end).await;

    let sent = sent.load(Ordering::Relaxed);
    let mut acks = 0;
    let mut errors = 0;
    let mut dropped = 0;
    let mut lat: Vec<u32> = Vec::new();
    let mut last_us = micros(start);
    for bench in &benches {
        let stats = bench.client.stats().await;
        acks += stats.acked;
        // A client that lost its link at any point (it reconnected, or is
        // not open now) counts as dropped, as a closed socket did.
        if stats.reconnects > 0 || !bench.client.status().borrow().is_open() {
            dropped += 1;
        }
        let seen = bench.seen.lock().unwrap_or_else(PoisonError::into_inner);
        errors += seen.errors + stats.failed;
        lat.extend_from_slice(&seen.latencies_us);
        last_us = last_us.max(seen.last_delivery_us);
    }
    // Close every link; the drivers end with the LocalSet.
    for bench in &benches {
        bench.client.stop();
    }
    lat.sort_unstable();
    let delivered = lat.len() as u64;
    let expected = sent * n as u64;
    let start_us = micros(start);
    let window_secs = (last_us.saturating_sub(start_us) as f64 / 1e6).max(1e-3);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[idx.min(lat.len() - 1)]) / 1000.0
    };
    let (p50, p90, p99, max) = (pct(0.50), pct(0.90), pct(0.99), pct(1.0));
    let per_sec = delivered as f64 / window_secs;

    println!(
        "clients {n}, rate {}/s each, {} s: sent {sent}, acked {acks}, delivered {delivered} of {expected} ({:.2} %), errors {errors}, dropped clients {dropped}",
        args.rate,
        args.duration,
        if expected > 0 {
            100.0 * delivered as f64 / expected as f64
        } else {
            0.0
        }
    );
    println!(
        "broadcast latency ms: p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2}, max {max:.2}; delivered {per_sec:.0} msgs/s ({window_secs:.1} s window); connect {connect_secs:.1} s"
    );
    println!(
        "{}",
        json!({
            "clients": n, "rate_per_client": args.rate, "duration_s": args.duration,
            "sent": sent, "acked": acks, "delivered": delivered, "expected": expected,
            "errors": errors, "dropped_clients": dropped,
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
            "delivered_per_sec": per_sec.round(), "connect_s": connect_secs,
        })
    );
    if dropped > 0 || delivered < expected {
        eprintln!("warning: not every message reached every client");
    }
    Ok(())
}

/// Starts one client (hello, then a standing join of the room) and waits
/// for its `joined`.
async fn open(url: &str, room: &str, i: usize, window: Arc<Window>) -> Result<Bench, String> {
    let name = format!("bench{i}");
    let options = ClientOptions::new()
        .config(Config {
            max_retries: None,
            ..Config::default()
        })
        .greeting(move || Some(json!({"socketType": "hello", "name": name})));
    let client = Client::spawn_local(url, options).map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handlers = [
        client.on("chat.message", {
            let seen = Arc::clone(&seen);
            move |message| record_delivery(&seen, &window, message)
        }),
        client.on("error", {
            let seen = Arc::clone(&seen);
            move |_| seen.lock().unwrap_or_else(PoisonError::into_inner).errors += 1
        }),
    ];
    let mut joined = client.subscribe("joined");
    client
        .add_standing(
            format!("room:{room}"),
            json!({"socketType": "join", "room": room}),
            Some(room.to_owned()),
        )
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(60), joined.recv())
        .await
        .map_err(|_| "no joined in time".to_string())?
        .ok_or("the client stopped while joining")?;
    Ok(Bench {
        client,
        seen,
        _handlers: handlers,
    })
}

/// Records the broadcast latency of a chat message whose text starts with
/// its send time (µs since `t0`), if it arrived inside the window.
fn record_delivery(seen: &Mutex<Seen>, window: &Window, message: &Inbound) {
    let now_us = window.now_us();
    if now_us < window.start_us.load(Ordering::Relaxed)
        || now_us > window.end_us.load(Ordering::Relaxed)
    {
        return;
    }
    let sent_us = message.value["text"]
        .as_str()
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse::<u64>().ok());
    if let Some(sent_us) = sent_us {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.latencies_us
            .push(u32::try_from(now_us.saturating_sub(sent_us)).unwrap_or(u32::MAX));
        seen.last_delivery_us = now_us;
    }
}

#[allow(clippy::too_many_arguments)]
async fn write(
    client: Client,
    room: String,
    t0: Instant,
    first: Instant,
    period: Duration,
    end: Instant,
    pad: usize,
    sent: Arc<AtomicU64>,
) {
    // At a rate below one message per client per run, the phases spread
    // past the end: such a client sends nothing (and must not wait for it).
    if first >= end {
        return;
    }
    let mut ticker = tokio::time::interval_at(first, period);
    // Keep the fixed rate: a late tick is sent at once, not skipped.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let padding = "x".repeat(pad);
    loop {
        let at = ticker.tick().await;
        if at >= end {
            break;
        }
        let now_us = t0.elapsed().as_micros();
        // Reliable: the core gives it an id and keeps it until the ack.
        let msg = json!({
            "socketType": "chat.send",
            "room": room,
            "text": format!("{now_us} {padding}"),
        });
        if client.send(msg).await.is_err() {
            break;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        // The next tick would be past the end: do not wait a period for it.
        if at + period >= end {
            break;
        }
    }
}
