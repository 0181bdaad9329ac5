//! The release app in headless Chromium, for the recovery and memory
//! benchmarks: a copy of `dist/` with socket settings in its
//! `<meta name="heartline-config">`, the stack serving it, the page opened
//! in a chat room, and reads of what the page shows.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heartline_e2e::{Browser, Db, Error, Result, Stack, StackOptions};
use serde_json::{Value, json};

/// The localStorage key of the display name; the app stores it as JSON.
const NAME_KEY: &str = "heartline.name";

/// The empty config tag of a trunk-built `index.html`.
const EMPTY_CONFIG_META: &str = r#"<meta name="heartline-config" content="""#;

/// Where the release binaries and the built app are.
#[derive(Debug, Clone)]
pub struct AppFiles {
    /// Holds `heartline-server` and `heartline-faultproxy` (release).
    pub bin_dir: PathBuf,
    /// `trunk build --release` output.
    pub dist: PathBuf,
}

impl AppFiles {
    /// Starts the server (with `server_args`) and the proxy, serving
    /// `dist`, on a temporary database.
    pub async fn start_stack(&self, dist: &Path, server_args: &[&str]) -> Result<Stack> {
        let mut options = StackOptions::new(dist);
        options.server_bin = self.bin_dir.join("heartline-server");
        options.proxy_bin = self.bin_dir.join("heartline-faultproxy");
        options.db = Db::Temp;
        options.server_args = server_args.iter().map(Into::into).collect();
        Stack::start(options).await
    }
}

/// A copy of `dist` whose `<meta name="heartline-config">` says `settings`
/// (see the app's `config::apply_settings`); removed when dropped.
pub fn dist_with_config(dist: &Path, settings: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("heartline-bench-dist.")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary dist", e))?;
    copy_dir(dist, dir.path())?;
    let index = dir.path().join("index.html");
    let html = std::fs::read_to_string(&index)
        .map_err(|e| Error::io(format!("reading {}", index.display()), e))?;
    if !html.contains(EMPTY_CONFIG_META) {
        return Err(Error::Other(format!(
            "{} has no empty heartline-config meta tag",
            index.display()
        )));
    }
    let html = html.replacen(
        EMPTY_CONFIG_META,
        &format!(r#"<meta name="heartline-config" content="{settings}""#),
        1,
    );
    std::fs::write(&index, html)
        .map_err(|e| Error::io(format!("writing {}", index.display()), e))?;
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        let target = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io("reading a dist entry", e))?
            .is_dir();
        if is_dir {
            std::fs::create_dir_all(&target)
                .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| Error::io(format!("copying to {}", target.display()), e))?;
        }
    }
    Ok(())
}

/// Opens `url` (a chat room of the app) as `name` and waits until the
/// composer is shown and the banner says the link is open.
pub async fn open_room(browser: &Browser, url: &str, name: &str, timeout: Duration) -> Result<()> {
    browser.goto(url).await?;
    browser
        .set_local_storage(NAME_KEY, &json!(name).to_string())
        .await?;
    browser.reload().await?;
    browser.wait_for("#composer-text", timeout).await?;
    wait_status(browser, "open", timeout).await
}

/// Polls until the connection banner's `data-status` is `status`.
pub async fn wait_status(browser: &Browser, status: &str, timeout: Duration) -> Result<()> {
    eval_until(
        browser,
        &format!("the banner to say {status}"),
        &format!(r#"document.querySelector('.hl-banner[data-status="{status}"]') !== null"#),
        timeout,
    )
    .await
    .map(drop)
}

/// Polls until the banner's `data-status` is anything but `status`.
pub async fn wait_status_not(browser: &Browser, status: &str, timeout: Duration) -> Result<()> {
    eval_until(
        browser,
        &format!("the banner to leave {status}"),
        &format!(
            r#"(() => {{ const b = document.querySelector('.hl-banner');
                   return b !== null && b.dataset.status !== "{status}"; }})()"#
        ),
        timeout,
    )
    .await
    .map(drop)
}

/// Evaluates `expression` in the page through DevTools (`Runtime.evaluate`,
/// by value) and answers its value. Unlike WebDriver's execute, which
/// leaves an array and an object behind in the page's heap on every call
/// (measured: +1 each per call, never collected), this keeps nothing, so
/// polling does not show up in the page's memory.
pub async fn eval(browser: &Browser, expression: &str) -> Result<Value> {
    let answer = browser
        .cdp(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )
        .await?;
    if let Some(details) = answer.get("exceptionDetails") {
        return Err(Error::Other(format!("{expression} threw: {details}")));
    }
    Ok(answer["result"]["value"].clone())
}

/// Polls [`eval`] of `expression` until it is truthy (not `null`,
/// `undefined`, `false`, `0` or `""`); answers the value.
pub async fn eval_until(
    browser: &Browser,
    what: &str,
    expression: &str,
    timeout: Duration,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // An error (e.g. during a navigation) counts as not yet.
        if let Ok(value) = eval(browser, expression).await
            && truthy(&value)
        {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(what, timeout));
        }
        tokio::time::sleep(heartline_e2e::POLL / 2).await;
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

/// The page's DevTools performance metrics (`Performance.getMetrics`:
/// cumulative `TaskDuration` and `ScriptDuration` in seconds, `Nodes`,
/// `JSEventListeners`, …), read once; [`PerformanceMetrics::get`] names one.
/// `Performance.enable` must have run for the durations to count.
pub async fn performance_metrics(browser: &Browser) -> Result<PerformanceMetrics> {
    Ok(PerformanceMetrics(
        browser.cdp("Performance.getMetrics", json!({})).await?,
    ))
}

/// One answer of `Performance.getMetrics`.
#[derive(Debug)]
pub struct PerformanceMetrics(Value);

impl PerformanceMetrics {
    /// The metric `name`, or an error if the answer has none.
    pub fn get(&self, name: &str) -> Result<f64> {
        self.0["metrics"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["name"] == name))
            .and_then(|m| m["value"].as_f64())
            .ok_or_else(|| {
                Error::Other(format!("Performance.getMetrics has no {name}: {}", self.0))
            })
    }
}

/// Types `text` into the composer and presses Enter.
pub async fn send_chat(browser: &Browser, text: &str, timeout: Duration) -> Result<()> {
    browser.type_into("#composer-text", text, timeout).await?;
    browser.press_enter("#composer-text", timeout).await
}

/// Milliseconds since the Unix epoch of `time` (the page's `Date.now()`
/// clock: same machine, same wall clock).
pub fn epoch_ms(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1_000.0)
        .unwrap_or(0.0)
}

/// `Value` field `key` as a number, or an error naming `what`.
pub fn number(value: &Value, key: &str, what: &str) -> Result<f64> {
    value[key]
        .as_f64()
        .ok_or_else(|| Error::Other(format!("{what} has no number {key:?}: {value}")))
}

/// The median and the maximum of `values` (0 for none).
pub fn median_max(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let max = sorted.last().copied().unwrap_or(0.0);
    let median = match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    (median, max)
}
