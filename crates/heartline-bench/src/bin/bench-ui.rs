//! `scripts/bench ui`: the real dashboard in headless Chromium while the
//! real server pushes `metrics.sample` frames at given rates.
//!
//! One release `heartline-server` per variant (the idle baseline at its
//! ordinary one sample a second, then one per `--metrics-load-rate`), one
//! browser, and the page's own performance APIs: `requestAnimationFrame`
//! timestamps for the frame rate and a `longtask` PerformanceObserver for
//! main-thread tasks over 50 ms. The variants are measured in turn, round
//! after round (the order reversed every other round), so drift of the
//! shared machine falls on all of them alike. Prints `key=value` lines
//! (`<variant>.<figure>=<value>`) for `scripts/bench.d/ui.sh`, and one line
//! per measurement on stderr.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use heartline_bench::app::performance_metrics;
use heartline_e2e::{Browser, BrowserOptions, Stack, StackOptions};
use serde::Deserialize;
use serde_json::json;

/// Deadline of one wait (a page, its charts, samples flowing).
const WAIT: Duration = Duration::from_secs(30);

/// Runs in every page before the app: counts the frames each WebSocket
/// receives (a counter, no parsing, so it costs the page next to nothing)
/// and how many sockets were opened (a reconnect during a window shows).
const COUNT_SCRIPT: &str = r#"
(() => {
  if (window.__hlBenchCount) return;
  const count = window.__hlBenchCount = { messages: 0, sockets: 0 };
  const Native = window.WebSocket;
  class CountingWebSocket extends Native {
    constructor(...args) {
      super(...args);
      count.sockets += 1;
      this.addEventListener('message', () => { count.messages += 1; });
    }
  }
  window.WebSocket = CountingWebSocket;
})();
"#;

/// Starts a window: every animation frame's timestamp and every long task.
const START_SCRIPT: &str = r#"
const count = window.__hlBenchCount;
const m = window.__hlBenchWindow = {
  frames: 0, first: null, last: null, gaps: [], long: [], done: false,
  t0: performance.now(), messages0: count.messages, sockets0: count.sockets,
};
m.observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) m.long.push(entry.duration);
});
m.observer.observe({ type: 'longtask' });
m.mutations = 0;
m.paths = 0;
m.mutationObserver = new MutationObserver((records) => {
  m.mutations += records.length;
  for (const r of records) if (r.attributeName === 'd') m.paths += 1;
});
m.mutationObserver.observe(document.body, {
  subtree: true, childList: true, attributes: true, characterData: true,
});
const tick = (t) => {
  if (m.done) return;
  if (m.last === null) m.first = t; else m.gaps.push(t - m.last);
  m.last = t;
  m.frames += 1;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
return true;
"#;

/// Ends the window and answers its figures.
const STOP_SCRIPT: &str = r#"
const m = window.__hlBenchWindow;
const count = window.__hlBenchCount;
m.done = true;
for (const entry of m.observer.takeRecords()) m.long.push(entry.duration);
m.observer.disconnect();
m.mutations += m.mutationObserver.takeRecords().length;
m.mutationObserver.disconnect();
const elapsed = performance.now() - m.t0;
const gaps = m.gaps.slice().sort((a, b) => a - b);
const at = (q) => gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] : 0;
return {
  frames: m.frames,
  span_ms: m.last === null ? 0 : m.last - m.first,
  worst_frame_ms: gaps.length ? gaps[gaps.length - 1] : 0,
  p99_frame_ms: at(0.99),
  slow_frames: gaps.filter((g) => g > 25).length,
  long_tasks: m.long.length,
  longest_task_ms: m.long.length ? Math.max(...m.long) : 0,
  messages: count.messages - m.messages0,
  reconnects: count.sockets - m.sockets0,
  dom_mutations: m.mutations,
  path_updates: m.paths,
  elapsed_ms: elapsed,
};
"#;

/// The dashboard in headless Chromium at several `metrics.sample` rates.
#[derive(Debug, Parser)]
#[command(name = "bench-ui", about)]
struct Args {
    /// The release app (trunk's `dist/`).
    #[arg(long)]
    dist: PathBuf,
    /// Directory of the release `heartline-server` and `heartline-faultproxy`
    /// (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Sample rates to measure, messages per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    rates: Vec<u32>,
    /// Rounds over every variant.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Length of one measurement window, seconds.
    #[arg(long, default_value_t = 5.0)]
    window_secs: f64,
    /// Time the page gets after its first chart before a window starts
    /// (the socket opens, the load reaches its pace), seconds.
    #[arg(long, default_value_t = 1.0)]
    settle_secs: f64,
    /// Deadline of the measuring (every round), seconds: past it the run
    /// stops the browser and the servers and fails.
    #[arg(long, default_value_t = 150)]
    deadline_secs: u64,
}

/// What one window measured (see [`STOP_SCRIPT`]).
#[derive(Debug, Clone, Deserialize)]
struct Window {
    frames: u64,
    span_ms: f64,
    worst_frame_ms: f64,
    p99_frame_ms: f64,
    slow_frames: u64,
    long_tasks: u64,
    longest_task_ms: f64,
    messages: u64,
    reconnects: u64,
    dom_mutations: u64,
    path_updates: u64,
    elapsed_ms: f64,
    /// Main-thread task time in the window, seconds (DevTools
    /// `Performance.getMetrics` `TaskDuration`, not read by the page).
    #[serde(default)]
    task_secs: f64,
    /// Of it, running script (`ScriptDuration`).
    #[serde(default)]
    script_secs: f64,
}

impl Window {
    fn fps(&self) -> f64 {
        if self.span_ms > 0.0 && self.frames > 1 {
            (self.frames - 1) as f64 * 1000.0 / self.span_ms
        } else {
            0.0
        }
    }

    fn messages_per_sec(&self) -> f64 {
        self.per_sec(self.messages as f64)
    }

    fn per_sec(&self, count: f64) -> f64 {
        if self.elapsed_ms > 0.0 {
            count * 1000.0 / self.elapsed_ms
        } else {
            0.0
        }
    }

    /// Share of the window the main thread spent in tasks, percent.
    fn busy_percent(&self) -> f64 {
        self.per_sec(self.task_secs) * 100.0
    }

    /// Share of the window spent running script, percent.
    fn script_percent(&self) -> f64 {
        self.per_sec(self.script_secs) * 100.0
    }

    /// Main-thread task time per message received, microseconds.
    fn task_us_per_message(&self) -> f64 {
        if self.messages == 0 {
            0.0
        } else {
            self.task_secs * 1e6 / self.messages as f64
        }
    }
}

/// One server and what was measured against it.
#[derive(Debug)]
struct Variant {
    /// `idle` or `r<rate>`: the prefix of its output keys.
    name: String,
    stack: Stack,
    windows: Vec<Window>,
}

type BenchResult<T> = Result<T, String>;

fn ctx<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> BenchResult<T> {
    result.map_err(|e| format!("{what}: {e}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-ui: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> BenchResult<()> {
    let mut variants = Vec::new();
    for rate in std::iter::once(None).chain(args.rates.iter().copied().map(Some)) {
        let mut options = StackOptions::new(&args.dist);
        if let Some(dir) = &args.bin_dir {
            options.server_bin = dir.join("heartline-server");
            options.proxy_bin = dir.join("heartline-faultproxy");
        }
        if let Some(rate) = rate {
            options.server_args = vec![
                OsString::from("--metrics-load-rate"),
                OsString::from(rate.to_string()),
            ];
        }
        let name = rate.map_or_else(|| "idle".to_owned(), |r| format!("r{r}"));
        let stack = ctx(
            Stack::start(options).await,
            &format!("starting the {name} server"),
        )?;
        variants.push(Variant {
            name,
            stack,
            windows: Vec::new(),
        });
    }
    let browser = ctx(
        Browser::start_with(BrowserOptions::default()).await,
        "starting Chromium",
    )?;
    // The deadline covers the measuring; the browser is quit either way.
    let deadline = Duration::from_secs(args.deadline_secs);
    let outcome = tokio::time::timeout(deadline, measure(args, &browser, &mut variants))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "not done within --deadline-secs {}",
                args.deadline_secs
            ))
        });
    let quit = browser.quit().await;
    outcome?;
    ctx(quit, "closing Chromium")?;
    report(&variants);
    Ok(())
}

async fn measure(args: &Args, browser: &Browser, variants: &mut [Variant]) -> BenchResult<()> {
    ctx(
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": COUNT_SCRIPT }),
            )
            .await,
        "installing the frame counter",
    )?;
    ctx(
        browser.set_window_size(1280, 800).await,
        "sizing the window",
    )?;
    ctx(
        browser.cdp("Performance.enable", json!({})).await,
        "enabling DevTools performance metrics",
    )?;
    // Each server is its own origin: give each the display name once, so
    // the app goes straight to the dashboard afterwards.
    for variant in variants.iter() {
        let url = variant.stack.server_url("/");
        ctx(browser.goto(&url).await, &format!("opening {url}"))?;
        ctx(
            browser
                .set_local_storage("heartline.name", &json!("bench").to_string())
                .await,
            "setting the display name",
        )?;
    }
    check_longtask_observer(browser).await?;
    let window = Duration::from_secs_f64(args.window_secs.max(0.5));
    let settle = Duration::from_secs_f64(args.settle_secs.max(0.0));
    for round in 0..args.rounds.max(1) {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for index in order {
            let variant = &mut variants[index];
            let measured = measure_one(browser, &variant.stack, window, settle).await;
            let measured = ctx(
                measured,
                &format!("round {} of {}", round + 1, variant.name),
            )?;
            eprintln!(
                "round {} {:>6}: {:5.1} fps, {} long tasks (longest {:.0} ms), worst frame {:.1} ms, \
                 p99 frame {:.1} ms, {} frames over 25 ms, {:.0} msg/s received, {} reconnects, \
                 main thread {:.1} % busy ({:.1} % script, {:.1} µs/msg), {:.0} DOM mutations/s \
                 ({:.0} path updates/s)",
                round + 1,
                variant.name,
                measured.fps(),
                measured.long_tasks,
                measured.longest_task_ms,
                measured.worst_frame_ms,
                measured.p99_frame_ms,
                measured.slow_frames,
                measured.messages_per_sec(),
                measured.reconnects,
                measured.busy_percent(),
                measured.script_percent(),
                measured.task_us_per_message(),
                measured.per_sec(measured.dom_mutations as f64),
                measured.per_sec(measured.path_updates as f64),
            );
            variant.windows.push(measured);
        }
    }
    Ok(())
}

/// Opens the dashboard on `stack`'s server, waits for its charts and for
/// samples to flow, then measures one window.
async fn measure_one(
    browser: &Browser,
    stack: &Stack,
    window: Duration,
    settle: Duration,
) -> BenchResult<Window> {
    let url = stack.server_url("/dashboard");
    ctx(browser.goto(&url).await, &format!("opening {url}"))?;
    ctx(
        browser.wait_for("path.chart__line", WAIT).await,
        "the dashboard's charts",
    )?;
    ctx(
        browser
            .wait_until(
                "a metrics sample",
                "return window.__hlBenchCount && window.__hlBenchCount.messages > 0;",
                WAIT,
            )
            .await,
        "samples arriving",
    )?;
    // Not a wait for a condition: the page runs under load for this long
    // before the window opens, the same for every variant.
    tokio::time::sleep(settle).await;
    ctx(
        browser.execute(START_SCRIPT, Vec::new()).await,
        "starting the window",
    )?;
    let before = main_thread_times(browser).await?;
    // The measurement window itself.
    tokio::time::sleep(window).await;
    let after = main_thread_times(browser).await?;
    let figures = ctx(
        browser.execute(STOP_SCRIPT, Vec::new()).await,
        "ending the window",
    )?;
    let mut measured = ctx(
        serde_json::from_value::<Window>(figures),
        "reading the window's figures",
    )?;
    measured.task_secs = (after.0 - before.0).max(0.0);
    measured.script_secs = (after.1 - before.1).max(0.0);
    Ok(measured)
}

/// The page's cumulative main-thread task and script time, seconds
/// (DevTools `Performance.getMetrics`; `Performance.enable` must have run).
async fn main_thread_times(browser: &Browser) -> BenchResult<(f64, f64)> {
    let metrics = ctx(
        performance_metrics(browser).await,
        "reading DevTools performance metrics",
    )?;
    let metric = |name: &str| ctx(metrics.get(name), "reading DevTools performance metrics");
    Ok((metric("TaskDuration")?, metric("ScriptDuration")?))
}

/// Checks that the long-task observer works in this browser: a task made
/// to last 80 ms on purpose must be reported, or "no long task" would mean
/// nothing.
async fn check_longtask_observer(browser: &Browser) -> BenchResult<()> {
    let seen = browser
        .execute(
            r#"
            window.__hlBenchProbe = [];
            const observer = new PerformanceObserver((list) => {
              for (const entry of list.getEntries()) window.__hlBenchProbe.push(entry.duration);
            });
            observer.observe({ type: 'longtask' });
            setTimeout(() => { const end = performance.now() + 80; while (performance.now() < end) {} }, 0);
            window.__hlBenchProbeObserver = observer;
            return true;
            "#,
            Vec::new(),
        )
        .await;
    ctx(seen, "starting the long-task probe")?;
    let seen = browser
        .wait_until(
            "the long-task observer to report an 80 ms task",
            "return (window.__hlBenchProbe || []).some((d) => d >= 75);",
            WAIT,
        )
        .await;
    ctx(seen, "the long-task probe")?;
    ctx(
        browser
            .execute(
                "window.__hlBenchProbeObserver.disconnect(); return true;",
                Vec::new(),
            )
            .await,
        "ending the long-task probe",
    )?;
    Ok(())
}

/// `<variant>.<figure>=<value>` lines: per variant the mean frame rate and
/// received message rate over its windows, the lowest window's frame rate,
/// and the worst of the rest.
fn report(variants: &[Variant]) {
    for variant in variants {
        let windows = &variant.windows;
        if windows.is_empty() {
            continue;
        }
        let n = windows.len() as f64;
        let mean = |f: fn(&Window) -> f64| windows.iter().map(f).sum::<f64>() / n;
        let max = |f: fn(&Window) -> f64| windows.iter().map(f).fold(0.0, f64::max);
        let min_fps = windows
            .iter()
            .map(Window::fps)
            .fold(f64::INFINITY, f64::min);
        let name = &variant.name;
        println!("{name}.windows={}", windows.len());
        println!("{name}.fps={:.1}", mean(Window::fps));
        println!("{name}.fps_min={min_fps:.1}");
        println!(
            "{name}.long_tasks={}",
            windows.iter().map(|w| w.long_tasks).sum::<u64>()
        );
        println!("{name}.longest_task_ms={:.0}", max(|w| w.longest_task_ms));
        println!("{name}.worst_frame_ms={:.1}", max(|w| w.worst_frame_ms));
        println!("{name}.p99_frame_ms={:.1}", max(|w| w.p99_frame_ms));
        println!(
            "{name}.slow_frames={}",
            windows.iter().map(|w| w.slow_frames).sum::<u64>()
        );
        println!(
            "{name}.messages_per_sec={:.0}",
            mean(Window::messages_per_sec)
        );
        println!(
            "{name}.reconnects={}",
            windows.iter().map(|w| w.reconnects).sum::<u64>()
        );
        println!("{name}.busy_percent={:.1}", mean(Window::busy_percent));
        println!("{name}.script_percent={:.1}", mean(Window::script_percent));
        println!(
            "{name}.task_us_per_message={:.1}",
            mean(Window::task_us_per_message)
        );
        println!(
            "{name}.dom_mutations_per_sec={:.0}",
            mean(|w| w.per_sec(w.dom_mutations as f64))
        );
        println!(
            "{name}.path_updates_per_sec={:.0}",
            mean(|w| w.per_sec(w.path_updates as f64))
        );
    }
}
