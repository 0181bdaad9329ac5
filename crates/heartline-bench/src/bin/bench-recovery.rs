//! `bench-recovery`: how fast the release app recovers, in headless Chromium
//! through the fault proxy (for `scripts/bench recovery`).
//!
//! 1. **Server restarts**, with the app's default socket config: `--restarts`
//!    times, the server is killed (`kill -9`), two messages are typed in the
//!    chat while it is down, and it is started again. Measured: from the
//!    server being back (its ready file written, the listener bound) to the
//!    banner saying `open`, and to the outbox drained (open, nothing waiting,
//!    no pending message in the chat). Before each kill the link has been up
//!    for the config's `min_uptime`, so every outage starts from a reset
//!    backoff. The bound the backoff policy gives for each outage is printed
//!    alongside (see [`backoff_bound`]).
//! 2. **Stalls**: the proxy keeps the link open and forwards nothing;
//!    measured from the stall to the banner leaving `open`, against the
//!    configured `heartbeat_ms + timeout_ms` (set in the page's
//!    `<meta name="heartline-config">`).
//!
//! Prints `key=value` lines (times in ms) for `scripts/bench.d/recovery.sh`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use heartline::core::{Backoff, BackoffConfig, Config, Jitter};
use heartline_bench::app::{
    AppFiles, dist_with_config, epoch_ms, median_max, open_room, send_chat, wait_status,
};
use heartline_bench::recorder;
use heartline_e2e::{Browser, Error, ProxyMode, Result, Stack};

/// Recovery times of the release app in headless Chromium.
#[derive(Debug, Parser)]
#[command(name = "bench-recovery", about)]
struct Args {
    /// The built app (`trunk build --release`).
    #[arg(long)]
    dist: PathBuf,
    /// Holds the release `heartline-server` and `heartline-faultproxy`.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Server kills and restarts.
    #[arg(long, default_value_t = 20)]
    restarts: usize,
    /// Messages typed while the server is down, per restart.
    #[arg(long, default_value_t = 2)]
    typed: usize,
    /// Stalls of the link.
    #[arg(long, default_value_t = 5)]
    stalls: usize,
    /// `heartbeat_ms` of the stall runs.
    #[arg(long, default_value_t = 2_000)]
    heartbeat_ms: u64,
    /// `timeout_ms` of the stall runs.
    #[arg(long, default_value_t = 1_000)]
    timeout_ms: u64,
    /// Deadline of each condition waited for, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// The room the page is opened in.
const ROOM: &str = "recovery";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-recovery: {error}");
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
    let browser = Browser::start().await?;
    let restarts = restart_rounds(args, &files, &browser, timeout).await;
    let stalls = match restarts {
        Ok(()) => stall_rounds(args, &files, &browser, timeout).await,
        Err(error) => Err(error),
    };
    let quit = browser.quit().await;
    stalls?;
    quit
}

/// Part 1: kill, type while down, restart; the default socket config.
async fn restart_rounds(
    args: &Args,
    files: &AppFiles,
    browser: &Browser,
    timeout: Duration,
) -> Result<()> {
    let config = Config::default();
    let mut stack = files.start_stack(&files.dist, &[]).await?;
    let result = restart_rounds_on(args, &mut stack, browser, &config, timeout).await;
    if result.is_err() {
        eprintln!("{}", stack.logs_tail(20));
    }
    result
}

async fn restart_rounds_on(
    args: &Args,
    stack: &mut Stack,
    browser: &Browser,
    config: &Config,
    timeout: Duration,
) -> Result<()> {
    open_room(
        browser,
        &stack.app_url(&format!("/chat/{ROOM}")),
        "ada",
        timeout,
    )
    .await?;
    recorder::install(browser).await?;
    let min_uptime = Duration::from_millis(config.min_uptime);
    let mut opened_at = tokio::time::Instant::now();
    let (mut connected, mut drained, mut bounds, mut down) = (vec![], vec![], vec![], vec![]);
    let mut typed = Vec::new();
    let mut over_bound = 0usize;
    for round in 1..=args.restarts {
        // A link up for min_uptime has its retry counter reset: every outage
        // starts from the first backoff step, as after a long-lived link.
        tokio::time::sleep_until(opened_at + min_uptime + Duration::from_millis(200)).await;
        recorder::arm(browser).await?;
        stack.kill_server().await?;
        for k in 1..=args.typed {
            let text = format!("typed while down {round}.{k}");
            send_chat(browser, &text, timeout).await?;
            typed.push(text);
        }
        stack.restart_server().await?;
        let back = epoch_ms(server_ready_time(stack)?);
        let stamps = recorder::wait(browser, "the outbox to drain", timeout, |s| {
            s.drained.is_some()
        })
        .await?;
        opened_at = tokio::time::Instant::now();
        let (Some(left), Some(open), Some(done)) = (stamps.left, stamps.open, stamps.drained)
        else {
            return Err(Error::Other(format!("incomplete stamps {stamps:?}")));
        };
        let outage = (back - left).max(0.0);
        let bound = backoff_bound(&config.backoff, outage);
        eprintln!(
            "restart {round}: down {outage:.0} ms, back -> open {:.0} ms, -> drained {:.0} ms (backoff bound {bound:.0} ms)",
            open - back,
            done - back
        );
        if done - back > bound {
            over_bound += 1;
        }
        down.push(outage);
        connected.push((open - back).max(0.0));
        drained.push((done - back).max(0.0));
        bounds.push(bound);
    }
    let acked = acked_once(browser, &typed).await?;
    let (down_median, down_max) = median_max(&down);
    let (connected_median, connected_max) = median_max(&connected);
    let (drained_median, drained_max) = median_max(&drained);
    let (bound_median, bound_max) = median_max(&bounds);
    println!("restarts={}", args.restarts);
    println!("typed={}", typed.len());
    println!("typed_acked_once={acked}");
    println!("down_ms_median={down_median:.0}");
    println!("down_ms_max={down_max:.0}");
    println!("connected_ms_median={connected_median:.0}");
    println!("connected_ms_max={connected_max:.0}");
    println!("drained_ms_median={drained_median:.0}");
    println!("drained_ms_max={drained_max:.0}");
    println!("bound_ms_median={bound_median:.0}");
    println!("bound_ms_max={bound_max:.0}");
    println!("drained_over_bound={over_bound}");
    println!("backoff_base_ms={}", config.backoff.base);
    println!("backoff_factor={}", config.backoff.factor);
    println!("backoff_cap_ms={}", config.backoff.cap);
    println!("backoff_jitter={:?}", config.backoff.jitter);
    println!("min_uptime_ms={}", config.min_uptime);
    if acked != typed.len() {
        return Err(Error::Other(format!(
            "only {acked} of the {} messages typed while down are shown acked exactly once",
            typed.len()
        )));
    }
    Ok(())
}

/// When the restarted server wrote its ready file (after binding).
fn server_ready_time(stack: &Stack) -> Result<SystemTime> {
    let ready = stack.dir().join("server.ready");
    std::fs::metadata(&ready)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(format!("reading the time of {}", ready.display()), e))
}

/// How many of `texts` the page shows stored and acked exactly once.
async fn acked_once(browser: &Browser, texts: &[String]) -> Result<usize> {
    let shown = browser
        .execute(
            r#"return [...document.querySelectorAll('.message[data-seq][data-state="acked"]')]
                 .map(m => m.querySelector('.message__text')?.textContent ?? '');"#,
            Vec::new(),
        )
        .await?;
    let shown: Vec<&str> = shown
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    Ok(texts
        .iter()
        .filter(|t| shown.iter().filter(|s| *s == t).count() == 1)
        .count())
}

/// The longest the backoff can keep a client waiting once the server is
/// back after an outage of `outage_ms` that began with a fresh retry
/// counter: the client is then waiting out the delay of some retry `k`, and
/// `k` is at most the first retry whose smallest possible delays add up to
/// the outage; that retry's largest delay is the bound. Opening the
/// WebSocket, `hello` and the acks come on top.
fn backoff_bound(config: &BackoffConfig, outage_ms: f64) -> f64 {
    let backoff = Backoff::new(config.clone(), 0);
    let floor = backoff.floor();
    let mut elapsed = 0.0;
    for retry in 1..=64 {
        let longest = backoff.envelope(retry);
        let shortest = match config.jitter {
            Jitter::Equal => longest / 2,
            Jitter::None => longest,
            Jitter::Full | Jitter::Decorrelated => floor,
        };
        elapsed += shortest.max(1) as f64;
        if elapsed >= outage_ms {
            return longest as f64;
        }
    }
    backoff.ceiling() as f64
}

/// Part 2: stalls, against heartbeat interval + timeout.
async fn stall_rounds(
    args: &Args,
    files: &AppFiles,
    browser: &Browser,
    timeout: Duration,
) -> Result<()> {
    let settings = format!(
        "heartbeat_ms={} timeout_ms={} backoff_base_ms=100 backoff_cap_ms=500 connect_timeout_ms=2000",
        args.heartbeat_ms, args.timeout_ms
    );
    let dist = dist_with_config(&files.dist, &settings)?;
    let stack = files.start_stack(dist.path(), &[]).await?;
    let result = stall_rounds_on(args, &stack, browser, timeout).await;
    if result.is_err() {
        eprintln!("{}", stack.logs_tail(20));
    }
    println!("stall_settings={settings}");
    result
}

async fn stall_rounds_on(
    args: &Args,
    stack: &Stack,
    browser: &Browser,
    timeout: Duration,
) -> Result<()> {
    open_room(
        browser,
        &stack.app_url(&format!("/chat/{ROOM}")),
        "bo",
        timeout,
    )
    .await?;
    recorder::install(browser).await?;
    let bound = (args.heartbeat_ms + args.timeout_ms) as f64;
    let mut detected = Vec::new();
    for round in 0..args.stalls {
        // Stalls start at spread phases of the heartbeat interval.
        let phase = args.heartbeat_ms * round as u64 / args.stalls.max(1) as u64;
        tokio::time::sleep(Duration::from_millis(phase)).await;
        recorder::arm(browser).await?;
        let stalled_at = epoch_ms(SystemTime::now());
        stack.set_mode(ProxyMode::Stall).await?;
        let stamps = recorder::wait(
            browser,
            "the stalled link to be declared dead",
            timeout,
            |s| s.left.is_some(),
        )
        .await;
        stack.set_mode(ProxyMode::Pass).await?;
        let left = stamps?
            .left
            .ok_or_else(|| Error::Other("no stamp of the link lost".into()))?;
        let took = (left - stalled_at).max(0.0);
        eprintln!(
            "stall {}: declared dead after {took:.0} ms (bound {bound:.0} ms)",
            round + 1
        );
        detected.push(took);
        wait_status(browser, "open", timeout).await?;
    }
    let (median, max) = median_max(&detected);
    println!("stalls={}", args.stalls);
    println!("heartbeat_ms={}", args.heartbeat_ms);
    println!("timeout_ms={}", args.timeout_ms);
    println!("stall_bound_ms={bound:.0}");
    println!("stall_ms_median={median:.0}");
    println!("stall_ms_max={max:.0}");
    Ok(())
}
