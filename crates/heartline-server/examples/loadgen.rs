//! Broadcast load generator for the demo server, loopback only.
//!
//! Opens `--clients` WebSocket clients, each says `hello` and joins one room;
//! then every client sends `chat.send` at `--rate` messages per second for
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
use std::time::Duration;

use clap::Parser;
use futures_util::stream::{self, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    acks: u64,
    errors: u64,
    closed: bool,
    last_delivery_us: u64,
}

#[tokio::main]
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

    // Everything is timed against one clock in this process: senders and
    // receivers are the same program.
    let t0 = Instant::now();
    eprintln!("connecting {} clients to {} …", args.clients, args.url);
    let opened: Vec<Result<Ws, String>> = stream::iter(0..args.clients)
        .map(|i| open(args.url.clone(), args.room.clone(), i))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(opened.len());
    for r in opened {
        match r {
            Ok(ws) => sockets.push(ws),
            Err(e) => return Err(format!("a client failed to join: {e}").into()),
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    eprintln!("{} clients joined in {connect_secs:.1} s", sockets.len());

    let start = Instant::now() + Duration::from_millis(500);
    let send_end = start + Duration::from_secs_f64(args.duration);
    let read_end = send_end + Duration::from_secs_f64(args.drain);
    let sent = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let n = sockets.len();
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(read(stream, t0, start, read_end)));
        // Phases spread evenly over one period, so the load is steady.
        let first = start + period.mul_f64(i as f64 / n as f64);
        writers.push(tokio::spawn(write(
            sink,
            args.room.clone(),
            i,
            t0,
            first,
            period,
            send_end,
            args.pad,
            sent.clone(),
        )));
    }
    for w in writers {
        w.await?;
    }
    let mut seen = Vec::with_capacity(n);
    for r in readers {
        seen.push(r.await?);
    }

    let sent = sent.load(Ordering::Relaxed);
    let acks: u64 = seen.iter().map(|s| s.acks).sum();
    let errors: u64 = seen.iter().map(|s| s.errors).sum();
    let dropped = seen.iter().filter(|s| s.closed).count();
    let mut lat: Vec<u32> = seen
        .iter()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let delivered = lat.len() as u64;
    let expected = sent * n as u64;
    let start_us = start.duration_since(t0).as_micros() as u64;
    let last_us = seen
        .iter()
        .map(|s| s.last_delivery_us)
        .max()
        .unwrap_or(start_us);
    let window = (last_us.saturating_sub(start_us) as f64 / 1e6).max(1e-3);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[idx.min(lat.len() - 1)]) / 1000.0
    };
    let (p50, p90, p99, max) = (pct(0.50), pct(0.90), pct(0.99), pct(1.0));
    let per_sec = delivered as f64 / window;

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
        "broadcast latency ms: p50 {p50:.2}, p90 {p90:.2}, p99 {p99:.2}, max {max:.2}; delivered {per_sec:.0} msgs/s ({window:.1} s window); connect {connect_secs:.1} s"
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

async fn open(url: String, room: String, i: usize) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let hello = json!({"socketType": "hello", "name": format!("bench{i}")});
    ws.send(Message::text(hello.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let join = json!({"socketType": "join", "room": room});
    ws.send(Message::text(join.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no joined in time".to_string())?
            .ok_or("closed while joining")?
            .map_err(|e| e.to_string())?;
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                match v["socketType"].as_str() {
                    Some("joined") => return Ok(ws),
                    Some("error") => return Err(format!("server error: {v}")),
                    _ => {}
                }
            }
            Message::Close(c) => return Err(format!("closed: {c:?}")),
            _ => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write(
    mut sink: SplitSink<Ws, Message>,
    room: String,
    i: usize,
    t0: Instant,
    first: Instant,
    period: Duration,
    end: Instant,
    pad: usize,
    sent: Arc<AtomicU64>,
) {
    let mut ticker = tokio::time::interval_at(first, period);
    // Keep the fixed rate: a late tick is sent at once, not skipped.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let padding = "x".repeat(pad);
    let mut k = 0u64;
    loop {
        let at = ticker.tick().await;
        if at >= end {
            break;
        }
        k += 1;
        let now_us = t0.elapsed().as_micros();
        let msg = json!({
            "socketType": "chat.send",
            "id": format!("{i}-{k}"),
            "room": room,
            "text": format!("{now_us} {padding}"),
        });
        if sink.send(Message::text(msg.to_string())).await.is_err() {
            break;
        }
        sent.fetch_add(1, Ordering::Relaxed);
    }
    // Dropping the write half leaves the socket open: the read half still
    // owns it.
}

async fn read(mut stream: SplitStream<Ws>, t0: Instant, start: Instant, end: Instant) -> Seen {
    let mut seen = Seen::default();
    while let Ok(Some(msg)) = tokio::time::timeout_at(end, stream.next()).await {
        let Ok(msg) = msg else {
            seen.closed = true;
            break;
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => {
                seen.closed = true;
                break;
            }
            _ => continue,
        };
        let s = text.as_str();
        // Cheap dispatch on the type: this loop is the bottleneck at 1M
        // deliveries per second, not the server's.
        if s.contains(r#""socketType":"chat.message""#) {
            let Ok(v) = serde_json::from_str::<Value>(s) else {
                continue;
            };
            let sent_us = v["text"]
                .as_str()
                .and_then(|t| t.split(' ').next())
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(sent_us) = sent_us {
                let now = Instant::now();
                let now_us = now.duration_since(t0).as_micros() as u64;
                if now >= start {
                    seen.latencies_us
                        .push(u32::try_from(now_us.saturating_sub(sent_us)).unwrap_or(u32::MAX));
                    seen.last_delivery_us = now_us;
                }
            }
        } else if s.contains(r#""socketType":"ack""#) {
            seen.acks += 1;
        } else if s.contains(r#""socketType":"error""#) {
            seen.errors += 1;
        }
    }
    seen
}
