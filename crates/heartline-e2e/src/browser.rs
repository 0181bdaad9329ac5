//! Headless Chromium over WebDriver: a private chromedriver on a free port and
//! one session, with polling waits and DevTools emulation.

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
