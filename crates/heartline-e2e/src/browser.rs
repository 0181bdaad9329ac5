//! Headless Chromium over WebDriver: a private chromedriver on a free port and
//! one session, with polling waits and DevTools emulation.
//!
//! One session can drive several windows ([`Browser::open_window`]): they
//! share the origin's localStorage, `BroadcastChannel` and Web Locks. Every
//! WebDriver command and every DevTools command ([`Browser::cdp`]) acts on the
//! *current* window only ([`Browser::switch_to`]). A window can be hidden for
//! real ([`Browser::hide_window`]: minimized, so its document turns `hidden`
//! and gets `visibilitychange`) and killed like a renderer crash
//! ([`Browser::crash_window`]: no `pagehide`/`unload`, its Web Locks are
//! released).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use thirtyfour::prelude::*;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::http::http_request;
use crate::{Error, POLL, Result, free_port};

/// Chromium's arguments: headless, and quiet on this closed network (no
/// calls home, no QUIC).
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
];

/// The switches chromedriver adds by default that keep a hidden or
/// occluded tab's timers running at full speed; exclude them
/// ([`BrowserOptions::exclude_switches`]) to get Chrome's real background
/// throttling.
pub const THROTTLING_SWITCHES: &[&str] = &[
    "disable-background-timer-throttling",
    "disable-backgrounding-occluded-windows",
];

/// How long [`Browser::hide_window`] and [`Browser::show_window`] wait for
/// the page to report its new visibility.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Browser::crash_window`] waits for the page to be gone.
const CRASH_TIMEOUT: Duration = Duration::from_secs(10);

/// Debian's browser binary (`/usr/bin/chromium` is a wrapper script).
const DEBIAN_CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// How a [`Browser`] is started.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The chromedriver binary: `$CHROMEDRIVER`, else `/usr/bin/chromedriver`.
    pub chromedriver: PathBuf,
    /// The browser binary; `None` lets chromedriver find one.
    /// Default: `/usr/lib/chromium/chromium` when it exists.
    pub chromium: Option<PathBuf>,
    /// Arguments beyond [`CHROMIUM_ARGS`].
    pub extra_args: Vec<String>,
    /// Switches chromedriver passes by default that this session must not
    /// get, without the leading dashes (chromeOptions `excludeSwitches`),
    /// e.g. [`THROTTLING_SWITCHES`] to let hidden tabs be throttled.
    pub exclude_switches: Vec<String>,
    /// Deadline for chromedriver to answer and the session to open.
    pub start_timeout: Duration,
    /// Where chromedriver writes its log; `None` discards it.
    pub chromedriver_log: Option<PathBuf>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        let chromium = Path::new(DEBIAN_CHROMIUM);
        BrowserOptions {
            chromedriver: std::env::var_os("CHROMEDRIVER")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver")),
            chromium: chromium.exists().then(|| chromium.to_path_buf()),
            extra_args: Vec::new(),
            exclude_switches: Vec::new(),
            start_timeout: Duration::from_secs(30),
            chromedriver_log: None,
        }
    }
}

/// `prefers-color-scheme` as the page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorScheme {
    /// `prefers-color-scheme: light`.
    Light,
    /// `prefers-color-scheme: dark`.
    Dark,
}

impl ColorScheme {
    /// `light` or `dark`.
    pub fn name(self) -> &'static str {
        match self {
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        }
    }
}

/// One headless Chromium session and the chromedriver behind it. Call
/// [`Browser::quit`] when done; dropping it also ends the session (blocking
/// briefly) and kills chromedriver.
#[derive(Debug)]
pub struct Browser {
    driver: Option<WebDriver>,
    chromedriver: Child,
}

impl Browser {
    /// Starts with [`BrowserOptions::default`].
    pub async fn start() -> Result<Browser> {
        Browser::start_with(BrowserOptions::default()).await
    }

    /// Starts chromedriver on a free loopback port, waits until it answers,
    /// and opens a headless session.
    pub async fn start_with(options: BrowserOptions) -> Result<Browser> {
        let port = free_port()?;
        let (stdout, stderr) = match &options.chromedriver_log {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                let copy = file
                    .try_clone()
                    .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let mut chromedriver = Command::new(&options.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", options.chromedriver.display()), e))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + options.start_timeout;
        loop {
            if let Ok(answer) = http_request(addr, "GET", "/status", Duration::from_secs(2)).await
                && answer.is_success()
                && answer.body.contains("\"ready\":true")
            {
                break;
            }
            if let Ok(Some(status)) = chromedriver.try_wait() {
                return Err(Error::Exited {
                    what: "chromedriver".into(),
                    status,
                    log: String::new(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(
                    "chromedriver to answer /status",
                    options.start_timeout,
                ));
            }
            tokio::time::sleep(POLL).await;
        }

        let mut caps = DesiredCapabilities::chrome();
        for arg in CHROMIUM_ARGS
            .iter()
            .copied()
            .chain(options.extra_args.iter().map(String::as_str))
        {
            caps.add_arg(arg)?;
        }
        for switch in &options.exclude_switches {
            caps.add_exclude_switch(switch)?;
        }
        if let Some(binary) = &options.chromium {
            caps.set_binary(&binary.display().to_string())?;
        }
        let driver = tokio::time::timeout(
            options.start_timeout,
            WebDriver::new(format!("http://{addr}"), caps),
        )
        .await
        .map_err(|_| Error::timeout("a Chromium session", options.start_timeout))??;
        Ok(Browser {
            driver: Some(driver),
            chromedriver,
        })
    }

    /// The WebDriver session, for anything not wrapped here.
    pub fn driver(&self) -> Result<&WebDriver> {
        self.driver
            .as_ref()
            .ok_or_else(|| Error::Other("the browser has quit".into()))
    }

    /// Sends a DevTools command (through chromedriver's
    /// `goog/cdp/execute`); answers its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Result<Value> {
        Ok(self.driver()?.cdp().send_raw(method, params).await?)
    }

    /// Loads `url` and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        Ok(self.driver()?.goto(url).await?)
    }

    /// Reloads the page.
    pub async fn reload(&self) -> Result<()> {
        Ok(self.driver()?.refresh().await?)
    }

    /// Makes the page's viewport exactly `width` x `height` CSS pixels (the
    /// window, and a DevTools metrics override so the screenshot is that size).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.driver()?.set_window_rect(0, 0, width, height).await?;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        Ok(())
    }

    /// Emulates `prefers-color-scheme` (DevTools `Emulation.setEmulatedMedia`)
    /// for this tab, across navigations; checks that the page's `matchMedia`
    /// agrees.
    pub async fn set_color_scheme(&self, scheme: ColorScheme) -> Result<()> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme.name() }] }),
        )
        .await?;
        let query = format!("(prefers-color-scheme: {})", scheme.name());
        let matches = self
            .execute(
                "return window.matchMedia(arguments[0]).matches;",
                vec![json!(query)],
            )
            .await?;
        if matches != Value::Bool(true) {
            return Err(Error::Other(format!(
                "emulating {query} did not take: matchMedia answered {matches}"
            )));
        }
        Ok(())
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(self.driver()?.screenshot(path.as_ref()).await?)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and answers
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let ret = self.driver()?.execute(script, args).await?;
        Ok(ret.json().clone())
    }

    /// `localStorage.setItem(key, value)` on the current page's origin.
    pub async fn set_local_storage(&self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "window.localStorage.setItem(arguments[0], arguments[1]);",
            vec![json!(key), json!(value)],
        )
        .await?;
        Ok(())
    }

    /// `localStorage.getItem(key)` on the current page's origin.
    pub async fn local_storage(&self, key: &str) -> Result<Option<String>> {
        let value = self
            .execute(
                "return window.localStorage.getItem(arguments[0]);",
                vec![json!(key)],
            )
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Polls until an element matching `css` is present and displayed;
    /// answers it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<WebElement> {
        let driver = self.driver()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(elements) = driver.find_all(By::Css(css)).await {
                for element in elements {
                    if element.is_displayed().await.unwrap_or(false) {
                        return Ok(element);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(format!("{css:?} to be displayed"), timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until at least `count` elements match `css`; answers them.
    pub async fn wait_for_count(
        &self,
        css: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<WebElement>> {
        let driver = self.driver()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(elements) = driver.find_all(By::Css(css)).await
                && elements.len() >= count
            {
                return Ok(elements);
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(
                    format!("{count} elements matching {css:?}"),
                    timeout,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `script` (a function body, e.g. `return document.title !== ""`)
    /// until it returns something truthy (not `null`, `false`, `0` or `""`);
    /// answers that value. `what` names the condition in the timeout error.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            // A script error (e.g. during a navigation) counts as not yet.
            if let Ok(value) = self.execute(script, Vec::new()).await
                && truthy(&value)
            {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(what, timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks into the element matching `css` (waiting for it) and types
    /// `text`; a trailing [`Key::Enter`] can be sent with [`Browser::press_enter`].
    pub async fn type_into(&self, css: &str, text: &str, timeout: Duration) -> Result<()> {
        let element = self.wait_for(css, timeout).await?;
        element.click().await?;
        element.send_keys(text).await?;
        Ok(())
    }

    /// Presses Enter in the element matching `css`.
    pub async fn press_enter(&self, css: &str, timeout: Duration) -> Result<()> {
        let element = self.wait_for(css, timeout).await?;
        element.send_keys(Key::Enter).await?;
        Ok(())
    }

    /// The current window: the one every command acts on.
    pub async fn window(&self) -> Result<WindowHandle> {
        Ok(self.driver()?.window().await?)
    }

    /// Every open window of the session, crashed ones included, in
    /// chromedriver's order.
    pub async fn windows(&self) -> Result<Vec<WindowHandle>> {
        Ok(self.driver()?.windows().await?)
    }

    /// Opens a new top-level window (WebDriver New Window, type `window`: its
    /// own OS window, not a tab beside the current one) in this session,
    /// makes it the current window and loads `url` there, waiting for the
    /// load event. It shares the session's profile: localStorage,
    /// `BroadcastChannel` and Web Locks of the same origin.
    ///
    /// A window rather than a tab because a tab hides its sibling tabs when
    /// it is brought to the front, and [`Browser::switch_to`] brings it to
    /// the front: tabs of one window cannot be driven one after the other
    /// without their visibility flapping. Windows stay `visible` until
    /// [`Browser::hide_window`].
    pub async fn open_window(&self, url: &str) -> Result<WindowHandle> {
        let driver = self.driver()?;
        let window = driver.new_window().await?;
        driver.switch_to_window(window.clone()).await?;
        driver.goto(url).await?;
        Ok(window)
    }

    /// Makes `window` the current window: [`Browser::execute`],
    /// [`Browser::cdp`], [`Browser::goto`], the waits and element lookups act
    /// on it from now on. It also gives that window the focus (the page sees
    /// `focus`, the previous one `blur`) and brings it to the front of its
    /// OS window; it does not restore a window minimized by
    /// [`Browser::hide_window`].
    pub async fn switch_to(&self, window: &WindowHandle) -> Result<()> {
        Ok(self.driver()?.switch_to_window(window.clone()).await?)
    }

    /// Closes `window` the normal way (WebDriver Close Window, like the
    /// user closing it): its page gets `pagehide` and `unload`, and the
    /// browser releases its Web Locks. Afterwards the current window is the
    /// one that was current before, or, when `window` itself was current,
    /// the first remaining window (none when it was the last). Also closes a
    /// window killed by [`Browser::crash_window`].
    pub async fn close_window(&self, window: &WindowHandle) -> Result<()> {
        let driver = self.driver()?;
        let previous = driver.window().await.ok();
        driver.switch_to_window(window.clone()).await?;
        driver.close_window().await?;
        let remaining = driver.windows().await?;
        let next = previous
            .filter(|previous| remaining.contains(previous))
            .or_else(|| remaining.into_iter().next());
        if let Some(next) = next {
            driver.switch_to_window(next).await?;
        }
        Ok(())
    }

    /// Runs `script` (as [`Browser::execute`]) in `window`, then makes the
    /// window that was current before current again.
    pub async fn execute_in(
        &self,
        window: &WindowHandle,
        script: &str,
        args: Vec<Value>,
    ) -> Result<Value> {
        self.in_window(window, async || self.execute(script, args).await)
            .await
    }

    /// [`Browser::wait_until`] in `window`, then makes the window that was
    /// current before current again.
    pub async fn wait_until_in(
        &self,
        window: &WindowHandle,
        what: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<Value> {
        self.in_window(window, async || {
            self.wait_until(what, script, timeout).await
        })
        .await
    }

    /// Hides `window` for real: minimizes its OS window (DevTools
    /// `Browser.setWindowBounds`, `windowState: "minimized"`), so its
    /// document's `visibilityState` turns `"hidden"` and it gets a
    /// `visibilitychange` event, as when a user minimizes a window. Waits
    /// until the page says `hidden`; the current window stays what it was.
    /// Every tab of that OS window is hidden with it (windows from
    /// [`Browser::open_window`] have one tab). Scripts still run in a hidden
    /// window ([`Browser::execute_in`], [`Browser::switch_to`] does not
    /// restore it), and with chromedriver's default switches its timers are
    /// not throttled (see [`THROTTLING_SWITCHES`]).
    ///
    /// Not `Emulation.setFocusEmulationEnabled`: while that is on, a
    /// minimized page stays `visible`.
    pub async fn hide_window(&self, window: &WindowHandle) -> Result<()> {
        self.set_window_state(window, "minimized", "hidden").await
    }

    /// Shows a window hidden by [`Browser::hide_window`] again: restores its
    /// OS window (`windowState: "normal"`) and waits until its document's
    /// `visibilityState` is `"visible"` (it gets a `visibilitychange`
    /// event). The current window stays what it was.
    pub async fn show_window(&self, window: &WindowHandle) -> Result<()> {
        self.set_window_state(window, "normal", "visible").await
    }

    /// Kills `window`'s page abruptly, like a renderer crash (DevTools
    /// `Page.crash`): no `pagehide`, `unload` or `beforeunload` handler
    /// runs, and the browser releases the page's Web Locks (another window
    /// waiting on one gets it within a few tens of milliseconds here) and
    /// its `BroadcastChannel`s. The window stays open, showing the crash
    /// page: it is still in [`Browser::windows`], every command in it fails
    /// with "tab crashed", and [`Browser::close_window`] closes it. The
    /// current window stays what it was (the crashed one if it was current).
    ///
    /// The renderer process is what crashes: a window sharing that process
    /// would die too. Windows from [`Browser::open_window`] get a process
    /// each here, but Chromium shares processes past its process limit.
    pub async fn crash_window(&self, window: &WindowHandle) -> Result<()> {
        self.in_window(window, async || {
            // chromedriver answers the command with "tab crashed" when it
            // took; anything else that fails is checked below.
            let _ = self.cdp("Page.crash", json!({})).await;
            let deadline = Instant::now() + CRASH_TIMEOUT;
            loop {
                match self.execute("return 1;", Vec::new()).await {
                    Err(Error::WebDriver(e)) if e.to_string().contains("tab crashed") => {
                        return Ok(());
                    }
                    _ if Instant::now() >= deadline => {
                        return Err(Error::timeout("the window's page to crash", CRASH_TIMEOUT));
                    }
                    _ => tokio::time::sleep(POLL).await,
                }
            }
        })
        .await
    }

    /// Minimizes or restores `window`'s OS window and waits for its page's
    /// `visibilityState` to be `visibility`.
    async fn set_window_state(
        &self,
        window: &WindowHandle,
        state: &str,
        visibility: &str,
    ) -> Result<()> {
        self.in_window(window, async || {
            // Browser-domain commands name their window; they are sent
            // through the target window's own DevTools session (the
            // current window may be closed or crashed).
            let target = self
                .cdp(
                    "Browser.getWindowForTarget",
                    json!({ "targetId": window.to_string() }),
                )
                .await?;
            let id = target
                .get("windowId")
                .cloned()
                .ok_or_else(|| Error::Other(format!("no windowId for {window}: {target}")))?;
            self.cdp(
                "Browser.setWindowBounds",
                json!({ "windowId": id, "bounds": { "windowState": state } }),
            )
            .await?;
            self.wait_until(
                &format!("the page's visibilityState to be {visibility:?}"),
                &format!("return document.visibilityState === {visibility:?};"),
                VISIBILITY_TIMEOUT,
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Runs `f` with `window` current, then makes the window that was
    /// current before current again (when there was one, other than
    /// `window`, and it is still open). `f`'s error wins over one from
    /// switching back.
    async fn in_window<T>(
        &self,
        window: &WindowHandle,
        f: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T> {
        let driver = self.driver()?;
        let previous = driver.window().await.ok();
        driver.switch_to_window(window.clone()).await?;
        let result = f().await;
        if let Some(previous) = previous
            && previous != *window
        {
            let back = driver.switch_to_window(previous).await;
            if result.is_ok() {
                back?;
            }
        }
        result
    }

    /// Ends the session (closing Chromium) and stops chromedriver.
    pub async fn quit(mut self) -> Result<()> {
        let result = match self.driver.take() {
            Some(driver) => driver.quit().await.map_err(Error::from),
            None => Ok(()),
        };
        let _ = self.chromedriver.start_kill();
        let _ = self.chromedriver.wait().await;
        result
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session first (thirtyfour ends it synchronously on drop, which
        // closes Chromium), then chromedriver.
        drop(self.driver.take());
        let _ = self.chromedriver.start_kill();
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
