//! Whole-app scenarios of issue 14: one connection per browser, not per
//! tab. Several windows of one headless Chromium (one profile: shared
//! localStorage, BroadcastChannel and Web Locks) open the app; the server
//! must see one connection from them, every tab must show every message,
//! and the connection must move to another tab when its leader closes,
//! crashes or hides, losing and doubling nothing.
//!
//! Needs `HEARTLINE_E2E_BIN_DIR` and `HEARTLINE_E2E_DIST` like the other
//! whole-app tests (`scripts/test` sets both); without them it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use heartline_e2e::{Browser, ProxyMode, WindowHandle};
use serde_json::Value;
use tokio::time::Instant;

/// The bound on a takeover: the server sees the new leader's
/// connection within this long of the old leader's window closing.
const TAKEOVER: Duration = Duration::from_secs(2);

/// What a tab's banner says about sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TabView {
    status: Option<String>,
    role: Option<String>,
    tab: Option<String>,
    leader: Option<String>,
}

const TAB_VIEW: &str = "const b = document.querySelector('.hl-banner'); \
    return b ? [b.getAttribute('data-status'), b.getAttribute('data-share'), \
    b.getAttribute('data-tab'), b.getAttribute('data-leader')] : [null, null, null, null];";

async fn tab_view(b: &Browser, w: &WindowHandle) -> Outcome<TabView> {
    let v = b
        .execute_in(w, TAB_VIEW, Vec::new())
        .await
        .ctx("reading a tab's banner")?;
    let field = |i: usize| v.get(i).and_then(Value::as_str).map(str::to_owned);
    Ok(TabView {
        status: field(0),
        role: field(1),
        tab: field(2),
        leader: field(3),
    })
}

/// Waits until the tabs agree on one open leader among them (optionally
/// `want`), and the server counts exactly one connection. Answers the
/// leader's window.
async fn wait_one_leader(
    s: &Scenario,
    b: &Browser,
    tabs: &[WindowHandle],
    want: Option<&WindowHandle>,
    timeout: Duration,
) -> Outcome<WindowHandle> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut views = Vec::new();
        for w in tabs {
            views.push(tab_view(b, w).await.unwrap_or(TabView {
                status: None,
                role: None,
                tab: None,
                leader: None,
            }));
        }
        let leaders: Vec<usize> = views
            .iter()
            .enumerate()
            .filter(|(_, v)| v.role.as_deref() == Some("leader"))
            .map(|(i, _)| i)
            .collect();
        let connections = healthz(&s.stack).await?["connections"].as_u64();
        if let [leader] = leaders[..] {
            let id = views[leader].tab.clone();
            let agreed = views.iter().all(|v| {
                v.leader == id && matches!(v.status.as_deref(), Some("open" | "degraded"))
            });
            let wanted = want.is_none_or(|w| *w == tabs[leader]);
            if agreed && wanted && connections == Some(1) {
                return Ok(tabs[leader].clone());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for one open leader{} and 1 server connection; \
                 the server counts {connections:?}; the tabs say {views:#?}",
                if want.is_some() {
                    " (the one wanted)"
                } else {
                    ""
                }
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

/// Checks over a few readings that the server keeps counting one
/// connection (a second tab's socket would show up here).
async fn stays_one_connection(s: &Scenario, readings: usize) -> Outcome {
    for _ in 0..readings {
        let health = healthz(&s.stack).await?;
        if health["connections"].as_u64() != Some(1) {
            return Err(format!(
                "the server counts more than one connection: {health}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// ada's first window, and `more` further windows of the same browser on
/// the same room.
async fn open_tabs(s: &mut Scenario, query: &str, more: usize) -> Outcome<Vec<WindowHandle>> {
    let url = s.stack.app_url(&format!("/chat/{ROOM}{query}"));
    let ada = s.user("ada", &url).await?;
    let b = s.b(ada);
    let mut tabs = vec![b.window().await.ctx("ada's first window")?];
    for _ in 0..more {
        tabs.push(b.open_window(&url).await.ctx("opening another window")?);
    }
    Ok(tabs)
}

/// Sends `text` from the tab in window `w`.
async fn send_in(b: &Browser, w: &WindowHandle, text: &str) -> Outcome {
    b.switch_to(w).await.ctx("switching windows")?;
    send(b, text).await
}

/// Waits until every tab shows each of `texts` exactly once, stored (not
/// pending); answers each tab's stored texts.
async fn wait_all_once(
    b: &Browser,
    tabs: &[WindowHandle],
    texts: &[String],
    timeout: Duration,
) -> Outcome<Vec<Vec<String>>> {
    let mut views = Vec::new();
    for (i, w) in tabs.iter().enumerate() {
        b.switch_to(w).await.ctx("switching windows")?;
        let view = wait_shown(
            b,
            &format!("tab {i} to show every message once"),
            timeout,
            |m| {
                texts
                    .iter()
                    .all(|t| m.iter().filter(|m| m.text == *t && !m.pending).count() == 1)
                    && texts.iter().all(|t| count(m, t) == 1)
            },
        )
        .await?;
        views.push(stored_texts(&view));
    }
    Ok(views)
}

macro_rules! scenario {
    ($test:ident, $name:literal, $body:ident) => {
        #[tokio::test]
        async fn $test() {
            let Some(inputs) = inputs(stringify!($test)) else {
                return;
            };
            let _serial = SERIAL.lock().await;
            let mut s = Scenario::start($name, &inputs, "", &[])
                .await
                .expect("scenario starts");
            let outcome = $body(&mut s).await;
            s.finish(outcome).await;
        }
    };
}

scenario!(
    three_tabs_hold_one_connection_and_every_message_shows_in_all,
    "tabs-three",
    three_tabs
);
scenario!(
    without_web_locks_three_tabs_still_hold_one_connection,
    "tabs-broadcast",
    three_tabs_broadcast
);
scenario!(
    closing_the_leader_moves_the_connection_and_loses_nothing,
    "tabs-close",
    close_leader
);
scenario!(
    closing_the_leader_without_web_locks_moves_the_connection_too,
    "tabs-close-broadcast",
    close_leader_broadcast
);
scenario!(
    a_killed_leader_s_queued_messages_go_once_after_the_takeover,
    "tabs-crash",
    crash_leader
);
scenario!(
    with_every_tab_but_one_hidden_the_visible_one_leads,
    "tabs-hidden",
    hidden_tabs
);

async fn three_tabs(s: &mut Scenario) -> Outcome {
    three_tabs_with(s, "").await
}

async fn three_tabs_broadcast(s: &mut Scenario) -> Outcome {
    three_tabs_with(s, "?share=broadcast").await
}

async fn three_tabs_with(s: &mut Scenario, query: &str) -> Outcome {
    let tabs = open_tabs(s, query, 2).await?;
    let b = s.b(0);
    wait_one_leader(s, b, &tabs, None, T).await?;
    stays_one_connection(s, 10).await?;
    // A message typed in any tab shows in all three, once.
    let mut texts = Vec::new();
    for (i, w) in tabs.iter().enumerate() {
        let text = format!("from tab {i}");
        send_in(b, w, &text).await?;
        texts.push(text);
    }
    let views = wait_all_once(b, &tabs, &texts, T).await?;
    if views.iter().any(|v| *v != views[0]) {
        return Err(format!("the tabs show different orders: {views:#?}"));
    }
    stays_one_connection(s, 5).await?;
    // The Connection page of a follower names the leading tab.
    let leader = wait_one_leader(s, b, &tabs, None, T).await?;
    let follower = tabs.iter().find(|w| **w != leader).cloned().unwrap();
    let leader_id = tab_view(b, &leader).await?.tab.unwrap_or_default();
    b.switch_to(&follower).await.ctx("switching windows")?;
    b.goto(&s.stack.app_url(&format!("/connection{query}")))
        .await
        .ctx("opening the Connection page")?;
    wait_text(
        b,
        "[data-testid=share]",
        "the Connection page to name the leading tab",
        |t| t.contains(&leader_id) && t.contains("goes through it"),
    )
    .await?;
    Ok(())
}

async fn close_leader(s: &mut Scenario) -> Outcome {
    close_leader_with(s, "", TAKEOVER).await
}

async fn close_leader_broadcast(s: &mut Scenario) -> Outcome {
    // Without locks the tabs notice the goodbye at once, but the election
    // round takes its claim window; the bound is the same.
    close_leader_with(s, "?share=broadcast", TAKEOVER).await
}

async fn close_leader_with(s: &mut Scenario, query: &str, bound: Duration) -> Outcome {
    let tabs = open_tabs(s, query, 2).await?;
    let b = s.b(0);
    let leader = wait_one_leader(s, b, &tabs, None, T).await?;
    let before = s.stack.proxy_status().await.ctx("proxy status")?["total_connections"]
        .as_u64()
        .unwrap_or(0);
    let rest: Vec<WindowHandle> = tabs.iter().filter(|w| **w != leader).cloned().collect();

    // Watch the server and the proxy while the test types: the moment the
    // proxy has accepted a new connection and the server counts one again
    // is when the server sees the new leader's connection.
    let (server, control) = (s.stack.server_addr(), s.stack.control_addr());
    let watcher = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        let get = |addr, path: &'static str| async move {
            let answer = heartline_e2e::http_request(addr, "GET", path, Duration::from_secs(2))
                .await
                .ok()?;
            serde_json::from_str::<Value>(&answer.body).ok()
        };
        while Instant::now() < deadline {
            let accepted = get(control, "/status")
                .await
                .and_then(|v| v["total_connections"].as_u64());
            let open = get(server, "/healthz")
                .await
                .and_then(|v| v["connections"].as_u64());
            if accepted.is_some_and(|n| n > before) && open == Some(1) {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    });

    // From the moment the close is asked for.
    let closed_at = Instant::now();
    b.close_window(&leader)
        .await
        .ctx("closing the leader's window")?;
    // Typed in a follower while the connection moves.
    let typed: Vec<String> = (1..=3).map(|n| format!("between {n}")).collect();
    for text in &typed {
        send_in(b, &rest[0], text).await?;
    }
    let new_leader = wait_one_leader(s, b, &rest, None, bound.max(T)).await?;
    let seen_at = watcher
        .await
        .ctx("the connection watcher")?
        .ok_or("the server never saw the new leader's connection")?;
    let took = seen_at.saturating_duration_since(closed_at);
    eprintln!("takeover: the server saw the new leader's connection {took:?} after the close");
    if took > bound {
        return Err(format!(
            "the new leader's connection came {took:?} after the close, over {bound:?}"
        ));
    }
    let _ = new_leader;
    wait_all_once(b, &rest, &typed, T).await?;
    stays_one_connection(s, 5).await?;
    Ok(())
}

async fn crash_leader(s: &mut Scenario) -> Outcome {
    let tabs = open_tabs(s, "", 2).await?;
    let b = s.b(0);
    let leader = wait_one_leader(s, b, &tabs, None, T).await?;
    let rest: Vec<WindowHandle> = tabs.iter().filter(|w| **w != leader).cloned().collect();
    send_in(b, &leader, "before the cut").await?;
    wait_all_once(b, &tabs, &["before the cut".to_owned()], T).await?;

    // The link is cut; messages typed now wait in the outbox (and in
    // localStorage under the tab that typed them).
    s.stack
        .set_mode(ProxyMode::Cut)
        .await
        .ctx("cutting the link")?;
    b.switch_to(&leader).await.ctx("switching windows")?;
    wait_status(b, &["reconnecting", "connecting", "offline"], T).await?;
    let typed: Vec<String> = (1..=3)
        .map(|n| format!("queued in the leader {n}"))
        .collect();
    for text in &typed {
        send_in(b, &leader, text).await?;
    }
    // In both followers: the one next in line for the lock has its own
    // messages in its core; the other's are adopted from storage by the new
    // leader and must still settle in the tab that typed them.
    let also: Vec<String> = (1..=3)
        .map(|n| format!("queued in a follower {n}"))
        .collect();
    send_in(b, &rest[0], &also[0]).await?;
    send_in(b, &rest[1], &also[1]).await?;
    send_in(b, &rest[1], &also[2]).await?;
    // The leader's renderer dies: no pagehide, no goodbye.
    b.crash_window(&leader)
        .await
        .ctx("crashing the leader's tab")?;
    s.stack
        .set_mode(ProxyMode::Pass)
        .await
        .ctx("restoring the link")?;

    let mut all = vec!["before the cut".to_owned()];
    all.extend(typed.iter().cloned());
    all.extend(also.iter().cloned());
    wait_one_leader(s, b, &rest, None, Duration::from_secs(30)).await?;
    let views = wait_all_once(b, &rest, &all, Duration::from_secs(30)).await?;
    // The leader's own messages in the order typed.
    let order: Vec<&String> = views[0].iter().filter(|t| typed.contains(t)).collect();
    if order != typed.iter().collect::<Vec<_>>() {
        return Err(format!("the leader's messages out of order: {order:?}"));
    }
    // Once on the server too: a fresh look from another browser.
    let direct = s.stack.server_url(&format!("/chat/{ROOM}"));
    let bo = s.user("bo", &direct).await?;
    let seen = wait_shown(s.b(bo), "bo to see the stored messages once", T, |m| {
        all.iter().all(|t| count(m, t) == 1)
    })
    .await?;
    let doubled: Vec<&Shown> = seen.iter().filter(|m| count(&seen, &m.text) > 1).collect();
    if !doubled.is_empty() {
        return Err(format!("stored twice: {doubled:?}"));
    }
    // Nothing left behind in storage.
    let b = s.b(0);
    b.switch_to(&rest[0]).await.ctx("switching windows")?;
    b.wait_until(
        "every saved outbox to be empty",
        "return Object.keys(localStorage).filter(k => k.startsWith('heartline.outbox')).length === 0;",
        T,
    )
    .await
    .ctx("saved outboxes")?;
    Ok(())
}

async fn hidden_tabs(s: &mut Scenario) -> Outcome {
    let tabs = open_tabs(s, "", 2).await?;
    let b = s.b(0);
    let leader = wait_one_leader(s, b, &tabs, None, T).await?;
    // Keep a follower visible; hide the leader and the other one.
    let visible = tabs.iter().find(|w| **w != leader).cloned().unwrap();
    for w in tabs.iter().filter(|w| **w != visible) {
        b.hide_window(w).await.ctx("hiding a window")?;
    }
    wait_one_leader(s, b, &tabs, Some(&visible), T)
        .await
        .ctx("the visible tab to lead")?;
    stays_one_connection(s, 5).await?;
    // The connection works from the hidden tabs too.
    let hidden: Vec<&WindowHandle> = tabs.iter().filter(|w| **w != visible).collect();
    send_in(b, hidden[0], "from a hidden tab").await?;
    send_in(b, &visible, "from the visible tab").await?;
    let texts = vec![
        "from a hidden tab".to_owned(),
        "from the visible tab".to_owned(),
    ];
    wait_all_once(b, &tabs, &texts, T).await?;
    // Showing another and hiding the leader moves it again.
    b.show_window(hidden[0]).await.ctx("showing a window")?;
    b.hide_window(&visible).await.ctx("hiding the leader")?;
    wait_one_leader(s, b, &tabs, Some(hidden[0]), T)
        .await
        .ctx("leadership to follow the visible tab")?;
    Ok(())
}
