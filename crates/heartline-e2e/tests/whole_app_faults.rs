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
use heartline_e2e::{
    Browser, BrowserOptions, Db, ProxyMode, Stack, StackOptions, THROTTLING_SWITCHES,
};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Deadline of an ordinary UI condition.
const T: Duration = Duration::from_secs(20);

type R<T = ()> = Result<T, String>;

/// The scenarios run one at a time (each starts its own browsers; two at
/// once on 2 cores would make the timings meaningless).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    start_browser_with(extra_args, &[]).await
}

async fn start_browser_with(extra_args: &[&str], exclude_switches: &[&str]) -> Browser {
    let browser = Browser::start_with(BrowserOptions {
        extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
        exclude_switches: exclude_switches.iter().map(|s| (*s).to_owned()).collect(),
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
    let _serial = SERIAL.lock().await;
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
    let once_in =
        |m: &BTreeMap<String, usize>| all.iter().filter(|t| m.get(*t) == Some(&1)).count();
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
            return Err(format!("stored out of order: {order:?}, sent {expected:?}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- 5

/// DevTools network emulation: offline (`true`) or back to normal.
async fn emulate_offline(browser: &Browser, offline: bool) -> R {
    browser
        .cdp(
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )
        .await
        .map(drop)
        .map_err(err("Network.emulateNetworkConditions"))
}

/// Counts the page's `online`/`offline` events in `window.__hlNet`.
async fn watch_network_events(browser: &Browser) -> R {
    browser
        .execute(
            "window.__hlNet = { online: 0, offline: 0 };\
             addEventListener('online', () => window.__hlNet.online++);\
             addEventListener('offline', () => window.__hlNet.offline++);",
            Vec::new(),
        )
        .await
        .map(drop)
        .map_err(err("installing the online/offline listeners"))
}

/// Waits (briefly) for the page's `event` (`online`/`offline`) after a
/// network emulation change; if Chromium did not fire it, dispatches it and
/// says so. Answers whether it had to be dispatched.
async fn ensure_network_event(browser: &Browser, event: &str) -> R<bool> {
    let fired = browser
        .wait_until(
            &format!("the page's {event} event"),
            &format!("return window.__hlNet.{event} > 0;"),
            Duration::from_secs(2),
        )
        .await
        .is_ok();
    if fired {
        println!("Chromium fired the page's `{event}` event itself");
        return Ok(false);
    }
    println!("Chromium did not fire `{event}`: dispatching it on window");
    browser
        .execute(
            &format!("window.dispatchEvent(new Event('{event}'));"),
            Vec::new(),
        )
        .await
        .map_err(err("dispatching the event"))?;
    Ok(true)
}

async fn accepted(stack: &Stack) -> R<u64> {
    let status = stack.proxy_status().await.map_err(err("proxy /status"))?;
    status["total_connections"]
        .as_u64()
        .ok_or_else(|| format!("proxy /status has no total_connections: {status}"))
}

/// Scenario 5: offline and online through DevTools. The banner says
/// offline, nothing reaches the proxy while offline, and the reconnect is
/// immediate when the network is back.
#[tokio::test]
async fn offline_and_online_through_devtools() {
    const TEST: &str = "offline-online";
    let Some(env) = env(TEST) else { return };
    let _serial = SERIAL.lock().await;
    // Quick retries: were the client to retry while offline, several
    // attempts would reach the proxy in the observation window.
    let dist = dist_with_config(
        &env.dist,
        "heartbeat_ms=2000 timeout_ms=1000 backoff_base_ms=100 backoff_cap_ms=300 connect_timeout_ms=2000 max_retries=none",
    );
    let stack = start_stack(&env, dist.path()).await;
    let a = start_browser(&[]).await;
    if let Err(error) = offline_online(&stack, &a).await {
        fail(TEST, error, &[("ada", &a)], &stack).await;
    }
    a.quit().await.expect("quit");
}

async fn offline_online(stack: &Stack, a: &Browser) -> R {
    open_as(a, &stack.app_url("/chat/net"), "ada").await?;
    a.cdp("Network.enable", json!({}))
        .await
        .map_err(err("Network.enable"))?;
    watch_network_events(a).await?;

    emulate_offline(a, true).await?;
    ensure_network_event(a, "offline").await?;
    let on_line = a
        .execute("return navigator.onLine;", Vec::new())
        .await
        .map_err(err("navigator.onLine"))?;
    println!("navigator.onLine while emulated offline: {on_line}");
    // Chromium's emulation leaves an open WebSocket running (the app's
    // probe on `offline` is answered), while a real loss of the network
    // also takes the established link: cut it at the proxy too, which
    // refuses (and counts) every attempt that would reach it.
    let still_open = wait_status(a, "offline", Duration::from_secs(3))
        .await
        .is_err();
    if still_open {
        println!(
            "the emulation left the open socket running (banner {}); cutting the link at the proxy too",
            banner_status(a).await
        );
    }
    stack.set_mode(ProxyMode::Cut).await.map_err(err("cut"))?;
    wait_status(a, "offline", Duration::from_secs(5)).await?;
    let message = a
        .execute(
            "return document.querySelector('.hl-banner__message').textContent;",
            Vec::new(),
        )
        .await
        .map_err(err("banner text"))?;
    if !message.as_str().unwrap_or_default().contains("offline") {
        return Err(format!("the offline banner says {message}"));
    }

    // No attempt may reach the proxy while offline: watch for 3 s, far more
    // than the 100-300 ms the client would wait between attempts.
    let before = accepted(stack).await?;
    let window = Instant::now() + Duration::from_secs(3);
    while Instant::now() < window {
        let now = accepted(stack).await?;
        if now != before {
            return Err(format!(
                "{} connection(s) reached the proxy while offline",
                now - before
            ));
        }
        let status = banner_status(a).await;
        if status != "offline" {
            return Err(format!("the banner left offline while offline: {status}"));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
    println!("offline for 3 s: 0 connections reached the proxy ({before} before and after)");

    stack
        .set_mode(ProxyMode::Pass)
        .await
        .map_err(err("restore"))?;
    emulate_offline(a, false).await?;
    let back = Instant::now();
    ensure_network_event(a, "online").await?;
    wait_status(a, "open", Duration::from_secs(5)).await?;
    let took = back.elapsed();
    let after = accepted(stack).await?;
    println!(
        "back online: banner open after {} ms; {} new connection(s) at the proxy",
        took.as_millis(),
        after - before
    );
    if took > Duration::from_secs(2) {
        return Err(format!("the reconnect took {took:?}, not at once"));
    }
    // The socket works again: a message goes through and is acked.
    send(a, "back online").await?;
    wait_view(a, "the message to be acked", T, |v| {
        v.acked.get("back online") == Some(&1)
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- 7

/// Scenario 7: with the link cut, three messages wait in the outbox; a
/// reload keeps them (from localStorage) and they are sent once the link is
/// back: acked, and once in the room for both users and on the server.
#[tokio::test]
async fn reload_while_cut_keeps_queued_messages_and_sends_them_once() {
    const TEST: &str = "reload-queued";
    let Some(env) = env(TEST) else { return };
    let _serial = SERIAL.lock().await;
    let dist = dist_with_config(
        &env.dist,
        "heartbeat_ms=2000 timeout_ms=1000 backoff_base_ms=100 backoff_cap_ms=500 connect_timeout_ms=2000 max_retries=none",
    );
    let stack = start_stack(&env, dist.path()).await;
    let a = start_browser(&[]).await;
    let b = start_browser(&[]).await;
    if let Err(error) = reload_queued(&stack, &a, &b).await {
        fail(TEST, error, &[("ada", &a), ("bo", &b)], &stack).await;
    }
    a.quit().await.expect("quit");
    b.quit().await.expect("quit");
}

async fn reload_queued(stack: &Stack, a: &Browser, b: &Browser) -> R {
    const ROOM: &str = "reload";
    // Ada's page comes from the server itself and only her socket goes
    // through the proxy, so the page still reloads while the link is cut.
    let ws = format!("ws://{}/ws", stack.proxy_addr());
    let url_a = format!("{}?ws={ws}", stack.server_url(&format!("/chat/{ROOM}")));
    open_as(a, &url_a, "ada").await?;
    open_as(b, &stack.app_url(&format!("/chat/{ROOM}")), "bo").await?;

    stack.set_mode(ProxyMode::Cut).await.map_err(err("cut"))?;
    a.wait_until(
        "ada's banner to leave open",
        r#"return document.querySelector('.hl-banner[data-status="open"]') === null;"#,
        T,
    )
    .await
    .map_err(err("after the cut"))?;
    let texts: Vec<String> = (1..=3).map(|i| format!("queued {i}")).collect();
    for text in &texts {
        send(a, text).await?;
    }
    let all_queued = |v: &View| {
        texts
            .iter()
            .all(|t| v.pending.get(t).map(String::as_str) == Some("queued"))
    };
    wait_view(a, "3 queued messages", T, all_queued).await?;

    a.reload().await.map_err(err("reload"))?;
    a.wait_for("#composer-text", T)
        .await
        .map_err(err("the composer after the reload"))?;
    let restored = wait_view(a, "the 3 messages queued after the reload", T, all_queued).await?;
    println!(
        "after the reload (link still cut, banner {}): {:?}",
        banner_status(a).await,
        restored.pending
    );
    if !restored.stored.keys().all(|t| !texts.contains(t)) {
        return Err(format!(
            "a queued message shows as stored while cut: {restored:?}"
        ));
    }

    stack
        .set_mode(ProxyMode::Pass)
        .await
        .map_err(err("restore"))?;
    wait_view(a, "ada's 3 messages acked, once each", T, |v| {
        texts
            .iter()
            .all(|t| v.stored.get(t) == Some(&1) && v.acked.get(t) == Some(&1))
            && v.pending.is_empty()
    })
    .await?;
    wait_view(b, "bo to see ada's 3 messages once each", T, |v| {
        texts.iter().all(|t| v.stored.get(t) == Some(&1))
    })
    .await?;
    let stored = stored_messages(stack, ROOM).await?;
    let stored_counts = counts(stored.values());
    if !texts.iter().all(|t| stored_counts.get(t) == Some(&1)) || stored.len() != texts.len() {
        return Err(format!("the server stored {stored:?}"));
    }
    // In the order they were typed.
    let order: Vec<&String> = stored.values().collect();
    if order != texts.iter().collect::<Vec<_>>() {
        return Err(format!("stored out of order: {order:?}"));
    }
    println!("3 queued, reloaded, sent: acked 3 / stored 3 / shown to ada 3 / to bo 3");
    Ok(())
}

// ---------------------------------------------------------------- 8

/// Chromium flags that force intensive wake-up throttling on after 10 s
/// hidden instead of 5 minutes (Blink's `IntensiveWakeUpThrottling` feature
/// and its grace-period parameters).
const INTENSIVE_THROTTLING: &str = "--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10/grace_period_seconds_loaded/10";

/// Records the page's visibility changes and the wake-ups of a chained
/// 250 ms timer (the kind intensive throttling batches to once a minute).
const PROBE: &str = r#"
window.__hlVis = [[Date.now(), document.visibilityState]];
document.addEventListener('visibilitychange', () => window.__hlVis.push([Date.now(), document.visibilityState]));
window.__hlTicks = [];
const tick = () => { window.__hlTicks.push(Date.now()); setTimeout(tick, 250); };
setTimeout(tick, 250);
"#;

/// The socket layer's reconnect count, as the /connection page shows it.
async fn reconnects_shown(browser: &Browser) -> R<u64> {
    browser
        .execute(
            "[...document.querySelectorAll('.nav a')].find(a => a.textContent.trim() === 'Connection').click();",
            Vec::new(),
        )
        .await
        .map_err(err("opening the Connection page"))?;
    let value = browser
        .wait_until(
            "the Connection page's Reconnects",
            "const dt = [...document.querySelectorAll('.panel__facts dt')].find(d => d.textContent.trim() === 'Reconnects');\
             return dt ? dt.nextElementSibling.textContent.trim() : null;",
            T,
        )
        .await
        .map_err(|e| e.to_string())?;
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("Reconnects shows {value}"))
}

/// Scenario 8: a tab hidden for about 2.5 minutes under intensive timer
/// throttling keeps its connection (no reconnect, not dropped by the
/// server), and shows every message sent to its room meanwhile.
#[tokio::test]
async fn hidden_tab_under_intensive_throttling_keeps_its_connection() {
    const TEST: &str = "hidden-tab";
    let Some(env) = env(TEST) else { return };
    let _serial = SERIAL.lock().await;
    // The app's production settings (empty heartline-config).
    let stack = start_stack(&env, &env.dist).await;
    // chromedriver turns background throttling off by default
    // (--disable-background-timer-throttling,
    // --disable-backgrounding-occluded-windows): take those away.
    let a = start_browser_with(&[INTENSIVE_THROTTLING], THROTTLING_SWITCHES).await;
    let b = start_browser(&[]).await;
    if let Err(error) = hidden_tab(&stack, &a, &b).await {
        fail(TEST, error, &[("ada", &a), ("bo", &b)], &stack).await;
    }
    a.quit().await.expect("quit");
    b.quit().await.expect("quit");
}

async fn hidden_tab(stack: &Stack, a: &Browser, b: &Browser) -> R {
    const ROOM: &str = "hidden";
    const HIDDEN_FOR: Duration = Duration::from_secs(150);
    const EVERY: Duration = Duration::from_secs(15);
    open_as(a, &stack.app_url(&format!("/chat/{ROOM}")), "ada").await?;
    // Bo comes straight to the server: the proxy counts only Ada's
    // connections.
    open_as(b, &stack.server_url(&format!("/chat/{ROOM}")), "bo").await?;
    a.execute(PROBE, Vec::new())
        .await
        .map_err(err("installing the probe"))?;
    let connections = |h: &heartline_e2e::HttpResponse| -> R<u64> {
        let v: Value = serde_json::from_str(&h.body).map_err(err("healthz JSON"))?;
        v["connections"]
            .as_u64()
            .ok_or_else(|| format!("healthz has no connections: {}", h.body))
    };
    let health = stack.healthz().await.map_err(err("healthz"))?;
    let server_before = connections(&health)?;
    let proxy_before = stack.proxy_status().await.map_err(err("proxy status"))?;
    let accepted_before = proxy_before["total_connections"].as_u64().unwrap_or(0);

    // Hide Ada's tab: open another tab in her window and bring it to front.
    let driver = a.driver().map_err(err("driver"))?;
    let chat_tab = driver.window().await.map_err(err("window handle"))?;
    let other = driver.new_tab().await.map_err(err("new tab"))?;
    driver
        .switch_to_window(other)
        .await
        .map_err(err("switching to the new tab"))?;
    a.cdp("Page.bringToFront", json!({}))
        .await
        .map_err(err("Page.bringToFront"))?;
    let hidden_at = Instant::now();

    let mut sent = Vec::new();
    let mut next_send = hidden_at;
    let mut n = 0;
    while hidden_at.elapsed() < HIDDEN_FOR {
        if Instant::now() >= next_send {
            n += 1;
            let text = format!("while hidden {n}");
            send(b, &text).await?;
            sent.push(text);
            next_send += EVERY;
        }
        let status = stack.proxy_status().await.map_err(err("proxy status"))?;
        let accepted = status["total_connections"].as_u64().unwrap_or(0);
        if accepted != accepted_before {
            return Err(format!(
                "Ada's tab opened {} new connection(s) {} s into hiding",
                accepted - accepted_before,
                hidden_at.elapsed().as_secs()
            ));
        }
        let health = stack.healthz().await.map_err(err("healthz"))?;
        let server_now = connections(&health)?;
        if server_now != server_before {
            return Err(format!(
                "the server holds {server_now} connections, not {server_before}, {} s into hiding",
                hidden_at.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Show it again.
    driver
        .close_window()
        .await
        .map_err(err("closing the tab"))?;
    driver
        .switch_to_window(chat_tab)
        .await
        .map_err(err("switching back"))?;
    a.cdp("Page.bringToFront", json!({}))
        .await
        .map_err(err("Page.bringToFront"))?;
    a.wait_until(
        "Ada's tab to be visible again",
        "return document.visibilityState === 'visible';",
        T,
    )
    .await
    .map_err(|e| e.to_string())?;
    let probe = a
        .execute(
            "return { vis: window.__hlVis, ticks: window.__hlTicks, now: Date.now() };",
            Vec::new(),
        )
        .await
        .map_err(err("reading the probe"))?;
    let vis: Vec<(u64, String)> = probe["vis"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e[0].as_u64().unwrap_or(0),
                e[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let hidden_from = vis.iter().find(|(_, s)| s == "hidden").map(|(t, _)| *t);
    let visible_again = vis
        .iter()
        .rev()
        .find(|(_, s)| s == "visible")
        .map(|(t, _)| *t);
    let (Some(from), Some(to)) = (hidden_from, visible_again) else {
        return Err(format!(
            "the tab never became hidden (visibilitychange log {vis:?}); the test needs a hidden page"
        ));
    };
    let ticks: Vec<u64> = probe["ticks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .filter(|t| (from..=to).contains(t))
        .collect();
    let gaps: Vec<u64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    let mut late: Vec<u64> = ticks
        .iter()
        .filter(|t| **t >= from + 15_000)
        .map(|t| (t - from) / 1000)
        .collect();
    late.dedup();
    println!(
        "hidden {} s (visibilityState log {:?}); a chained 250 ms timer woke {} times while hidden, longest gap {} ms; wake-ups after 15 s hidden in seconds +{:?}",
        (to - from) / 1000,
        vis.iter()
            .map(|(t, s)| format!("{s}@+{}ms", t.saturating_sub(vis[0].0)))
            .collect::<Vec<_>>(),
        ticks.len(),
        gaps.iter().max().copied().unwrap_or(0),
        late
    );
    // The premise: the page was really under intensive throttling (timer
    // wake-ups a minute apart), not only the 1 s alignment of hidden tabs.
    if !gaps.iter().any(|g| *g >= 30_000) {
        return Err(format!(
            "intensive wake-up throttling did not set in: longest timer gap {} ms while hidden",
            gaps.iter().max().copied().unwrap_or(0)
        ));
    }
    println!("intensive wake-up throttling observed: yes (timer gaps of 30 s or more)");

    // Every message is there, once, and the link never went down.
    wait_view(
        a,
        "Ada to show every message sent while hidden, once",
        Duration::from_secs(5),
        |v| sent.iter().all(|t| v.stored.get(t) == Some(&1)),
    )
    .await?;
    let reconnects = reconnects_shown(a).await?;
    let status = stack.proxy_status().await.map_err(err("proxy status"))?;
    let accepted = status["total_connections"].as_u64().unwrap_or(0);
    println!(
        "after {} s hidden: {} messages from bo shown once; reconnects {reconnects}; proxy accepted {} new connections; server connections {server_before}",
        HIDDEN_FOR.as_secs(),
        sent.len(),
        accepted - accepted_before
    );
    if reconnects != 0 || accepted != accepted_before {
        return Err(format!(
            "the hidden tab reconnected: Reconnects {reconnects}, {} new proxy connections",
            accepted - accepted_before
        ));
    }
    wait_status(a, "open", T).await
}
