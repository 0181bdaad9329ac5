//! `bench-inbound`: client inbound throughput in headless Chromium (for
//! `scripts/bench inbound`).
//!
//! A loopback push server serves the bench pages (`bench/inbound/raw.html`
//! and the trunk dist of `bench/inbound/app`) and, on `/ws`, answers a
//! page's `bench.start` by pushing `--messages` frames as fast as the
//! socket takes them: alternately a `chat.message` (seq 1, 2, … of one
//! stream, about 200 bytes) and a `metrics.sample` (about 300 bytes), built
//! from the protocol crate's types, written in batches (feed, then one
//! flush). It answers `ping` with `pong` like the demo server.
//!
//! The five variants (plain JS, yew-hooks, and the socket layer through
//! `use_socket_handler`, `use_subscription` and `use_message_fold`) run one
//! after another in one browser, the order rotated each round, for
//! `--rounds` rounds. Each run is checked: every message arrived, every
//! chat message in order. Prints one `key=value` line per run and per
//! variant (the median rate) for `scripts/bench.d/inbound.sh`.
//!
//! `--profile DIR` samples the first round's runs with DevTools `Profiler`
//! and prints each variant's top functions by self time; build the app
//! from `bench/inbound/app/index-profile.html` (wasm-opt `-g`) for wasm
//! function names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use heartline_bench::app::{eval, eval_until, median_max, number, performance_metrics};
use heartline_e2e::{Browser, Error, Result};
use heartline_protocol::{ChatMessage, MetricsSample, Pong, ServerMessage};
use serde_json::Value;

/// Client inbound throughput in headless Chromium.
#[derive(Debug, Parser)]
#[command(name = "bench-inbound", about)]
struct Args {
    /// The trunk dist of `bench/inbound/app`, built with `--public-url /app/`.
    #[arg(long)]
    app_dist: PathBuf,
    /// The plain JavaScript page.
    #[arg(long)]
    raw_page: PathBuf,
    /// Messages pushed per run.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Rounds of the five variants.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Deadline for one run, in seconds.
    #[arg(long, default_value_t = 120)]
    run_timeout: u64,
    /// Profile the first round's runs with DevTools `Profiler` (sampling
    /// every 100 µs): writes `VARIANT.cpuprofile` here (Chromium's format)
    /// and prints each variant's top functions by self time.
    #[arg(long)]
    profile: Option<PathBuf>,
}

/// The variants, by the name the pages report.
const VARIANTS: [(&str, &str); 5] = [
    ("raw-js", "/raw.html?"),
    ("yew-hooks", "/app/?v=hooks&"),
    ("layer-handler", "/app/?v=handler&"),
    ("layer-subscription", "/app/?v=subscription&"),
    ("layer-render", "/app/?v=render&"),
];

/// The ratios reported, as (variant, baseline) indices into [`VARIANTS`]:
/// each is taken within a round (both ran minutes apart at most, in the
/// same browser), then the median over rounds, so a slow patch of the
/// shared machine moves both sides of a ratio, not one.
const RATIOS: [(usize, usize); 6] = [(1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (4, 3)];

/// Frames written before each flush.
const BATCH: u64 = 256;

#[derive(Clone)]
struct Push {
    messages: u64,
    raw_page: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-inbound: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let raw_page = std::fs::read_to_string(&args.raw_page)
        .map_err(|e| Error::io("reading the plain JavaScript page", e))?;
    let push = Push {
        messages: args.messages,
        raw_page,
    };
    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/raw.html", get(raw_page_handler))
        .nest_service("/app", tower_http::services::ServeDir::new(&args.app_dist))
        .with_state(push);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::io("binding the push server", e))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the push server's address", e))?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    eprintln!("bench-inbound: push server on http://{addr}");

    let browser = Browser::start().await?;
    let outcome = measure(&browser, addr, args).await;
    let quit = browser.quit().await;
    server.abort();
    outcome?;
    quit
}

async fn measure(browser: &Browser, addr: SocketAddr, args: &Args) -> Result<()> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut renders_per_frame: Vec<f64> = Vec::new();
    let mut script_us: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut task_us: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    browser
        .cdp("Performance.enable", serde_json::json!({}))
        .await?;
    for round in 0..args.rounds {
        for step in 0..VARIANTS.len() {
            let index = (round + step) % VARIANTS.len();
            let (name, path) = VARIANTS[index];
            let url = format!("http://{addr}{path}n={}", args.messages);
            let profiling = round == 0 && args.profile.is_some();
            if profiling {
                start_profiler(browser).await?;
            }
            let before = main_thread(browser).await?;
            browser.goto(&url).await?;
            let result = eval_until(
                browser,
                &format!("{name}: {} messages", args.messages),
                "window.__bench || null",
                Duration::from_secs(args.run_timeout),
            )
            .await?;
            let after = main_thread(browser).await?;
            if let (true, Some(dir)) = (profiling, &args.profile) {
                stop_profiler(browser, dir, name).await?;
            }
            let checked = check(&result, name, args.messages)?;
            rates[index].push(checked.rate);
            let per_message =
                |(a, b): (f64, f64)| a / checked.received * 1e6 - b / checked.received * 1e6;
            script_us[index].push(per_message((after.script, before.script)));
            task_us[index].push(per_message((after.task, before.task)));
            if name == "layer-render" {
                renders_per_frame.push(checked.renders / checked.frames.max(1.0));
            }
            println!(
                "run round={round} variant={name} rate={:.0} ms={:.1} frames={:.0} renders={:.0}",
                checked.rate, checked.ms, checked.frames, checked.renders
            );
            // Leave the page so its socket closes before the next run.
            browser.goto("about:blank").await?;
            eval(browser, "1").await?;
        }
    }
    for (index, (name, _)) in VARIANTS.iter().enumerate() {
        let (median, max) = median_max(&rates[index]);
        let min = rates[index].iter().copied().fold(f64::INFINITY, f64::min);
        let (script, _) = median_max(&script_us[index]);
        let (task, _) = median_max(&task_us[index]);
        println!(
            "variant={name} median={median:.0} min={min:.0} max={max:.0} runs={} script_us={script:.1} task_us={task:.1}",
            rates[index].len()
        );
    }
    for (variant, baseline) in RATIOS {
        let per_round: Vec<f64> = rates[variant]
            .iter()
            .zip(&rates[baseline])
            .map(|(v, b)| v / b)
            .collect();
        let (median, max) = median_max(&per_round);
        let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "ratio={}/{} median={median:.3} min={min:.3} max={max:.3} rounds={}",
            VARIANTS[variant].0,
            VARIANTS[baseline].0,
            per_round.len()
        );
    }
    let (_, worst) = median_max(&renders_per_frame);
    println!("render_per_frame_max={worst:.3}");
    println!("messages={} rounds={}", args.messages, args.rounds);
    Ok(())
}

async fn start_profiler(browser: &Browser) -> Result<()> {
    browser
        .cdp("Profiler.enable", serde_json::json!({}))
        .await?;
    browser
        .cdp(
            "Profiler.setSamplingInterval",
            serde_json::json!({ "interval": 100 }),
        )
        .await?;
    browser.cdp("Profiler.start", serde_json::json!({})).await?;
    Ok(())
}

/// Stops the profiler, writes the profile and prints the top functions by
/// self time (samples landing in the function itself).
async fn stop_profiler(browser: &Browser, dir: &std::path::Path, name: &str) -> Result<()> {
    let answer = browser.cdp("Profiler.stop", serde_json::json!({})).await?;
    let profile = &answer["profile"];
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the profile directory", e))?;
    let path = dir.join(format!("{name}.cpuprofile"));
    std::fs::write(&path, profile.to_string())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let mut self_hits: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut total = 0;
    for node in profile["nodes"].as_array().into_iter().flatten() {
        let hits = node["hitCount"].as_u64().unwrap_or(0);
        let frame = &node["callFrame"];
        let function = frame["functionName"].as_str().unwrap_or("");
        let label = if function.is_empty() {
            "(anonymous)".to_owned()
        } else {
            function.to_owned()
        };
        *self_hits.entry(label).or_default() += hits;
        total += hits;
    }
    let mut top: Vec<(String, u64)> = self_hits.into_iter().collect();
    top.sort_by_key(|(_, hits)| std::cmp::Reverse(*hits));
    for (function, hits) in top.iter().take(25) {
        println!(
            "profile variant={name} self_pct={:.1} function={function}",
            *hits as f64 * 100.0 / total.max(1) as f64
        );
    }
    Ok(())
}

/// The renderer main thread's busy time so far, in seconds: all tasks, and
/// script (DevTools `Performance.getMetrics`, cumulative).
struct MainThread {
    task: f64,
    script: f64,
}

async fn main_thread(browser: &Browser) -> Result<MainThread> {
    let metrics = performance_metrics(browser).await?;
    Ok(MainThread {
        task: metrics.get("TaskDuration")?,
        script: metrics.get("ScriptDuration")?,
    })
}

struct Checked {
    received: f64,
    rate: f64,
    ms: f64,
    frames: f64,
    renders: f64,
}

/// Every message arrived, of both types, with chat in order.
fn check(result: &Value, name: &str, expected: u64) -> Result<Checked> {
    if let Some(error) = result.get("error") {
        return Err(Error::Other(format!("{name}: the page failed: {error}")));
    }
    let received = number(result, "received", name)?;
    let chat = number(result, "chat", name)?;
    let metrics = number(result, "metrics", name)?;
    let other = number(result, "other", name)?;
    let out_of_order = number(result, "out_of_order", name)?;
    let expected_chat = expected.div_ceil(2) as f64;
    if received != expected as f64
        || chat != expected_chat
        || metrics != expected as f64 - expected_chat
        || other != 0.0
        || out_of_order != 0.0
    {
        return Err(Error::Other(format!(
            "{name}: not every message arrived in order: {result}"
        )));
    }
    let ms = number(result, "ms", name)?;
    Ok(Checked {
        received,
        rate: received / (ms.max(1.0) / 1_000.0),
        ms,
        frames: number(result, "frames", name)?,
        renders: number(result, "renders", name)?,
    })
}

async fn raw_page_handler(State(push): State<Push>) -> Html<String> {
    Html(push.raw_page)
}

async fn upgrade(ws: WebSocketUpgrade, State(push): State<Push>) -> impl IntoResponse {
    ws.on_upgrade(move |socket| session(socket, push.messages))
}

/// Waits for `bench.start`, then pushes; answers pings all along.
async fn session(socket: WebSocket, messages: u64) {
    let (mut sink, mut stream) = socket.split();
    let mut pushed = messages;
    loop {
        tokio::select! {
            biased;
            incoming = stream.next() => {
                let Some(Ok(Message::Text(text))) = incoming else {
                    if matches!(incoming, None | Some(Err(_))) { return; }
                    continue;
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                match frame["socketType"].as_str() {
                    Some("bench.start") => pushed = 0,
                    Some("ping") => {
                        let pong = ServerMessage::Pong(Pong { t: frame["t"].as_f64().unwrap_or(0.0) });
                        if sink.send(Message::Text(pong.to_json().into())).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            () = std::future::ready(()), if pushed < messages => {
                let end = (pushed + BATCH).min(messages);
                for index in pushed..end {
                    if sink.feed(Message::Text(frame(index).into())).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                pushed = end;
            }
        }
    }
}

/// Message `index` of a run: even ones chat (seq from 1), odd ones metrics.
fn frame(index: u64) -> String {
    if index.is_multiple_of(2) {
        ServerMessage::ChatMessage(ChatMessage {
            stream: "bench".to_owned(),
            epoch: 1,
            seq: index / 2 + 1,
            id: format!("m-{index}"),
            from: "bench".to_owned(),
            text: "a chat-sized message, about as long as people type them".to_owned(),
            at: 1_700_000_000_000,
        })
        .to_json()
    } else {
        ServerMessage::MetricsSample(MetricsSample {
            at: 1_700_000_000_000,
            cpu_total: 12.5,
            cpu_per_core: vec![10.25, 14.75],
            mem_used: 1_234_567_890,
            mem_total: 8_000_000_000,
            load: [0.52, 0.41, 0.33],
            net_rx_per_sec: 12_345,
            net_tx_per_sec: 5_432,
            connections: 3,
            messages_in_per_sec: 4.5,
            messages_out_per_sec: 9.0,
            rooms: 2,
            uptime_secs: 3_600,
        })
        .to_json()
    }
}
