//! Whole-app fault scenarios of issue 10, against the release app (served by
//! the release server) in headless Chromium, through the fault proxy:
//!
//! - 4: `kill -9` and restart of the server, 10 times, while two users send;
//! - 5: offline and online through DevTools network emulation;
//! - 7: a reload while the link is down keeps queued messages and sends them
//!   once afterwards;
//! - 8 (`hidden_tab_*`, about 3 minutes; `-- --skip hidden` leaves it out):
//!   a hidden tab under intensive timer throttling keeps its connection.
//!
//! Needs `HEARTLINE_E2E_BIN_DIR` (the release `heartline-server` and
//! `heartline-faultproxy`) and `HEARTLINE_E2E_DIST` (a `trunk build
//! --release` dist); without them every test only says it was skipped. On
//! failure a screenshot and the console log of each browser are saved under
//! `target/e2e-failures/` and named in the panic message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use heartline_e2e::{Browser, BrowserOptions, Db, ProxyMode, Stack, StackOptions};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Deadline of an ordinary UI condition.
const T: Duration = Duration::from_secs(20);
const OPEN: &str = r#".hl-banner[data-status="open"]"#;

type R<T = ()> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------- setup

struct Env {
    bin: PathBuf,
    dist: PathBuf,
}

fn env(test: &str) -> Option<Env> {
    let bin = std::env::var_os("HEARTLINE_E2E_BIN_DIR");
    let dist = std::env::var_os("HEARTLINE_E2E_DIST");
    match (bin, dist) {
        (Some(bin), Some(dist)) => Some(Env {
            bin: bin.into(),
            dist: dist.into(),
        }),
        _ => {
            eprintln!(
                "skipped {test}: set HEARTLINE_E2E_BIN_DIR and HEARTLINE_E2E_DIST to run the whole-app fault tests"
            );
            None
        }
    }
}

/// A copy of the dist with `settings` in `<meta name="heartline-config">`.
fn dist_with_config(dist: &Path, settings: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("heartline-e2e-dist.")
        .tempdir()
        .expect("a temporary dist directory");
    copy_dir(dist, dir.path());
    let index = dir.path().join("index.html");
    let html = std::fs::read_to_string(&index).expect("dist/index.html");
    let empty = r#"<meta name="heartline-config" content="""#;
    assert!(
        html.contains(empty),
        "{} has no empty heartline-config meta tag",
        index.display()
    );
    let html = html.replacen(
        empty,
        &format!(r#"<meta name="heartline-config" content="{settings}""#),
        1,
    );
    std::fs::write(&index, html).expect("writing index.html");
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a dist entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a dist file");
        }
    }
}

async fn start_stack(env: &Env, dist: &Path) -> Stack {
    let mut options = StackOptions::new(dist);
    options.server_bin = env.bin.join("heartline-server");
    options.proxy_bin = env.bin.join("heartline-faultproxy");
    options.db = Db::Temp;
    Stack::start(options).await.expect("the stack starts")
}

/// Captures the page's console (and uncaught errors) into sessionStorage on
/// every document of the tab, so it survives reloads and can be saved on
/// failure.
const CONSOLE_HOOK: &str = r#"
(() => {
  const KEY = '__hl_console';
  const push = (level, args) => {
    try {
      const log = JSON.parse(sessionStorage.getItem(KEY) || '[]');
      const text = args.map(a => { try { return typeof a === 'string' ? a : JSON.stringify(a); } catch (_) { return String(a); } }).join(' ');
      log.push(new Date().toISOString() + ' ' + level + ' ' + text);
      sessionStorage.setItem(KEY, JSON.stringify(log.slice(-500)));
    } catch (_) {}
  };
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const original = console[level].bind(console);
    console[level] = (...args) => { push(level, args); original(...args); };
  }
  addEventListener('error', e => push('uncaught', [String(e.message), e.filename + ':' + e.lineno]));
  addEventListener('unhandledrejection', e => push('unhandledrejection', [String(e.reason)]));
})();
"#;

async fn start_browser(extra_args: &[&str]) -> Browser {
    let browser = Browser::start_with(BrowserOptions {
        extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
        ..BrowserOptions::default()
    })
    .await
    .expect("Chromium starts");
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": CONSOLE_HOOK }),
        )
        .await
        .expect("installing the console hook");
    browser
}

/// Opens `url` as `name` (the name set in localStorage first) and waits for
/// the room to be shown with the link open.
async fn open_as(browser: &Browser, url: &str, name: &str) -> R {
    browser.goto(url).await.map_err(err("goto"))?;
    browser
        .set_local_storage("heartline.name", &json!(name).to_string())
        .await
        .map_err(err("setting the name"))?;
    browser.reload().await.map_err(err("reload"))?;
    browser
        .wait_for("#composer-text", T)
        .await
        .map_err(err("the composer"))?;
    wait_status(browser, "open", T).await
}

async fn wait_status(browser: &Browser, status: &str, timeout: Duration) -> R {
    browser
        .wait_until(
            &format!("the banner to say {status}"),
            &format!(
                r#"return document.querySelector('.hl-banner[data-status="{status}"]') !== null;"#
            ),
            timeout,
        )
        .await
        .map(drop)
        .map_err(|e| format!("{e}"))
}

async fn banner_status(browser: &Browser) -> String {
    browser
        .execute(
            "const b = document.querySelector('.hl-banner'); return b ? b.dataset.status : null;",
            Vec::new(),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no banner)".into())
}

/// Types `text` into the composer and presses Enter.
async fn send(browser: &Browser, text: &str) -> R {
    browser
        .type_into("#composer-text", text, T)
        .await
        .map_err(err("typing"))?;
    browser
        .press_enter("#composer-text", T)
        .await
        .map_err(err("Enter"))
}

/// What one view shows: stored messages (text -> times shown, and how many
/// of them are `data-state="acked"`), and pending ones (text -> state).
#[derive(Debug, Default)]
struct View {
    stored: BTreeMap<String, usize>,
    acked: BTreeMap<String, usize>,
    pending: BTreeMap<String, String>,
}

async fn view(browser: &Browser) -> R<View> {
    let raw = browser
        .execute(
            r#"
            const stored = [...document.querySelectorAll('.message[data-seq]')].map(m => [
              m.querySelector('.message__text')?.textContent ?? '', m.dataset.state === 'acked']);
            const pending = [...document.querySelectorAll('.message--pending')].map(m => [
              m.querySelector('.message__text')?.textContent ?? '', m.dataset.state ?? '']);
            return { stored, pending };
            "#,
            Vec::new(),
        )
        .await
        .map_err(err("reading the messages"))?;
    let mut out = View::default();
    for item in raw["stored"].as_array().into_iter().flatten() {
        let text = item[0].as_str().unwrap_or_default().to_owned();
        if item[1] == Value::Bool(true) {
            *out.acked.entry(text.clone()).or_default() += 1;
        }
        *out.stored.entry(text).or_default() += 1;
    }
    for item in raw["pending"].as_array().into_iter().flatten() {
        out.pending.insert(
            item[0].as_str().unwrap_or_default().to_owned(),
            item[1].as_str().unwrap_or_default().to_owned(),
        );
    }
    Ok(out)
}

/// Polls the view until `ok` holds; answers the last view either way.
async fn wait_view(
    browser: &Browser,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&View) -> bool,
) -> R<View> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = view(browser).await?;
        if ok(&v) {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; the view shows {v:?}"
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// Every message stored in `room`, read by a native client straight from the
/// server (`hello`, then `history` pages from the newest back): seq -> text.
async fn stored_messages(stack: &Stack, room: &str) -> R<BTreeMap<u64, String>> {
    let url = format!("ws://{}/ws", stack.server_addr());
    let (mut ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(&url))
        .await
        .map_err(|_| format!("connecting to {url} timed out"))?
        .map_err(err("connecting the auditing client"))?;
    let frame = |v: Value| Message::text(v.to_string());
    ws.send(frame(json!({"socketType": "hello", "name": "auditor"})))
        .await
        .map_err(err("hello"))?;
    let mut out = BTreeMap::new();
    let mut before = u64::MAX;
    let deadline = Instant::now() + T;
    for page in 0.. {
        ws.send(frame(json!({
            "socketType": "history", "id": format!("audit-{page}"),
            "room": room, "before": before, "limit": 200
        })))
        .await
        .map_err(err("history"))?;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, ws.next())
                .await
                .map_err(|_| "the history answer timed out".to_owned())?
                .ok_or("the server closed the auditing client")?
                .map_err(err("reading the history answer"))?;
            let Message::Text(text) = next else { continue };
            let value: Value = serde_json::from_str(&text).map_err(err("history JSON"))?;
            match value["socketType"].as_str() {
                Some("history") => break value,
                Some("error") => return Err(format!("history refused: {value}")),
                _ => {}
            }
        };
        let messages = answer["messages"].as_array().cloned().unwrap_or_default();
        for m in &messages {
            let seq = m["seq"].as_u64().ok_or("a message without seq")?;
            let text = m["text"].as_str().unwrap_or_default().to_owned();
            if out.insert(seq, text).is_some() {
                return Err(format!("seq {seq} came twice in history pages"));
            }
        }
        match (answer["has_more"].as_bool(), messages.first()) {
            (Some(true), Some(first)) => before = first["seq"].as_u64().unwrap_or(0),
            _ => break,
        }
    }
    let _ = ws.close(None).await;
    Ok(out)
}

/// `text -> times` of `stored`.
fn counts<'a>(texts: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for text in texts {
        *out.entry(text.clone()).or_default() += 1;
    }
    out
}

// ---------------------------------------------------------------- failures

fn failure_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/e2e-failures")
        .components()
        .collect()
}

/// Saves a screenshot and the console log of every browser, then panics with
/// `error`, the file names and the stack's log tails.
async fn fail(test: &str, error: String, browsers: &[(&str, &Browser)], stack: &Stack) -> ! {
    let dir = failure_dir();
    let _ = std::fs::create_dir_all(&dir);
    let mut saved = Vec::new();
    for (label, browser) in browsers {
        let png = dir.join(format!("{test}-{label}.png"));
        match browser.screenshot(&png).await {
            Ok(()) => saved.push(png.display().to_string()),
            Err(e) => saved.push(format!("(no screenshot of {label}: {e})")),
        }
        let log = dir.join(format!("{test}-{label}.console.log"));
        let lines = browser
            .execute(
                "return JSON.parse(sessionStorage.getItem('__hl_console') || '[]');",
                Vec::new(),
            )
            .await
            .map(|v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|e| format!("(console log unreadable: {e})"));
        let url = browser
            .execute("return location.href;", Vec::new())
            .await
            .map(|v| v.to_string())
            .unwrap_or_default();
        let _ = std::fs::write(&log, format!("page {url}\n{lines}\n"));
        saved.push(log.display().to_string());
    }
    panic!(
        "{test}: {error}\nsaved: {}\n{}",
        saved.join(", "),
        stack.logs_tail(20)
    );
}

// ---------------------------------------------------------------- 4

/// Scenario 4: the server is killed (-9) and restarted 10 times while two
/// users in one room send; every acknowledged message ends in both views
/// and in the database exactly once.
#[tokio::test]
async fn server_killed_and_restarted_ten_times_while_both_send() {
    const TEST: &str = "server-kill-restart";
    let Some(env) = env(TEST) else { return };
    let dist = dist_with_config(
        &env.dist,
        "heartbeat_ms=2000 timeout_ms=1500 backoff_base_ms=100 backoff_cap_ms=500 connect_timeout_ms=2000 max_retries=none",
    );
    let mut stack = start_stack(&env, dist.path()).await;
    let a = start_browser(&[]).await;
    let b = start_browser(&[]).await;
    let result = kill_restart(&mut stack, &a, &b).await;
    if let Err(error) = result {
        fail(TEST, error, &[("ada", &a), ("bo", &b)], &stack).await;
    }
    a.quit().await.expect("quit");
    b.quit().await.expect("quit");
}

async fn kill_restart(stack: &mut Stack, a: &Browser, b: &Browser) -> R {
    const ROOM: &str = "restarts";
    const ROUNDS: usize = 10;
    let url = stack.app_url(&format!("/chat/{ROOM}"));
    open_as(a, &url, "ada").await?;
    open_as(b, &url, "bo").await?;
    let mut sent_a = Vec::new();
    let mut sent_b = Vec::new();
    for round in 1..=ROUNDS {
        // Two each while the server is up, ...
        for k in 1..=2 {
            let (ta, tb) = (format!("ada {round}.{k}"), format!("bo {round}.{k}"));
            send(a, &ta).await?;
            send(b, &tb).await?;
            sent_a.push(ta);
            sent_b.push(tb);
        }
        stack.kill_server().await.map_err(err("kill -9"))?;
        // ... and one each while it is gone.
        let (ta, tb) = (format!("ada {round}.3"), format!("bo {round}.3"));
        send(a, &ta).await?;
        send(b, &tb).await?;
        sent_a.push(ta);
        sent_b.push(tb);
        stack.restart_server().await.map_err(err("restart"))?;
        wait_status(a, "open", T)
            .await
            .map_err(|e| format!("round {round}, ada: {e}"))?;
        wait_status(b, "open", T)
            .await
            .map_err(|e| format!("round {round}, bo: {e}"))?;
    }
    let all: Vec<String> = sent_a.iter().chain(&sent_b).cloned().collect();
    let settled = |mine: &[String]| {
        let all = all.clone();
        let mine = mine.to_vec();
        move |v: &View| {
            all.iter().all(|t| v.stored.get(t) == Some(&1))
                && mine.iter().all(|t| v.acked.get(t) == Some(&1))
                && v.pending.is_empty()
        }
    };
    let view_a = wait_view(
        a,
        "ada to show every message once, hers acked",
        Duration::from_secs(30),
        settled(&sent_a),
    )
    .await?;
    let view_b = wait_view(
        b,
        "bo to show every message once, his acked",
        Duration::from_secs(30),
        settled(&sent_b),
    )
    .await?;
    let stored = stored_messages(stack, ROOM).await?;
    let stored_counts = counts(stored.values());
    let acked = sent_a
        .iter()
        .filter(|t| view_a.acked.contains_key(*t))
        .count()
        + sent_b
            .iter()
            .filter(|t| view_b.acked.contains_key(*t))
            .count();
    let once_in = |m: &BTreeMap<String, usize>| all.iter().filter(|t| m.get(*t) == Some(&1)).count();
    let (stored_once, shown_a, shown_b) = (
        once_in(&stored_counts),
        once_in(&view_a.stored),
        once_in(&view_b.stored),
    );
    println!(
        "scenario 4 ({ROUNDS} kill -9 + restarts): sent {} / acked {acked} / stored {stored_once} (rows {}) / shown-in-A {shown_a} / shown-in-B {shown_b}",
        all.len(),
        stored.len()
    );
    let n = all.len();
    if acked != n || stored_once != n || stored.len() != n || shown_a != n || shown_b != n {
        return Err(format!(
            "counts disagree: sent {n}, acked {acked}, stored once {stored_once} of {} rows, shown in A {shown_a}, in B {shown_b}; stored {stored:?}",
            stored.len()
        ));
    }
    // In order: each user's messages are stored in the order they were sent.
    for mine in [&sent_a, &sent_b] {
        let order: Vec<&String> = stored.values().filter(|t| mine.contains(t)).collect();
        let expected: Vec<&String> = mine.iter().collect();
        if order != expected {
            return Err(format!(
                "stored out of order: {order:?}, sent {expected:?}"
            ));
        }
    }
    Ok(())
}
