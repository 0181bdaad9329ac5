//! Several windows of one headless Chromium session, against a tiny page
//! served here (no app, no stack): they share `BroadcastChannel` and Web
//! Locks; a window is hidden and shown for real (`visibilityState`,
//! `visibilitychange`); a normal close runs `pagehide`, a crash does not and
//! still releases the crashed page's locks. Needs chromedriver (`$CHROMEDRIVER`,
//! else `/usr/bin/chromedriver`); without it the tests only say they were
//! skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use heartline_e2e::{Browser, BrowserOptions, WindowHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Deadline of one ordinary wait.
const T: Duration = Duration::from_secs(10);
/// How soon a waiting window must get a lock its holder lost (measured
/// here: well under 200 ms).
const LOCK_HANDOVER: Duration = Duration::from_secs(3);

/// One browser at a time in this binary (2 cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The page: `?name=` names it; it records its visibility changes and the
/// `BroadcastChannel` messages it receives, writes `pagehide-<name>` to
/// localStorage on `pagehide`, and can hold or wait for the lock `x`.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>windows</title>
<script>
  const name = new URLSearchParams(location.search).get('name') || '?';
  window.events = ['load:' + document.visibilityState];
  document.addEventListener('visibilitychange', () => window.events.push('visibilitychange:' + document.visibilityState));
  window.addEventListener('pagehide', () => localStorage.setItem('pagehide-' + name, String(Date.now())));
  window.received = [];
  const channel = new BroadcastChannel('windows-test');
  channel.onmessage = (e) => window.received.push(e.data);
  window.post = (m) => channel.postMessage(m);
  window.hold = () => navigator.locks.request('x', () => { window.held = Date.now(); return new Promise(() => {}); });
  window.wait = () => navigator.locks.request('x', () => { window.got = Date.now(); return new Promise(() => {}); });
</script>
<p>windows test page</p>
"#;

/// Serves [`PAGE`] at `/` (404 elsewhere) on a loopback port until the test
/// ends; answers the page's base URL.
async fn serve_page() -> String {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/" || path.starts_with("/?") {
                    ("200 OK", PAGE)
                } else {
                    ("404 Not Found", "")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/")
}

/// A browser, or `None` (skipped) without chromedriver.
async fn browser(test: &str) -> Option<Browser> {
    let options = BrowserOptions::default();
    if !options.chromedriver.is_file() {
        eprintln!(
            "{test}: skipped: no chromedriver at {} (set CHROMEDRIVER)",
            options.chromedriver.display()
        );
        return None;
    }
    Some(Browser::start_with(options).await.expect("browser starts"))
}

/// Opens the page as `name` in the session's first window; answers it.
async fn first_window(browser: &Browser, base: &str, name: &str) -> WindowHandle {
    browser
        .goto(&format!("{base}?name={name}"))
        .await
        .expect("goto");
    browser.window().await.expect("window")
}

async fn open(browser: &Browser, base: &str, name: &str) -> WindowHandle {
    browser
        .open_window(&format!("{base}?name={name}"))
        .await
        .expect("open window")
}

async fn events(browser: &Browser, window: &WindowHandle) -> Vec<String> {
    let events = browser
        .execute_in(window, "return window.events;", Vec::new())
        .await
        .expect("events");
    serde_json::from_value(events).expect("a list of strings")
}

async fn visibility(browser: &Browser, window: &WindowHandle) -> Value {
    browser
        .execute_in(window, "return document.visibilityState;", Vec::new())
        .await
        .expect("visibilityState")
}

/// `a` holds the lock `x`; `b` waits for it (the query from `b` lists both).
async fn a_holds_b_waits(browser: &Browser, a: &WindowHandle, b: &WindowHandle) {
    browser
        .execute_in(a, "window.hold();", Vec::new())
        .await
        .expect("hold");
    browser
        .wait_until_in(a, "a to hold x", "return window.held;", T)
        .await
        .expect("a holds x");
    browser
        .execute_in(b, "window.wait();", Vec::new())
        .await
        .expect("wait");
    let query = browser
        .wait_until_in(
            b,
            "b to wait for x",
            "return navigator.locks.query().then((q) => q.pending.length === 1 && q);",
            T,
        )
        .await
        .expect("b waits");
    assert_eq!(query["held"][0]["name"], "x", "{query}");
    assert_eq!(query["pending"][0]["name"], "x", "{query}");
    assert_ne!(
        query["held"][0]["clientId"], query["pending"][0]["clientId"],
        "held and pending by different windows: {query}"
    );
    let got = browser
        .execute_in(b, "return window.got || null;", Vec::new())
        .await
        .expect("got");
    assert_eq!(got, Value::Null, "b must not have x yet");
}

#[tokio::test]
async fn windows_share_broadcast_channel_and_locks_and_close_normally() {
    const TEST: &str = "windows_share";
    let _serial = SERIAL.lock().await;
    let Some(browser) = browser(TEST).await else {
        return;
    };
    let base = serve_page().await;
    let a = first_window(&browser, &base, "a").await;
    let b = open(&browser, &base, "b").await;
    assert_eq!(
        browser.window().await.expect("current"),
        b,
        "open_window switches"
    );
    let windows = browser.windows().await.expect("windows");
    assert_eq!(windows.len(), 2);
    assert!(windows.contains(&a) && windows.contains(&b));

    // BroadcastChannel both ways.
    browser
        .execute_in(&a, "window.post('from a');", Vec::new())
        .await
        .expect("post");
    browser
        .wait_until_in(
            &b,
            "b to receive",
            "return window.received.includes('from a');",
            T,
        )
        .await
        .expect("b receives");
    browser
        .execute_in(&b, "window.post('from b');", Vec::new())
        .await
        .expect("post");
    browser
        .wait_until_in(
            &a,
            "a to receive",
            "return window.received.includes('from b');",
            T,
        )
        .await
        .expect("a receives");
    assert_eq!(
        browser.window().await.expect("current"),
        b,
        "execute_in restores"
    );

    a_holds_b_waits(&browser, &a, &b).await;

    // A normal close: pagehide runs, the lock passes to b.
    browser.close_window(&a).await.expect("close a");
    assert_eq!(browser.windows().await.expect("windows"), vec![b.clone()]);
    assert_eq!(browser.window().await.expect("current"), b);
    browser
        .wait_until("b to get x", "return window.got;", LOCK_HANDOVER)
        .await
        .expect("b gets x after a closes");
    assert!(
        browser
            .local_storage("pagehide-a")
            .await
            .expect("storage")
            .is_some(),
        "a normal close runs pagehide"
    );
    browser.quit().await.expect("quit");
}

#[tokio::test]
async fn a_window_is_hidden_and_shown() {
    const TEST: &str = "hidden_and_shown";
    let _serial = SERIAL.lock().await;
    let Some(browser) = browser(TEST).await else {
        return;
    };
    let base = serve_page().await;
    let a = first_window(&browser, &base, "a").await;
    let b = open(&browser, &base, "b").await;
    assert_eq!(visibility(&browser, &a).await, "visible");
    assert_eq!(visibility(&browser, &b).await, "visible");

    browser.hide_window(&a).await.expect("hide a");
    assert_eq!(
        browser.window().await.expect("current"),
        b,
        "hide keeps current"
    );
    assert_eq!(
        visibility(&browser, &a).await,
        "hidden",
        "switching does not unhide"
    );
    assert_eq!(visibility(&browser, &b).await, "visible");
    assert_eq!(
        events(&browser, &a).await.last().map(String::as_str),
        Some("visibilitychange:hidden")
    );
    // Scripts still run in the hidden window: a timer fires.
    let fired = browser
        .execute_in(
            &a,
            "return new Promise((resolve) => setTimeout(() => resolve(document.visibilityState), 10));",
            Vec::new(),
        )
        .await
        .expect("timer in a hidden window");
    assert_eq!(fired, "hidden");

    // The current window can be hidden too, and both at once.
    browser.hide_window(&b).await.expect("hide b");
    assert_eq!(visibility(&browser, &b).await, "hidden");
    browser.show_window(&a).await.expect("show a");
    browser.show_window(&b).await.expect("show b");
    assert_eq!(
        events(&browser, &a).await,
        [
            "load:visible",
            "visibilitychange:hidden",
            "visibilitychange:visible"
        ]
    );
    assert_eq!(
        events(&browser, &b).await,
        [
            "load:visible",
            "visibilitychange:hidden",
            "visibilitychange:visible"
        ]
    );
    browser.quit().await.expect("quit");
}

#[tokio::test]
async fn a_crashed_window_releases_its_locks_without_pagehide() {
    const TEST: &str = "crash";
    let _serial = SERIAL.lock().await;
    let Some(browser) = browser(TEST).await else {
        return;
    };
    let base = serve_page().await;
    let a = first_window(&browser, &base, "a").await;
    let b = open(&browser, &base, "b").await;
    let c = open(&browser, &base, "c").await;
    a_holds_b_waits(&browser, &a, &b).await;

    let crashed_at = Instant::now();
    browser.crash_window(&a).await.expect("crash a");
    assert_eq!(
        browser.window().await.expect("current"),
        c,
        "crash keeps current"
    );
    let got = browser
        .wait_until_in(&b, "b to get x", "return window.got;", LOCK_HANDOVER)
        .await;
    let handover = crashed_at.elapsed();
    got.unwrap_or_else(|e| panic!("the crash released a's lock: {e}"));
    eprintln!("{TEST}: b got the lock {handover:?} after the crash began");
    assert_eq!(
        browser.local_storage("pagehide-a").await.expect("storage"),
        None,
        "a crash runs no pagehide"
    );

    // The session goes on: the other windows work, the crashed one is still
    // listed (commands in it fail) until it is closed.
    browser
        .execute_in(&b, "window.post('after the crash');", Vec::new())
        .await
        .expect("post from b");
    browser
        .wait_until(
            "c to receive",
            "return window.received.includes('after the crash');",
            T,
        )
        .await
        .expect("c receives");
    assert!(browser.windows().await.expect("windows").contains(&a));
    assert!(
        browser
            .execute_in(&a, "return 1;", Vec::new())
            .await
            .is_err()
    );
    assert_eq!(browser.window().await.expect("current"), c);
    browser
        .close_window(&a)
        .await
        .expect("close the crashed window");
    let windows = browser.windows().await.expect("windows");
    assert_eq!(windows.len(), 2);
    assert!(!windows.contains(&a));
    browser.switch_to(&b).await.expect("switch to b");
    browser
        .goto(&format!("{base}?name=b2"))
        .await
        .expect("b navigates after the crash");
    browser.quit().await.expect("quit");
}
