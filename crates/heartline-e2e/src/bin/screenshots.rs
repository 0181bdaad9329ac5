//! `screenshots`: what a person sees, as PNGs.
//!
//! Starts the release server (serving the built app) behind the fault proxy,
//! opens the app through the proxy in headless Chromium as "ada", and takes:
//!
//! - `chat-{wide,narrow}-{light,dark}.png`: `/chat/lobby` after sending a
//!   few messages from the page;
//! - `dashboard-{wide,narrow}-{light,dark}.png`: `/dashboard` once its
//!   charts have a few samples;
//! - `banner-reconnecting-wide-light.png`: the connection banner after the
//!   proxy cut the link.
//!
//! Wide is 1280x800, narrow 360x740. Prints one line per screenshot. A
//! condition that does not hold in time is an error; with `--allow-missing`
//! the screenshot is taken anyway (of whatever the page shows), a warning is
//! printed, and the run still succeeds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use heartline_e2e::{Browser, BrowserOptions, ColorScheme, ProxyMode, Stack, StackOptions};

/// Screenshots of the Heartline app in headless Chromium.
#[derive(Debug, Parser)]
#[command(name = "screenshots", about)]
struct Args {
    /// The built app (trunk's dist/).
    #[arg(long)]
    dist: PathBuf,
    /// Where the PNGs go (created if missing).
    #[arg(long, default_value = "screenshots")]
    out: PathBuf,
    /// The heartline-server binary (default: beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The heartline-faultproxy binary (default: beside this one).
    #[arg(long)]
    proxy_bin: Option<PathBuf>,
    /// The display name the app is opened with.
    #[arg(long, default_value = "ada")]
    name: String,
    /// Deadline of each condition waited for, in seconds.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
    /// Take a screenshot even when its condition did not hold in time
    /// (warning instead of failing).
    #[arg(long)]
    allow_missing: bool,
}

/// The localStorage key of the display name; the app stores it as JSON
/// (yew-hooks `use_local_storage::<String>`), hence a quoted string.
const NAME_KEY: &str = "heartline.name";

/// Time for CSS transitions after a condition holds, before a screenshot.
const SETTLE: Duration = Duration::from_millis(300);

const MESSAGES: &[&str] = &[
    "Morning! Is the dashboard green today?",
    "All green. The link dropped twice overnight and nothing was lost.",
    "Nice. Heartbeats caught the half-open one within seconds.",
];

#[derive(Debug, Clone, Copy)]
struct Viewport {
    name: &'static str,
    width: u32,
    height: u32,
}

const WIDE: Viewport = Viewport {
    name: "wide",
    width: 1280,
    height: 800,
};
const NARROW: Viewport = Viewport {
    name: "narrow",
    width: 360,
    height: 740,
};

/// Drives one run; collects the warnings of `--allow-missing`.
#[derive(Debug)]
struct Run {
    browser: Browser,
    out: PathBuf,
    timeout: Duration,
    allow_missing: bool,
    taken: usize,
    missing: Vec<String>,
}

impl Run {
    /// A condition did not hold: fatal, or a warning with `--allow-missing`.
    fn missed(&mut self, shot: &str, error: heartline_e2e::Error) -> Result<(), String> {
        let message = format!("{shot}: {error}");
        if self.allow_missing {
            eprintln!("warning: {message} (taking the screenshot anyway)");
            self.missing.push(message);
            Ok(())
        } else {
            Err(format!(
                "{message} (--allow-missing takes the screenshot anyway)"
            ))
        }
    }

    async fn shoot(&mut self, file: &str) -> Result<(), String> {
        tokio::time::sleep(SETTLE).await;
        let path = self.out.join(file);
        self.browser
            .screenshot(&path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.taken += 1;
        println!("{}", path.display());
        Ok(())
    }

    /// Every viewport and colour scheme of the current page.
    async fn shoot_variants(
        &mut self,
        page: &str,
        ready: &(dyn Fn(&Browser, Duration) -> ReadyFuture<'_> + Sync),
    ) -> Result<(), String> {
        for viewport in [WIDE, NARROW] {
            for scheme in [ColorScheme::Light, ColorScheme::Dark] {
                self.browser
                    .set_window_size(viewport.width, viewport.height)
                    .await
                    .map_err(|e| e.to_string())?;
                self.browser
                    .set_color_scheme(scheme)
                    .await
                    .map_err(|e| e.to_string())?;
                let file = format!("{page}-{}-{}.png", viewport.name, scheme.name());
                if let Err(error) = ready(&self.browser, self.timeout).await {
                    self.missed(&file, error)?;
                }
                self.shoot(&file).await?;
            }
        }
        Ok(())
    }
}

type ReadyFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = heartline_e2e::Result<()>> + Send + 'a>>;

/// The chat page is ready when its messages are shown.
fn chat_ready(browser: &Browser, timeout: Duration) -> ReadyFuture<'_> {
    Box::pin(async move {
        browser.wait_for(".messages", timeout).await?;
        browser.wait_for(".message", timeout).await?;
        banner_settled(browser, timeout).await
    })
}

/// The "Connected" banner shows for a moment after each connect, floating
/// over the page; a picture of the page waits until it has hidden again.
fn banner_settled(browser: &Browser, timeout: Duration) -> ReadyFuture<'_> {
    Box::pin(async move {
        browser
            .wait_until(
                "the Connected banner to hide",
                "const b = document.querySelector('.hl-banner'); \
                 return !!b && b.dataset.status === 'open' && b.hidden;",
                timeout,
            )
            .await?;
        Ok(())
    })
}

/// The dashboard is ready when a chart has a value and a line of at least
/// three segments (four samples).
fn dashboard_ready(browser: &Browser, timeout: Duration) -> ReadyFuture<'_> {
    Box::pin(async move {
        browser.wait_for(".chart", timeout).await?;
        browser
            .wait_until(
                "a .chart__value with text",
                "return [...document.querySelectorAll('.chart__value')]\
                 .some(e => e.textContent.trim() !== '');",
                timeout,
            )
            .await?;
        browser
            .wait_until(
                "a path.chart__line with at least 3 'L' segments",
                "return [...document.querySelectorAll('path.chart__line')]\
                 .some(p => ((p.getAttribute('d') || '').match(/L/g) || []).length >= 3);",
                timeout,
            )
            .await?;
        banner_settled(browser, timeout).await
    })
}

async fn run(args: Args) -> Result<Run, String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let mut options = StackOptions::new(&args.dist);
    if let Some(bin) = args.server_bin {
        options.server_bin = bin;
    }
    if let Some(bin) = args.proxy_bin {
        options.proxy_bin = bin;
    }
    let stack = Stack::start(options)
        .await
        .map_err(|e| format!("starting the server and the proxy: {e}"))?;
    eprintln!(
        "server on {}, proxy on {} (control {})",
        stack.server_addr(),
        stack.proxy_addr(),
        stack.control_addr()
    );
    let browser = Browser::start_with(BrowserOptions {
        chromedriver_log: Some(stack.dir().join("chromedriver.log")),
        ..BrowserOptions::default()
    })
    .await
    .map_err(|e| format!("starting Chromium: {e}"))?;
    let mut run = Run {
        browser,
        out: args.out,
        timeout: Duration::from_secs(args.timeout),
        allow_missing: args.allow_missing,
        taken: 0,
        missing: Vec::new(),
    };
    let result = shots(&mut run, &stack, &args.name).await;
    if let Err(error) = &result {
        eprintln!("{error}\n{}", stack.logs_tail(20));
    }
    result.map(|()| run)
}

async fn shots(run: &mut Run, stack: &Stack, name: &str) -> Result<(), String> {
    let b = &run.browser;
    let timeout = run.timeout;
    let text = |e: heartline_e2e::Error| e.to_string();

    // The name before the app first loads: the origin, then storage, then
    // the app again.
    b.set_window_size(WIDE.width, WIDE.height)
        .await
        .map_err(text)?;
    b.goto(&stack.app_url("/")).await.map_err(text)?;
    let stored = serde_json::to_string(name).map_err(|e| e.to_string())?;
    b.set_local_storage(NAME_KEY, &stored).await.map_err(text)?;
    b.reload().await.map_err(text)?;
    wait_rendered(b, timeout).await.map_err(text)?;

    // Chat: send a few messages from the page.
    b.goto(&stack.app_url("/chat/lobby")).await.map_err(text)?;
    fill_name_prompt(b, name, timeout).await.map_err(text)?;
    if let Err(error) = send_messages(b, timeout).await {
        run.missed("chat", error)?;
    }
    run.shoot_variants("chat", &chat_ready).await?;

    // Dashboard.
    let b = &run.browser;
    b.set_window_size(WIDE.width, WIDE.height)
        .await
        .map_err(text)?;
    b.goto(&stack.app_url("/dashboard")).await.map_err(text)?;
    fill_name_prompt(b, name, timeout).await.map_err(text)?;
    run.shoot_variants("dashboard", &dashboard_ready).await?;

    // The banner while reconnecting, on the chat page.
    let b = &run.browser;
    b.set_window_size(WIDE.width, WIDE.height)
        .await
        .map_err(text)?;
    b.set_color_scheme(ColorScheme::Light).await.map_err(text)?;
    b.goto(&stack.app_url("/chat/lobby")).await.map_err(text)?;
    b.wait_until(
        "the connection to open",
        r#"return document.querySelector('.hl-banner[data-status="open"]') !== null;"#,
        timeout,
    )
    .await
    .map_err(text)?;
    stack.set_mode(ProxyMode::Cut).await.map_err(text)?;
    let reconnecting = run
        .browser
        .wait_for(r#".hl-banner[data-status="reconnecting"]"#, timeout)
        .await;
    if let Err(error) = reconnecting {
        run.missed("banner-reconnecting", error)?;
    }
    run.shoot("banner-reconnecting-wide-light.png").await?;
    stack.set_mode(ProxyMode::Pass).await.map_err(text)?;
    Ok(())
}

/// Waits until the app has rendered something of its own.
async fn wait_rendered(b: &Browser, timeout: Duration) -> heartline_e2e::Result<()> {
    b.wait_until(
        "the app to render (.hl-banner, #display-name, .rooms, .chart or main)",
        "return document.querySelector('.hl-banner, #display-name, .rooms, .chart, main') !== null;",
        timeout,
    )
    .await?;
    Ok(())
}

/// Answers the name prompt if the app shows one (it should not: the name is
/// in localStorage already).
async fn fill_name_prompt(b: &Browser, name: &str, timeout: Duration) -> heartline_e2e::Result<()> {
    wait_rendered(b, timeout).await?;
    let prompt = b
        .execute(
            "const e = document.querySelector('#display-name'); return e !== null && e.offsetParent !== null;",
            Vec::new(),
        )
        .await?;
    if prompt == serde_json::Value::Bool(true) {
        b.type_into("#display-name", name, timeout).await?;
        b.press_enter("#display-name", timeout).await?;
    }
    Ok(())
}

/// Types each message into the composer and presses Enter, waiting until it
/// shows up in the list.
async fn send_messages(b: &Browser, timeout: Duration) -> heartline_e2e::Result<()> {
    b.wait_for(".rooms", timeout).await?;
    let before = b
        .driver()?
        .find_all(thirtyfour::By::Css(".message"))
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    for (i, message) in MESSAGES.iter().enumerate() {
        b.type_into("#composer-text", message, timeout).await?;
        b.press_enter("#composer-text", timeout).await?;
        b.wait_for_count(".message", before + i + 1, timeout)
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(run) => {
            let taken = run.taken;
            let missing = run.missing.len();
            if let Err(error) = run.browser.quit().await {
                eprintln!("warning: closing Chromium: {error}");
            }
            if missing > 0 {
                eprintln!(
                    "{taken} screenshots, {missing} of them without their condition (--allow-missing)"
                );
            } else {
                eprintln!("{taken} screenshots");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("screenshots: {error}");
            ExitCode::FAILURE
        }
    }
}
