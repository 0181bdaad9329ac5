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
//! Several servers of one cluster: `--url` takes a comma-separated list.
//! Client `i` gets the list rotated by `i` (it starts on URL `i mod n` and
//! could fail over to the others), so the clients are spread evenly and a
//! receiver on one server gets messages sent through another: its latency
//! then includes the bus hop. With more than one URL the JSON line also
//! splits the latency into receivers on the sender's server (`same`) and
//! on another server (`cross`).
//!
//! `--ack-latency` also measures each message's send → `ack` time (the
//! server acks after the commit), reported as `ack_ms` in the JSON line.
//!
//! The server must allow that many connections from 127.0.0.1
//! (`--max-connections-per-ip`) and that rate (`--rate`, `--burst`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use futures_util::stream;
use heartline::core::{Config, DeliveryState, Inbound, MessageId};
use heartline::native::{Client, ClientOptions, SubscriptionGuard};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::Uri;

#[derive(Debug, Parser)]
#[command(about = "Broadcast load on one room of a local heartline-server")]
struct Args {
    /// The server's `/ws` URL, or a comma-separated list of the URLs of
    /// several servers (client `i` starts on URL `i mod n`); on loopback.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws", value_delimiter = ',')]
    url: Vec<String>,
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
    /// Also measure send → ack latency per message (`ack_ms` in the JSON).
    #[arg(long)]
    ack_latency: bool,
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
    /// With several URLs: the latencies of messages sent through another
    /// server than this client's (the others are in `latencies_us` only).
    cross_us: Vec<u32>,
    errors: u64,
    last_delivery_us: u64,
}

/// Send → ack times of one client's messages (`--ack-latency`).
#[derive(Debug, Default)]
struct Acks {
    /// Sent, not yet acked: id → send time (µs since `t0`).
    pending: HashMap<MessageId, u64>,
    /// Acks seen before the writer recorded the id (id → ack time).
    early: HashMap<MessageId, u64>,
    latencies_us: Vec<u32>,
}

impl Acks {
    fn sent(&mut self, id: MessageId, sent_us: u64) {
        match self.early.remove(&id) {
            Some(acked_us) => self.latencies_us.push(micros_between(sent_us, acked_us)),
            None => {
                self.pending.insert(id, sent_us);
            }
        }
    }

    fn acked(&mut self, id: MessageId, acked_us: u64) {
        match self.pending.remove(&id) {
            Some(sent_us) => self.latencies_us.push(micros_between(sent_us, acked_us)),
            None => {
                self.early.insert(id, acked_us);
            }
        }
    }
}

fn micros_between(from_us: u64, to_us: u64) -> u32 {
    u32::try_from(to_us.saturating_sub(from_us)).unwrap_or(u32::MAX)
}

/// One joined client and the handlers that record what it sees.
struct Bench {
    client: Client,
    seen: Arc<Mutex<Seen>>,
    acks: Arc<Mutex<Acks>>,
    _handlers: [SubscriptionGuard; 2],
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.url.is_empty() {
        return Err("--url needs at least one URL".into());
    }
    for url in &args.url {
        let uri: Uri = url.parse()?;
        let host = uri.host().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
            return Err(format!("refusing a non-loopback target: {host}").into());
        }
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
    eprintln!(
        "connecting {} clients to {} …",
        args.clients,
        args.url.join(", ")
    );
    let opened: Vec<Result<Bench, String>> = stream::iter(0..args.clients)
        .map(|i| open(&args, i, Arc::clone(&window)))
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
            Writer {
                room: args.room.clone(),
                server: (args.url.len() > 1).then(|| i % args.url.len()),
                t0,
                first,
                period,
                end: send_end,
                pad: args.pad,
                sent: Arc::clone(&sent),
                acks: args.ack_latency.then(|| Arc::clone(&bench.acks)),
            },
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
    let mut cross: Vec<u32> = Vec::new();
    let mut ack_lat: Vec<u32> = Vec::new();
    let mut unacked_timed = 0;
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
        cross.extend_from_slice(&seen.cross_us);
        last_us = last_us.max(seen.last_delivery_us);
        let acks = bench.acks.lock().unwrap_or_else(PoisonError::into_inner);
        ack_lat.extend_from_slice(&acks.latencies_us);
        unacked_timed += acks.pending.len();
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
    let pct = |p: f64| percentile(&lat, p);
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
    let mut line = json!({
        "clients": n, "rate_per_client": args.rate, "duration_s": args.duration,
        "sent": sent, "acked": acks, "delivered": delivered, "expected": expected,
        "errors": errors, "dropped_clients": dropped,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        "delivered_per_sec": per_sec.round(), "connect_s": connect_secs,
    });
    if args.url.len() > 1 {
        // Receivers on the sender's server and on another one: `lat` holds
        // both, `cross` the second; the first is `lat` minus `cross`.
        cross.sort_unstable();
        let same = sorted_difference(&lat, &cross);
        println!(
            "same server: p50 {:.2}, p99 {:.2} ({} deliveries); other server (bus hop): p50 {:.2}, p99 {:.2} ({} deliveries)",
            percentile(&same, 0.5),
            percentile(&same, 0.99),
            same.len(),
            percentile(&cross, 0.5),
            percentile(&cross, 0.99),
            cross.len()
        );
        line["servers"] = json!(args.url.len());
        line["latency_same_ms"] = summary(&same);
        line["latency_cross_ms"] = summary(&cross);
    }
    if args.ack_latency {
        ack_lat.sort_unstable();
        println!(
            "send → ack ms: p50 {:.2}, p99 {:.2} ({} acks timed, {unacked_timed} not acked)",
            percentile(&ack_lat, 0.5),
            percentile(&ack_lat, 0.99),
            ack_lat.len()
        );
        line["ack_ms"] = summary(&ack_lat);
        line["ack_ms"]["timed"] = json!(ack_lat.len());
    }
    println!("{line}");
    if dropped > 0 || delivered < expected {
        eprintln!("warning: not every message reached every client");
    }
    Ok(())
}

/// The value at quantile `p` of sorted microseconds, in milliseconds (NaN
/// when empty).
fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[idx.min(sorted_us.len() - 1)]) / 1000.0
}

/// p50/p90/p99/max and the count of sorted microseconds, as JSON (ms).
fn summary(sorted_us: &[u32]) -> serde_json::Value {
    json!({
        "p50": percentile(sorted_us, 0.5), "p90": percentile(sorted_us, 0.9),
        "p99": percentile(sorted_us, 0.99), "max": percentile(sorted_us, 1.0),
        "count": sorted_us.len(),
    })
}

/// The multiset `all` minus `part` (both sorted; `part` within `all`).
fn sorted_difference(all: &[u32], part: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(all.len().saturating_sub(part.len()));
    let mut j = 0;
    for &x in all {
        if j < part.len() && part[j] == x {
            j += 1;
        } else {
            out.push(x);
        }
    }
    out
}

/// Starts one client (hello, then a standing join of the room) and waits
/// for its `joined`. Client `i` gets the URL list rotated by `i`.
async fn open(args: &Args, i: usize, window: Arc<Window>) -> Result<Bench, String> {
    let room = args.room.as_str();
    let mut urls = args.url.clone();
    let server = i % urls.len();
    urls.rotate_left(server);
    let servers = args.url.len();
    let name = format!("bench{i}");
    let options = ClientOptions::new()
        .config(Config {
            max_retries: None,
            ..Config::default()
        })
        .greeting(move || Some(json!({"socketType": "hello", "name": name})));
    let client = Client::spawn_local(urls, options).map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acks = Arc::new(Mutex::new(Acks::default()));
    if args.ack_latency {
        let mut events = client.message_events();
        let acks = Arc::clone(&acks);
        let window = Arc::clone(&window);
        tokio::task::spawn_local(async move {
            loop {
                match events.recv().await {
                    Ok((id, DeliveryState::Acked)) => acks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .acked(id, window.now_us()),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    let handlers = [
        client.on("chat.message", {
            let seen = Arc::clone(&seen);
            move |message| record_delivery(&seen, &window, message, servers, server)
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
        acks,
        _handlers: handlers,
    })
}

/// Records the broadcast latency of a chat message whose text starts with
/// its send time (µs since `t0`), if it arrived inside the window. With
/// several servers the text's second word is the index of the sender's
/// server; `server` is this receiver's.
fn record_delivery(
    seen: &Mutex<Seen>,
    window: &Window,
    message: &Inbound,
    servers: usize,
    server: usize,
) {
    let now_us = window.now_us();
    if now_us < window.start_us.load(Ordering::Relaxed)
        || now_us > window.end_us.load(Ordering::Relaxed)
    {
        return;
    }
    let mut words = message.value["text"].as_str().unwrap_or("").split(' ');
    let sent_us = words.next().and_then(|t| t.parse::<u64>().ok());
    if let Some(sent_us) = sent_us {
        let latency = micros_between(sent_us, now_us);
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.latencies_us.push(latency);
        if servers > 1 && words.next().and_then(|t| t.parse::<usize>().ok()) != Some(server) {
            seen.cross_us.push(latency);
        }
        seen.last_delivery_us = now_us;
    }
}

/// What one client's writer sends, when, and where it records it.
struct Writer {
    room: String,
    /// With several URLs, the index of this client's server (sent in the
    /// text); `None` with one.
    server: Option<usize>,
    t0: Instant,
    first: Instant,
    period: Duration,
    end: Instant,
    pad: usize,
    sent: Arc<AtomicU64>,
    acks: Option<Arc<Mutex<Acks>>>,
}

async fn write(client: Client, w: Writer) {
    let Writer {
        room,
        server,
        t0,
        first,
        period,
        end,
        pad,
        sent,
        acks,
    } = w;
    // At a rate below one message per client per run, the phases spread
    // past the end: such a client sends nothing (and must not wait for it).
    if first >= end {
        return;
    }
    let mut ticker = tokio::time::interval_at(first, period);
    // Keep the fixed rate: a late tick is sent at once, not skipped.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // One URL: the text is as it always was ("<µs> <padding>"); several:
    // "<µs> <server> <padding>", so receivers know where it came from.
    let padding = match server {
        Some(server) => format!("{server} {}", "x".repeat(pad)),
        None => "x".repeat(pad),
    };
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
        let Ok(id) = client.send(msg).await else {
            break;
        };
        if let Some(acks) = &acks {
            acks.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sent(id, u64::try_from(now_us).unwrap_or(u64::MAX));
        }
        sent.fetch_add(1, Ordering::Relaxed);
        // The next tick would be past the end: do not wait a period for it.
        if at + period >= end {
            break;
        }
    }
}
