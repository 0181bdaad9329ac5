//! `bench-memory`: memory of the release app and of the release server (for
//! `scripts/bench memory`).
//!
//! Page (headless Chromium through the fault proxy, the chat room open):
//! after a forced GC (`HeapProfiler.collectGarbage`), the JS heap
//! (`Runtime.getHeapUsage`), DOM nodes and JS event listeners
//! (`Performance.getMetrics`) and the wasm linear memory
//! (`memory.buffer.byteLength` of the module's exports, from trunk's
//! `TrunkApplicationStarted` event). Measured freshly loaded and connected,
//! then after 10, 50 and 100 reconnects (the proxy cuts and restores the
//! link), then freshly reloaded and after 10,000 chat messages received in
//! the open room (sent by a native client).
//!
//! Server (its own process, native clients straight to it): `VmRSS` fresh,
//! with 2,000 idle connections (each said `hello`) and after they closed;
//! then, restarted, before and after 10,000 connect/close cycles (after
//! 1,000 to warm up; each cycle says `hello` with its worker's token, as a
//! reconnecting client does).
//!
//! Prints `key=value` lines for `scripts/bench.d/memory.sh` (bytes, counts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use futures_util::stream;
use heartline_bench::app::{
    AppFiles, dist_with_config, eval, eval_until, number, open_room, performance_metrics,
    wait_status, wait_status_not,
};
use heartline_bench::wsclient::{self, Socket};
use heartline_e2e::{Browser, Error, ProxyMode, Result, Stack};
use serde_json::{Value, json};

/// Memory of the release app and server.
#[derive(Debug, Parser)]
#[command(name = "bench-memory", about)]
struct Args {
    /// The built app (`trunk build --release`).
    #[arg(long)]
    dist: PathBuf,
    /// Holds the release `heartline-server` and `heartline-faultproxy`.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Reconnects of the page (checkpoints at 10 and half way too).
    #[arg(long, default_value_t = 100)]
    reconnects: usize,
    /// Chat messages the page receives.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Messages per second the sender sends them at.
    #[arg(long, default_value_t = 2_000)]
    message_rate: u64,
    /// Idle connections held open against the server.
    #[arg(long, default_value_t = 2_000)]
    idle: usize,
    /// Connect/close cycles against the server (after a tenth as many to
    /// warm up).
    #[arg(long, default_value_t = 10_000)]
    cycles: usize,
    /// Handshakes in flight at once (under the server's
    /// `--max-pending-per-ip`, set to twice this).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Deadline of each condition waited for, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// The room the page is opened in and the messages go to.
const ROOM: &str = "memory";

/// Keeps the wasm module's exports (trunk dispatches them once started).
const WASM_HOOK: &str = r#"
addEventListener('TrunkApplicationStarted', (e) => {
  window.__hlWasmMemory = e.detail && e.detail.wasm ? e.detail.wasm.memory : null;
});
"#;

/// One read of the page's memory.
#[derive(Debug, Clone, Copy)]
struct PageMemory {
    js_used: f64,
    js_total: f64,
    wasm: f64,
    nodes: f64,
    listeners: f64,
    /// `WebSocket` objects alive after the GC (the open one; a leak keeps
    /// closed ones).
    sockets: f64,
    /// Plain objects alive after the GC.
    objects: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-memory: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let files = AppFiles {
        bin_dir: args.bin_dir.clone(),
        dist: args.dist.clone(),
    };
    let timeout = Duration::from_secs(args.timeout);
    page(args, &files, timeout).await?;
    server(args, &files, timeout).await
}

// ---------------------------------------------------------------- page

async fn page(args: &Args, files: &AppFiles, timeout: Duration) -> Result<()> {
    // Short backoff so a hundred cuts take a minute, not the default
    // policy's growing waits (the link never stays up for min_uptime).
    let settings = "backoff_base_ms=50 backoff_cap_ms=200";
    println!("page_settings={settings}");
    let dist = dist_with_config(&files.dist, settings)?;
    let rate = args.message_rate.max(1).to_string();
    let queue = (args.messages + 1_000).to_string();
    let server_args = [
        "--rate",
        rate.as_str(),
        "--burst",
        rate.as_str(),
        "--send-queue",
        queue.as_str(),
    ];
    let stack = files.start_stack(dist.path(), &server_args).await?;
    let browser = Browser::start().await?;
    let result = page_on(args, &stack, &browser, timeout).await;
    if result.is_err() {
        eprintln!("{}", stack.logs_tail(20));
    }
    let quit = browser.quit().await;
    result?;
    quit
}

async fn page_on(args: &Args, stack: &Stack, browser: &Browser, timeout: Duration) -> Result<()> {
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": WASM_HOOK }),
        )
        .await?;
    browser.cdp("Performance.enable", json!({})).await?;
    let url = stack.app_url(&format!("/chat/{ROOM}"));
    open_room(browser, &url, "ada", timeout).await?;
    print_page("fresh", &page_memory(browser).await?);

    let checkpoints = [
        10.min(args.reconnects),
        args.reconnects / 4,
        args.reconnects / 2,
        args.reconnects,
    ];
    for done in 1..=args.reconnects {
        stack.set_mode(ProxyMode::Cut).await?;
        wait_status_not(browser, "open", timeout).await?;
        stack.set_mode(ProxyMode::Pass).await?;
        wait_status(browser, "open", timeout).await?;
        if checkpoints.contains(&done) {
            print_page(&format!("reconnects_{done}"), &page_memory(browser).await?);
        }
    }
    println!("reconnects={}", args.reconnects);

    browser.reload().await?;
    browser.wait_for("#composer-text", timeout).await?;
    wait_status(browser, "open", timeout).await?;
    print_page("reloaded", &page_memory(browser).await?);
    let shown_before = shown_messages(browser).await?;
    send_messages(args, stack.server_addr(), timeout).await?;
    let want = shown_before + args.messages;
    let started = tokio::time::Instant::now();
    eval_until(
        browser,
        &format!("the page to show {want} messages"),
        &format!("document.querySelectorAll('.message[data-seq]').length >= {want}"),
        timeout,
    )
    .await?;
    println!("messages_shown_after_ms={}", started.elapsed().as_millis());
    println!("messages={}", args.messages);
    print_page("messages", &page_memory(browser).await?);
    Ok(())
}

/// GC, then the page's JS heap, DOM nodes, listeners and wasm memory.
async fn page_memory(browser: &Browser) -> Result<PageMemory> {
    // Twice: the first pass may only finalize what the second frees.
    for _ in 0..2 {
        browser
            .cdp("HeapProfiler.collectGarbage", json!({}))
            .await?;
    }
    let heap = browser.cdp("Runtime.getHeapUsage", json!({})).await?;
    let metrics = performance_metrics(browser).await?;
    let metric = |name: &str| metrics.get(name);
    let wasm = eval(
        browser,
        "window.__hlWasmMemory ? window.__hlWasmMemory.buffer.byteLength : null",
    )
    .await?
    .as_f64()
    .ok_or_else(|| {
        Error::Other("the page has no wasm memory (no TrunkApplicationStarted?)".into())
    })?;
    let sockets = live_objects(browser, "WebSocket.prototype").await?;
    let objects = live_objects(browser, "Object.prototype").await?;
    Ok(PageMemory {
        sockets,
        objects,
        js_used: number(&heap, "usedSize", "Runtime.getHeapUsage")?,
        js_total: number(&heap, "totalSize", "Runtime.getHeapUsage")?,
        wasm,
        nodes: metric("Nodes")?,
        listeners: metric("JSEventListeners")?,
    })
}

/// How many objects whose prototype is `prototype` (a JS expression) the
/// page's heap holds (DevTools `Runtime.queryObjects`).
async fn live_objects(browser: &Browser, prototype: &str) -> Result<f64> {
    let proto = browser
        .cdp(
            "Runtime.evaluate",
            json!({ "expression": prototype, "objectGroup": "heartline-bench" }),
        )
        .await?;
    let proto_id = proto["result"]["objectId"]
        .as_str()
        .ok_or_else(|| Error::Other(format!("{prototype} has no objectId: {proto}")))?
        .to_owned();
    let found = browser
        .cdp(
            "Runtime.queryObjects",
            json!({ "prototypeObjectId": proto_id, "objectGroup": "heartline-bench" }),
        )
        .await?;
    let array_id = found["objects"]["objectId"]
        .as_str()
        .ok_or_else(|| Error::Other(format!("queryObjects answered {found}")))?
        .to_owned();
    let length = browser
        .cdp(
            "Runtime.callFunctionOn",
            json!({
                "objectId": array_id,
                "functionDeclaration": "function () { return this.length; }",
                "returnByValue": true,
            }),
        )
        .await?;
    browser
        .cdp(
            "Runtime.releaseObjectGroup",
            json!({ "objectGroup": "heartline-bench" }),
        )
        .await?;
    length["result"]["value"]
        .as_f64()
        .ok_or_else(|| Error::Other(format!("the object count is not a number: {length}")))
}

fn print_page(label: &str, memory: &PageMemory) {
    eprintln!("page {label}: {memory:?}");
    println!("page_{label}_js_used={:.0}", memory.js_used);
    println!("page_{label}_js_total={:.0}", memory.js_total);
    println!("page_{label}_wasm={:.0}", memory.wasm);
    println!("page_{label}_nodes={:.0}", memory.nodes);
    println!("page_{label}_listeners={:.0}", memory.listeners);
    println!("page_{label}_sockets={:.0}", memory.sockets);
    println!("page_{label}_objects={:.0}", memory.objects);
}

async fn shown_messages(browser: &Browser) -> Result<usize> {
    let count = eval(
        browser,
        "document.querySelectorAll('.message[data-seq]').length",
    )
    .await?;
    Ok(count.as_u64().unwrap_or(0) as usize)
}

/// A native client sends `args.messages` chat messages into the room at
/// `args.message_rate`, at most `WINDOW` unacked; waits for every ack.
async fn send_messages(args: &Args, server: SocketAddr, timeout: Duration) -> Result<()> {
    const WINDOW: usize = 200;
    let (mut socket, _) = wsclient::connect_hello(server, "loadbot", None, timeout).await?;
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let interval = Duration::from_secs_f64(1.0 / args.message_rate.max(1) as f64);
    let (mut sent, mut acked) = (0usize, 0usize);
    while acked < args.messages {
        if sent < args.messages && sent - acked < WINDOW {
            tokio::time::sleep_until(started + interval.mul_f64(sent as f64)).await;
            let frame = json!({
                "socketType": "chat.send", "id": format!("load-{sent}"), "room": ROOM,
                "text": format!("message {sent} of the memory benchmark, about chat-sized"),
            });
            wsclient::send_json(&mut socket, &frame).await?;
            sent += 1;
            continue;
        }
        let frame = wsclient::next_json(&mut socket, deadline).await?;
        match frame["socketType"].as_str() {
            Some("ack") => acked += 1,
            Some("error") => return Err(Error::Other(format!("chat.send refused: {frame}"))),
            _ => {}
        }
    }
    println!("messages_sent_ms={}", started.elapsed().as_millis());
    wsclient::close(socket, Duration::from_secs(2)).await;
    Ok(())
}

// ---------------------------------------------------------------- server

async fn server(args: &Args, files: &AppFiles, timeout: Duration) -> Result<()> {
    let per_ip = (args.idle + args.concurrency + 64).to_string();
    let pending = (args.concurrency * 2).to_string();
    let max = (args.idle + args.concurrency + 64).max(10_000).to_string();
    let server_args = [
        "--max-connections-per-ip",
        per_ip.as_str(),
        "--max-pending-per-ip",
        pending.as_str(),
        "--max-connections",
        max.as_str(),
    ];
    let mut stack = files.start_stack(&files.dist, &server_args).await?;
    let result = server_on(args, &mut stack, timeout).await;
    if result.is_err() {
        eprintln!("{}", stack.logs_tail(20));
    }
    result
}

async fn server_on(args: &Args, stack: &mut Stack, timeout: Duration) -> Result<()> {
    wait_connections(stack, 0, timeout).await?;
    println!("server_fresh_rss={}", server_rss(stack)?);

    let addr = stack.server_addr();
    let opened: Vec<Result<Socket>> = stream::iter(0..args.idle)
        .map(|i| async move {
            let name = format!("idle-{i}");
            wsclient::connect_hello(addr, &name, None, timeout)
                .await
                .map(|(socket, _)| socket)
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let sockets = opened.into_iter().collect::<Result<Vec<_>>>()?;
    wait_connections(stack, sockets.len(), timeout).await?;
    println!("idle={}", sockets.len());
    println!("server_idle_rss={}", server_rss(stack)?);
    stream::iter(sockets)
        .for_each_concurrent(args.concurrency.max(1) * 4, |socket| {
            wsclient::close(socket, Duration::from_secs(5))
        })
        .await;
    wait_connections(stack, 0, timeout).await?;
    println!("server_idle_closed_rss={}", server_rss(stack)?);

    // A fresh process for the cycles, so the idle run's peak does not hide
    // growth.
    stack.restart_server().await?;
    wait_connections(stack, 0, timeout).await?;
    println!("server_restarted_rss={}", server_rss(stack)?);
    let warmup = (args.cycles / 10).max(1);
    cycles(stack.server_addr(), warmup, args.concurrency, timeout).await?;
    wait_connections(stack, 0, timeout).await?;
    println!("warmup_cycles={warmup}");
    println!("server_cycles_before_rss={}", server_rss(stack)?);
    let started = tokio::time::Instant::now();
    cycles(stack.server_addr(), args.cycles, args.concurrency, timeout).await?;
    wait_connections(stack, 0, timeout).await?;
    println!("cycles={}", args.cycles);
    println!("cycles_ms={}", started.elapsed().as_millis());
    println!("server_cycles_after_rss={}", server_rss(stack)?);
    Ok(())
}

/// `count` connect/hello/close cycles over `concurrency` workers, each
/// reusing the token of its first welcome (a reconnecting client).
async fn cycles(
    server: SocketAddr,
    count: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<()> {
    let workers = concurrency.clamp(1, count.max(1));
    let results: Vec<Result<()>> = stream::iter(0..workers)
        .map(|worker| async move {
            let name = format!("cycler-{worker}");
            let mut token: Option<String> = None;
            for _ in (worker..count).step_by(workers) {
                let (socket, welcome_token) =
                    wsclient::connect_hello(server, &name, token.as_deref(), timeout).await?;
                token = Some(welcome_token);
                wsclient::close(socket, Duration::from_secs(5)).await;
            }
            Ok(())
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Polls `/healthz` until it counts `want` open WebSocket connections.
async fn wait_connections(stack: &Stack, want: usize, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let health = stack.healthz().await?;
        let value: Value = serde_json::from_str(&health.body).unwrap_or(Value::Null);
        let open = value["connections"].as_u64();
        if open == Some(want as u64) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(
                format!("the server to count {want} connections (it counts {open:?})"),
                timeout,
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// The server's resident set (`VmRSS` of `/proc/<pid>/status`), in bytes.
fn server_rss(stack: &Stack) -> Result<u64> {
    let pid = stack
        .server_pid()
        .ok_or_else(|| Error::Other("the server is not running".into()))?;
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| Error::Other(format!("no VmRSS in {path}")))
}
