//! What the whole-app scenarios share: the stack and browsers of one
//! scenario, the init script that records a page's console, frames and
//! banner, and the waits on what a page shows. Every wait is for a
//! condition with a deadline.
#![allow(dead_code)]

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use heartline_e2e::{Browser, Db, Stack, StackOptions};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Deadline of one ordinary wait (a page, a message, a status).
pub const T: Duration = Duration::from_secs(20);
/// The room every scenario chats in.
pub const ROOM: &str = "lobby";

/// One scenario at a time in this binary.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs in every page before the app: records the console (for failure
/// reports), counts the frames every WebSocket receives by `socketType`, and
/// logs each change of the banner's `data-status` with its time.
pub const INIT_SCRIPT: &str = r#"
(() => {
  if (window.__hl) return;
  const hl = window.__hl = { console: [], frames: [], banner: [], sockets: 0 };
  const text = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack || String(a);
    try { return JSON.stringify(a); } catch (_) { return String(a); }
  };
  const push = (level, args) => {
    hl.console.push(new Date().toISOString() + ' ' + level + ': ' + Array.from(args).map(text).join(' '));
    if (hl.console.length > 5000) hl.console.shift();
  };
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const original = console[level];
    console[level] = function (...args) { push(level, args); return original.apply(this, args); };
  }
  window.addEventListener('error', (e) => push('uncaught', [e.message + ' at ' + e.filename + ':' + e.lineno]));
  window.addEventListener('unhandledrejection', (e) => push('unhandled rejection', [text(e.reason)]));
  const Native = window.WebSocket;
  class CountingWebSocket extends Native {
    constructor(...args) {
      super(...args);
      hl.sockets += 1;
      const socket = hl.sockets;
      this.addEventListener('message', (event) => {
        let type = 'binary';
        if (typeof event.data === 'string') {
          try { type = JSON.parse(event.data).socketType || '?'; } catch (_) { type = 'text'; }
        }
        hl.frames.push({ type, socket, t: Date.now() });
      });
    }
  }
  window.WebSocket = CountingWebSocket;
  const record = () => {
    const banner = document.querySelector('.hl-banner');
    const status = banner ? banner.getAttribute('data-status') : null;
    const last = hl.banner[hl.banner.length - 1];
    if (!last || last.status !== status) hl.banner.push({ status, t: Date.now() });
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'],
  });
})();
"#;

pub type Outcome<T = ()> = Result<T, String>;

/// Adds what was being done to an error.
pub trait Context<T> {
    fn ctx(self, what: impl Display) -> Outcome<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl Display) -> Outcome<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Where the built binaries and the dist are; `None` skips.
pub struct Inputs {
    pub bin_dir: PathBuf,
    pub dist: PathBuf,
}

pub fn inputs(test: &str) -> Option<Inputs> {
    let bin_dir = std::env::var_os("HEARTLINE_E2E_BIN_DIR").map(PathBuf::from);
    let dist = std::env::var_os("HEARTLINE_E2E_DIST").map(PathBuf::from);
    match (bin_dir, dist) {
        (Some(bin_dir), Some(dist)) => Some(Inputs { bin_dir, dist }),
        _ => {
            eprintln!(
                "{test}: skipped: set HEARTLINE_E2E_BIN_DIR and HEARTLINE_E2E_DIST to run the whole-app tests"
            );
            None
        }
    }
}

/// `<target>/e2e-failures`: the test binary lives in `<target>/<profile>/deps`.
pub fn failures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTLINE_E2E_FAILURES") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("e2e-failures")
}

/// Copies the dist to a temporary directory with the socket settings of the
/// `<meta name="heartline-config">` tag set to `config`.
pub fn dist_with_config(dist: &Path, config: &str) -> Outcome<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("heartline-e2e-dist.")
        .tempdir()
        .ctx("creating a temporary dist")?;
    copy_dir(dist, dir.path())?;
    let index = dir.path().join("index.html");
    let html = std::fs::read_to_string(&index).ctx(format!("reading {}", index.display()))?;
    let start = html
        .find(r#"<meta name="heartline-config""#)
        .ok_or_else(|| {
            format!(
                "{} has no <meta name=\"heartline-config\">",
                index.display()
            )
        })?;
    let end = start
        + html[start..]
            .find('>')
            .ok_or_else(|| format!("{}: unterminated heartline-config meta", index.display()))?
        + 1;
    let tag = format!(r#"<meta name="heartline-config" content="{config}">"#);
    let html = format!("{}{tag}{}", &html[..start], &html[end..]);
    std::fs::write(&index, html).ctx(format!("writing {}", index.display()))?;
    Ok(dir)
}

pub fn copy_dir(from: &Path, to: &Path) -> Outcome {
    let entries = std::fs::read_dir(from).ctx(format!("reading the dist {}", from.display()))?;
    for entry in entries {
        let entry = entry.ctx(format!("reading {}", from.display()))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().ctx("reading a file type")?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target).ctx(format!("creating {}", target.display()))?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .ctx(format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// One scenario's world: the stack, its dist, and the users' browsers. On a
/// failure it saves what each browser shows and logged.
pub struct Scenario {
    pub name: &'static str,
    pub stack: Stack,
    pub users: Vec<(String, Browser)>,
    _dist: tempfile::TempDir,
    started: Instant,
}

impl Scenario {
    pub async fn start(
        name: &'static str,
        inputs: &Inputs,
        config: &str,
        server_args: &[&str],
    ) -> Outcome<Scenario> {
        let dist = dist_with_config(&inputs.dist, config)?;
        let mut options = StackOptions::new(dist.path());
        options.server_bin = inputs.bin_dir.join("heartline-server");
        options.proxy_bin = inputs.bin_dir.join("heartline-faultproxy");
        options.db = Db::Temp;
        options.server_args = server_args.iter().map(Into::into).collect();
        let stack = Stack::start(options)
            .await
            .ctx("starting the server and the fault proxy")?;
        Ok(Scenario {
            name,
            stack,
            users: Vec::new(),
            _dist: dist,
            started: Instant::now(),
        })
    }

    /// A new browser (its own profile) for `name`, past the name prompt, on
    /// `url`'s room with the link open. Answers the user's index.
    pub async fn user(&mut self, name: &str, url: &str) -> Outcome<usize> {
        let browser = Browser::start()
            .await
            .ctx(format!("starting {name}'s browser"))?;
        self.users.push((name.to_owned(), browser));
        let index = self.users.len() - 1;
        let b = self.b(index);
        b.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": INIT_SCRIPT }),
        )
        .await
        .ctx("installing the init script")?;
        b.goto(url).await.ctx(format!("{name} opening {url}"))?;
        // yew-hooks keeps the name as JSON: a quoted string.
        b.set_local_storage("heartline.name", &json!(name).to_string())
            .await
            .ctx("setting the display name")?;
        b.reload().await.ctx("reloading past the name prompt")?;
        wait_status(b, &["open"], T)
            .await
            .ctx(format!("{name}'s banner to say open"))?;
        Ok(index)
    }

    pub fn b(&self, index: usize) -> &Browser {
        &self.users[index].1
    }

    /// Saves the artifacts on failure and panics naming them; quits the
    /// browsers either way.
    pub async fn finish(self, outcome: Outcome) {
        let elapsed = self.started.elapsed();
        if let Err(error) = outcome {
            let dir = failures_dir();
            let _ = std::fs::create_dir_all(&dir);
            let mut saved = Vec::new();
            for (user, browser) in &self.users {
                let png = dir.join(format!("{}-{user}.png", self.name));
                match browser.screenshot(&png).await {
                    Ok(()) => saved.push(png.display().to_string()),
                    Err(e) => saved.push(format!("(no screenshot of {user}: {e})")),
                }
                let log = dir.join(format!("{}-{user}.console.txt", self.name));
                let console = browser
                    .execute(
                        "const hl = window.__hl || {}; return [\
                         'url: ' + location.href,\
                         'banner: ' + JSON.stringify(hl.banner || []),\
                         'frames by type: ' + JSON.stringify((hl.frames || []).reduce((m, f) => (m[f.type] = (m[f.type] || 0) + 1, m), {})),\
                         '--- console'].concat(hl.console || []).join('\\n');",
                        Vec::new(),
                    )
                    .await
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .unwrap_or_else(|e| format!("(the console could not be read: {e})"));
                match std::fs::write(&log, console) {
                    Ok(()) => saved.push(log.display().to_string()),
                    Err(e) => saved.push(format!("(no console log of {user}: {e})")),
                }
            }
            let logs = dir.join(format!("{}-stack.log", self.name));
            if std::fs::write(&logs, self.stack.logs_tail(200)).is_ok() {
                saved.push(logs.display().to_string());
            }
            for (_, browser) in self.users {
                let _ = browser.quit().await;
            }
            panic!(
                "{} failed after {:.1} s: {error}\nsaved: {}",
                self.name,
                elapsed.as_secs_f64(),
                saved.join(", ")
            );
        }
        for (_, browser) in self.users {
            let _ = browser.quit().await;
        }
        eprintln!("{}: passed in {:.1} s", self.name, elapsed.as_secs_f64());
    }
}

/// The banner's `data-status`, or `None` when there is no banner.
pub async fn status(b: &Browser) -> Outcome<Option<String>> {
    let value = b
        .execute(
            "const b = document.querySelector('.hl-banner'); return b ? b.getAttribute('data-status') : null;",
            Vec::new(),
        )
        .await
        .ctx("reading the banner")?;
    Ok(value.as_str().map(str::to_owned))
}

/// Waits until the banner's `data-status` is one of `any`.
pub async fn wait_status(b: &Browser, any: &[&str], timeout: Duration) -> Outcome<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(b).await.unwrap_or(None);
        if let Some(s) = &now
            && any.contains(&s.as_str())
        {
            return Ok(s.clone());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for the banner to say {any:?}; it says {now:?}"
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// Types `text` into the composer and presses Enter, then waits until the
/// composer is empty again (the message was taken).
pub async fn send(b: &Browser, text: &str) -> Outcome {
    b.type_into("#composer-text", text, T)
        .await
        .ctx(format!("typing {text:?}"))?;
    b.press_enter("#composer-text", T)
        .await
        .ctx(format!("sending {text:?}"))?;
    b.wait_until(
        &format!("the composer to clear after sending {text:?}"),
        "return document.querySelector('#composer-text').value === '';",
        T,
    )
    .await
    .ctx("sending")?;
    Ok(())
}

/// A message as shown: its text, and `data-state` (`acked` on our own
/// delivered ones, `queued|sent|failed` on our pending ones, `None` on
/// others'), and whether it is still pending (not yet broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub text: String,
    pub state: Option<String>,
    pub pending: bool,
}

/// Every message the room shows, in page order (stored ones, then pending).
pub async fn shown(b: &Browser) -> Outcome<Vec<Shown>> {
    let value = b
        .execute(
            "return Array.from(document.querySelectorAll('.messages .message')).map(m => [\
             (m.querySelector('.message__text') || m).textContent,\
             m.getAttribute('data-state'),\
             m.classList.contains('message--pending')]);",
            Vec::new(),
        )
        .await
        .ctx("reading the messages")?;
    let rows = value.as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|row| Shown {
            text: row[0].as_str().unwrap_or_default().to_owned(),
            state: row[1].as_str().map(str::to_owned),
            pending: row[2].as_bool().unwrap_or(false),
        })
        .collect())
}

/// The texts of the stored (broadcast) messages, in order.
pub fn stored_texts(messages: &[Shown]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| !m.pending)
        .map(|m| m.text.clone())
        .collect()
}

/// Waits until `check` accepts what `b` shows; answers it. The error
/// carries the last view.
pub async fn wait_shown(
    b: &Browser,
    what: &str,
    timeout: Duration,
    check: impl Fn(&[Shown]) -> bool,
) -> Outcome<Vec<Shown>> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = shown(b).await.unwrap_or_default();
        if check(&now) {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; the page shows {now:#?}"
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// Waits until the text of the first element matching `css` satisfies `check`.
pub async fn wait_text(
    b: &Browser,
    css: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> Outcome<String> {
    let deadline = Instant::now() + T;
    let script =
        format!("const e = document.querySelector({css:?}); return e ? e.textContent : null;");
    loop {
        let now = b.execute(&script, Vec::new()).await.ok();
        let text = now.as_ref().and_then(Value::as_str).map(str::to_owned);
        if let Some(text) = &text
            && check(text)
        {
            return Ok(text.clone());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {T:?} waiting for {what}; {css} says {text:?}"
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// `GET /healthz` as JSON.
/// Polls `/healthz` until the server counts `want` metrics subscribers, or
/// fails after [`T`] naming `when` and the last reading.
pub async fn wait_metrics_subscribers(stack: &Stack, want: u64, when: &str) -> Result<(), String> {
    let deadline = Instant::now() + T;
    loop {
        let health = healthz(stack).await?;
        if health["metrics_subscribers"].as_u64() == Some(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server should count {want} metrics subscribers {when}: {health}"
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

pub async fn healthz(stack: &Stack) -> Outcome<Value> {
    let answer = stack.healthz().await.ctx("GET /healthz")?;
    serde_json::from_str(&answer.body).ctx(format!("/healthz is not JSON: {}", answer.body))
}

/// How many messages in `messages` have exactly this text.
pub fn count(messages: &[Shown], text: &str) -> usize {
    messages.iter().filter(|m| m.text == text).count()
}

// ---------------------------------------------------------------------------
// 1. Two users chat.
