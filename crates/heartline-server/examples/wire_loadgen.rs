//! Broadcast load generator that speaks the wire protocol itself, for loads
//! the socket-layer generator (`loadgen.rs`) cannot offer on this machine.
//!
//! `loadgen.rs` runs full clients of the socket layer (its core parses every
//! frame into a `ServerMessage`, orders streams, keeps an outbox): honest,
//! but on one thread it reads at most ~250,000 deliveries/s, so at higher
//! loads it measures itself. This generator does only what a measurement
//! needs. Each client is one task on one thread: it upgrades with a
//! hand-written HTTP/1.1 request (the accept key checked with tungstenite's
//! `derive_accept_key`), reads with tungstenite's frame-header parser from a
//! 64 KiB buffer, answers RFC 6455 Pings, says `hello`, joins the room and
//! sends `chat.send {id, room, text}` at `--rate` per second. A receiver
//! does not parse JSON: it classifies a text frame by its leading
//! `{"socketType":"…"` and reads the send time (µs since this process
//! started) from the digits after `"text":"`. One clock for senders and
//! receivers, the time read once per socket read.
//!
//! Every delivery is counted: the run reports the deliveries expected
//! (messages sent × clients, as the sender gets its own broadcast), those
//! that arrived, the acks, the error frames and the clients whose link
//! ended early (dropped), and prints one JSON line with the same keys as
//! `loadgen.rs`.
//!
//! ```text
//! cargo run --release -p heartline-server --example wire_loadgen -- \
//!     --url ws://127.0.0.1:3000/ws --clients 1000 --rate 0.3 --duration 8
//! ```
//!
//! The server must allow that many connections from 127.0.0.1 and that
//! rate per connection.

use std::cell::RefCell;
use std::io::Cursor;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use clap::Parser;
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

#[derive(Debug, Parser)]
#[command(about = "Broadcast load on one room, on the wire protocol itself")]
struct Args {
    /// The server's `/ws` URL, on loopback.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Clients, all in one room.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages per second each client sends.
    #[arg(long, default_value_t = 0.3)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 8.0)]
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

/// Largest frame the generator accepts from a server.
const MAX_FRAME: u64 = 1 << 20;

/// The URL's parts a handshake needs.
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("ws") {
            return Err(format!("{url}: only ws:// URLs"));
        }
        let host = uri.host().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
            return Err(format!("refusing a non-loopback target: {host}"));
        }
        let port = uri.port_u16().unwrap_or(80);
        Ok(Target {
            addr: format!("{host}:{port}"),
            host: format!("{host}:{port}"),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }
}

/// One upgraded connection: the socket and what was read past the last
/// whole frame.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// What a text frame from the server is, by its leading `socketType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Ack,
    Welcome,
    Joined,
    Error,
    Other,
}

fn classify(payload: &[u8]) -> Kind {
    const PREFIXES: [(&[u8], Kind); 5] = [
        (br#"{"socketType":"chat.message""#, Kind::Chat),
        (br#"{"socketType":"ack""#, Kind::Ack),
        (br#"{"socketType":"welcome""#, Kind::Welcome),
        (br#"{"socketType":"joined""#, Kind::Joined),
        (br#"{"socketType":"error""#, Kind::Error),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| payload.starts_with(prefix))
        .map_or(Kind::Other, |&(_, kind)| kind)
}

/// The send time at the start of a chat message's text (`"text":"<µs> …`).
fn sent_micros(payload: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = br#""text":""#;
    let at = memchr::memmem::find(payload, FIELD)? + FIELD.len();
    let digits = payload[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// The sequence number of an ack for one of this generator's messages
/// (`"id":"<client>.<seq>"`).
fn acked_seq(payload: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = br#""id":""#;
    let at = memchr::memmem::find(payload, FIELD)? + FIELD.len();
    let rest = &payload[at..];
    let dot = memchr::memchr(b'.', rest)?;
    let digits = rest[dot + 1..].iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// A whole frame at the front of `buf`: its header and payload range.
/// `Ok(None)` when more bytes are needed.
fn next_frame(buf: &[u8]) -> Result<Option<(FrameHeader, std::ops::Range<usize>)>, String> {
    let mut cursor = Cursor::new(buf);
    let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if len > MAX_FRAME {
        return Err(format!("a {len}-byte frame"));
    }
    let start = usize::try_from(cursor.position()).map_err(|e| e.to_string())?;
    let end = start + usize::try_from(len).map_err(|e| e.to_string())?;
    Ok((buf.len() >= end).then_some((header, start..end)))
}

/// A masked client frame (RFC 6455 requires clients to mask).
fn client_frame(opcode: OpCode, payload: Vec<u8>, mask: [u8; 4]) -> Vec<u8> {
    let mut frame = match opcode {
        OpCode::Control(Control::Pong) => Frame::pong(payload),
        _ => Frame::message(payload, opcode, true),
    };
    frame.header_mut().mask = Some(mask);
    let mut out = Vec::with_capacity(frame.len());
    // Writing into a Vec cannot fail.
    let _ = frame.format(&mut out);
    out
}

fn text_frame(text: &str, mask: [u8; 4]) -> Vec<u8> {
    client_frame(OpCode::Data(Data::Text), text.as_bytes().to_vec(), mask)
}

async fn handshake(target: &Target) -> Result<Conn, String> {
    let mut stream = TcpStream::connect(&target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let key = generate_key();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let head_end = loop {
        if let Some(at) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("a handshake response over 16 KiB".into());
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("the server closed during the handshake".into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        return Err(format!("upgrade refused: {status}"));
    }
    let accept = format!(
        "sec-websocket-accept: {}",
        derive_accept_key(key.as_bytes()).to_ascii_lowercase()
    );
    if !head.lines().any(|line| line.trim_end() == accept) {
        return Err("a wrong Sec-WebSocket-Accept".into());
    }
    buf.advance(head_end);
    Ok(Conn { stream, buf })
}

/// Reads frames until a text frame of `kind` arrives (answering Pings).
async fn expect(conn: &mut Conn, kind: Kind, mask: [u8; 4]) -> Result<(), String> {
    loop {
        while let Some((header, range)) = next_frame(&conn.buf)? {
            let end = range.end;
            match header.opcode {
                OpCode::Data(Data::Text) if classify(&conn.buf[range.clone()]) == kind => {
                    conn.buf.advance(end);
                    return Ok(());
                }
                OpCode::Data(Data::Text) if classify(&conn.buf[range.clone()]) == Kind::Error => {
                    return Err(String::from_utf8_lossy(&conn.buf[range]).into_owned());
                }
                OpCode::Control(Control::Ping) => {
                    let pong = client_frame(
                        OpCode::Control(Control::Pong),
                        conn.buf[range].to_vec(),
                        mask,
                    );
                    conn.buf.advance(end);
                    conn.stream
                        .write_all(&pong)
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                OpCode::Control(Control::Close) => return Err("closed by the server".into()),
                _ => {}
            }
            conn.buf.advance(end);
        }
        let n = conn
            .stream
            .read_buf(&mut conn.buf)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed".into());
        }
    }
}

/// Upgrades, says hello and joins the room.
async fn open(target: &Target, room: &str, i: usize) -> Result<Conn, String> {
    let mask = mask_for(i);
    let mut conn = tokio::time::timeout(Duration::from_secs(30), handshake(target))
        .await
        .map_err(|_| "no upgrade in 30 s".to_string())??;
    let hello = json!({"socketType": "hello", "name": format!("bench{i}")}).to_string();
    conn.stream
        .write_all(&text_frame(&hello, mask))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(
        Duration::from_secs(30),
        expect(&mut conn, Kind::Welcome, mask),
    )
    .await
    .map_err(|_| "no welcome in 30 s".to_string())??;
    let join = json!({"socketType": "join", "room": room}).to_string();
    conn.stream
        .write_all(&text_frame(&join, mask))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(
        Duration::from_secs(30),
        expect(&mut conn, Kind::Joined, mask),
    )
    .await
    .map_err(|_| "no joined in 30 s".to_string())??;
    Ok(conn)
}

/// A per-client mask: any value will do on loopback; RFC 6455 wants it
/// unpredictable only against proxies that cache.
fn mask_for(i: usize) -> [u8; 4] {
    let x = u32::try_from(i % (u32::MAX as usize))
        .unwrap_or_default()
        .wrapping_mul(0x9E37_79B9)
        | 1;
    x.to_le_bytes()
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Send → ack times (the server acks after the commit).
    ack_us: Vec<u32>,
    /// Sent, not yet acked: seq → send time (µs since `t0`).
    unacked: std::collections::HashMap<u64, u64>,
    sent: u64,
    acks: u64,
    errors: u64,
    dropped: bool,
    last_delivery_us: u64,
}

/// When one client sends, and until when it reads.
struct Plan {
    index: usize,
    room: Rc<str>,
    padding: Rc<str>,
    t0: Instant,
    first: Instant,
    period: Duration,
    send_end: Instant,
    read_end: Instant,
}

fn micros_since(t0: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX)
}

/// Takes every whole frame off the front of `buf`, read at `now_us`, into
/// the tally; Pongs to send go to `out`. False when the link must end (a
/// Close, or a frame that cannot be parsed).
fn take_frames(
    buf: &mut BytesMut,
    t: &mut Tally,
    now_us: u64,
    out: &mut Vec<u8>,
    mask: [u8; 4],
) -> bool {
    loop {
        let (header, range) = match next_frame(buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return true,
            Err(_) => {
                t.errors += 1;
                return false;
            }
        };
        let end = range.end;
        let payload = &buf[range];
        match header.opcode {
            OpCode::Data(Data::Text) => match classify(payload) {
                Kind::Chat => {
                    if let Some(sent_us) = sent_micros(payload) {
                        let latency = now_us.saturating_sub(sent_us);
                        t.latencies_us
                            .push(u32::try_from(latency).unwrap_or(u32::MAX));
                        t.last_delivery_us = now_us;
                    }
                }
                Kind::Ack => {
                    t.acks += 1;
                    if let Some(sent_us) = acked_seq(payload).and_then(|seq| t.unacked.remove(&seq))
                    {
                        t.ack_us.push(
                            u32::try_from(now_us.saturating_sub(sent_us)).unwrap_or(u32::MAX),
                        );
                    }
                }
                Kind::Error => t.errors += 1,
                Kind::Welcome | Kind::Joined | Kind::Other => {}
            },
            OpCode::Control(Control::Ping) => out.extend_from_slice(&client_frame(
                OpCode::Control(Control::Pong),
                payload.to_vec(),
                mask,
            )),
            OpCode::Control(Control::Close) => return false,
            _ => {}
        }
        buf.advance(end);
    }
}

/// Sends on its schedule and reads every frame until `read_end`.
async fn drive(mut conn: Conn, plan: Plan, tally: Rc<RefCell<Tally>>) {
    let mask = mask_for(plan.index);
    let mut next_send = plan.first;
    let mut sending = plan.first < plan.send_end;
    let send_timer = tokio::time::sleep_until(plan.first);
    let read_timer = tokio::time::sleep_until(plan.read_end);
    tokio::pin!(send_timer, read_timer);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            biased;
            r = conn.stream.read_buf(&mut conn.buf) => {
                let Ok(n) = r else { tally.borrow_mut().dropped = true; return };
                if n == 0 {
                    tally.borrow_mut().dropped = true;
                    return;
                }
                let now_us = micros_since(plan.t0, Instant::now());
                let whole = take_frames(&mut conn.buf, &mut tally.borrow_mut(), now_us, &mut out, mask);
                if !whole {
                    tally.borrow_mut().dropped = true;
                    return;
                }
                if !out.is_empty() {
                    if conn.stream.write_all(&out).await.is_err() {
                        tally.borrow_mut().dropped = true;
                        return;
                    }
                    out.clear();
                }
            }
            () = &mut send_timer, if sending => {
                let now_us = micros_since(plan.t0, Instant::now());
                let seq = tally.borrow().sent;
                let text = format!(
                    r#"{{"socketType":"chat.send","id":"{}.{seq}","room":"{}","text":"{now_us} {}"}}"#,
                    plan.index, plan.room, plan.padding
                );
                if conn.stream.write_all(&text_frame(&text, mask)).await.is_err() {
                    tally.borrow_mut().dropped = true;
                    return;
                }
                let mut t = tally.borrow_mut();
                t.sent += 1;
                t.unacked.insert(seq, now_us);
                drop(t);
                // A fixed rate: a late tick is sent at once, not skipped.
                next_send += plan.period;
                sending = next_send < plan.send_end;
                send_timer.as_mut().reset(next_send);
            }
            () = &mut read_timer => return,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let target = Target::parse(&args.url)?;
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.clients == 0 || !positive(args.rate) || !positive(args.duration) {
        return Err("clients, rate and duration must be positive".into());
    }
    tokio::task::LocalSet::new()
        .run_until(run(args, target))
        .await
}

async fn run(args: Args, target: Target) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    eprintln!("connecting {} clients to {} …", args.clients, args.url);
    let opened: Vec<Result<Conn, String>> = stream::iter(0..args.clients)
        .map(|i| {
            let target = &target;
            let room = args.room.as_str();
            async move { open(target, room, i).await }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(opened.len());
    for r in opened {
        conns.push(r.map_err(|e| format!("a client failed to join: {e}"))?);
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    eprintln!("{} clients joined in {connect_secs:.1} s", conns.len());

    let n = conns.len();
    let start = Instant::now() + Duration::from_millis(500);
    let send_end = start + Duration::from_secs_f64(args.duration);
    let read_end = send_end + Duration::from_secs_f64(args.drain);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let room: Rc<str> = args.room.as_str().into();
    let padding: Rc<str> = "x".repeat(args.pad).into();
    let mut tallies = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for (index, conn) in conns.into_iter().enumerate() {
        let tally = Rc::new(RefCell::new(Tally::default()));
        tallies.push(Rc::clone(&tally));
        let plan = Plan {
            index,
            room: Rc::clone(&room),
            padding: Rc::clone(&padding),
            t0,
            // Phases spread evenly over one period, so the load is steady.
            first: start + period.mul_f64(index as f64 / n as f64),
            period,
            send_end,
            read_end,
        };
        tasks.push(tokio::task::spawn_local(drive(conn, plan, tally)));
    }
    for task in tasks {
        task.await?;
    }

    let mut lat: Vec<u32> = Vec::new();
    let mut ack_lat: Vec<u32> = Vec::new();
    let (mut sent, mut acks, mut errors, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let start_us = micros_since(t0, start);
    let mut last_us = start_us;
    for tally in &tallies {
        let t = tally.borrow();
        lat.extend_from_slice(&t.latencies_us);
        ack_lat.extend_from_slice(&t.ack_us);
        sent += t.sent;
        acks += t.acks;
        errors += t.errors;
        dropped += u64::from(t.dropped);
        last_us = last_us.max(t.last_delivery_us);
    }
    lat.sort_unstable();
    ack_lat.sort_unstable();
    let delivered = lat.len() as u64;
    let expected = sent * n as u64;
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
    println!(
        "send → ack ms: p50 {:.2}, p99 {:.2} ({} acks timed)",
        percentile(&ack_lat, 0.5),
        percentile(&ack_lat, 0.99),
        ack_lat.len()
    );
    let line = json!({
        "clients": n, "rate_per_client": args.rate, "duration_s": args.duration,
        "sent": sent, "acked": acks, "delivered": delivered, "expected": expected,
        "errors": errors, "dropped_clients": dropped,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        "delivered_per_sec": per_sec.round(), "connect_s": connect_secs,
        "ack_ms": {"p50": percentile(&ack_lat, 0.5), "p99": percentile(&ack_lat, 0.99), "timed": ack_lat.len()},
        "generator": "wire",
    });
    println!("{line}");
    if dropped > 0 || delivered < expected || acks < sent {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_message_is_told_from_other_frames_and_its_send_time_read() {
        let ours = br#"{"socketType":"chat.message","stream":"bench","epoch":1,"seq":3,"id":"1.0","from":"bench1","text":"123456 xxxx","at":1}"#;
        assert_eq!(classify(ours), Kind::Chat);
        assert_eq!(sent_micros(ours), Some(123_456));
        assert_eq!(classify(br#"{"socketType":"ack","id":"1.0"}"#), Kind::Ack);
        assert_eq!(classify(br#"{"socketType":"chat.messages"}"#), Kind::Other);
        assert_eq!(classify(br#"{"socketType":"pong"}"#), Kind::Other);
        assert_eq!(sent_micros(br#"{"text":"no digits"}"#), None);
        assert_eq!(
            acked_seq(br#"{"socketType":"ack","id":"12.345"}"#),
            Some(345)
        );
        assert_eq!(
            acked_seq(br#"{"socketType":"ack","id":"someone-else"}"#),
            None
        );
    }

    #[test]
    fn frames_split_across_reads_are_parsed_whole() {
        let mut wire = Vec::new();
        let _ =
            Frame::message(b"{\"a\":1}".to_vec(), OpCode::Data(Data::Text), true).format(&mut wire);
        let _ = Frame::ping(b"p".to_vec()).format(&mut wire);
        for cut in 0..wire.len() {
            let got = next_frame(&wire[..cut]).expect("valid");
            let first_len = 2 + 7;
            assert_eq!(got.is_some(), cut >= first_len, "cut at {cut}");
        }
        let (header, range) = next_frame(&wire).expect("valid").expect("whole");
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(&wire[range.clone()], b"{\"a\":1}");
        let (header, _) = next_frame(&wire[range.end..])
            .expect("valid")
            .expect("whole");
        assert_eq!(header.opcode, OpCode::Control(Control::Ping));
    }
}
