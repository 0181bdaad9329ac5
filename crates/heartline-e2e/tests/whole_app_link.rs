//! Whole-app scenarios of the link (issue 10, scenarios 1, 2, 3, 6 and 9):
//! the release build of the app, served by the release server, in headless
//! Chromium, with the fault proxy between the browser and the server.
//!
//! Needs `HEARTLINE_E2E_BIN_DIR` (the directory holding the release
//! `heartline-server` and `heartline-faultproxy`) and `HEARTLINE_E2E_DIST`
//! (trunk's release `dist/`); without them every test only says it was
//! skipped. `scripts/test` sets both.
//!
//! Every wait is for a condition with a deadline. On a failure the test saves
//! a screenshot and the console log of each browser under
//! `<target>/e2e-failures/` and names them in its panic message.
//!
//! The scenarios run one at a time (a lock), so timing measurements are not
//! disturbed by another scenario's browsers on the same two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use heartline_e2e::{Browser, ProxyMode};
use serde_json::{Value, json};
use thirtyfour::prelude::*;

#[tokio::test]
async fn two_users_chat_with_presence_and_typing() {
    let Some(inputs) = inputs("two_users_chat_with_presence_and_typing") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let mut s = Scenario::start("two-users-chat", &inputs, "", &[])
        .await
        .expect("scenario starts");
    let outcome = two_users_chat(&mut s).await;
    s.finish(outcome).await;
}

async fn two_users_chat(s: &mut Scenario) -> Outcome {
    let url = s.stack.app_url(&format!("/chat/{ROOM}"));
    let ada = s.user("ada", &url).await?;
    let bo = s.user("bo", &url).await?;
    let (a, b) = (s.b(ada), s.b(bo));

    // Presence: each sees the other in the room.
    wait_text(a, ".room__people", "ada to see bo here", |t| {
        t.contains("bo")
    })
    .await?;
    wait_text(b, ".room__people", "bo to see ada here", |t| {
        t.contains("ada")
    })
    .await?;

    // Typing: ada types without sending; bo sees it.
    a.type_into("#composer-text", "hello b", T)
        .await
        .ctx("ada typing")?;
    wait_text(b, ".typing", "bo to see that ada is typing", |t| {
        t == "ada is typing…"
    })
    .await?;
    a.press_enter("#composer-text", T)
        .await
        .ctx("ada sending")?;

    // Both write, interleaved in time.
    let script = [
        ("ada", "ada 2"),
        ("bo", "bo 1"),
        ("ada", "ada 3"),
        ("bo", "bo 2"),
        ("bo", "bo 3"),
    ];
    for (who, text) in script {
        send(if who == "ada" { a } else { b }, text).await?;
    }
    let expected_ada = ["hello b", "ada 2", "ada 3"];
    let expected_bo = ["bo 1", "bo 2", "bo 3"];
    let all_there = |m: &[Shown]| {
        let texts = stored_texts(m);
        texts.len() == 6 && m.iter().all(|m| !m.pending)
    };
    let seen_by_ada = wait_shown(a, "ada to see all six messages", T, all_there).await?;
    let seen_by_bo = wait_shown(b, "bo to see all six messages", T, all_there).await?;
    let ada_view = stored_texts(&seen_by_ada);
    let bo_view = stored_texts(&seen_by_bo);
    if ada_view != bo_view {
        return Err(format!(
            "the two views differ:\nada: {ada_view:?}\nbo:  {bo_view:?}"
        ));
    }
    for (author, expected) in [("ada", &expected_ada), ("bo", &expected_bo)] {
        let theirs: Vec<&str> = ada_view
            .iter()
            .map(String::as_str)
            .filter(|t| expected.contains(t))
            .collect();
        if theirs != expected.as_slice() {
            return Err(format!(
                "{author}'s messages are not shown once each in order: {theirs:?} in {ada_view:?}"
            ));
        }
    }
    // Own messages end delivered.
    for (view, mine) in [(&seen_by_ada, &expected_ada), (&seen_by_bo, &expected_bo)] {
        for m in view.iter().filter(|m| mine.contains(&m.text.as_str())) {
            if m.state.as_deref() != Some("acked") {
                return Err(format!("own message {:?} is not acked: {m:?}", m.text));
            }
        }
    }
    // The typing line clears once ada has sent and stopped typing.
    wait_text(b, ".typing", "the typing line to clear", str::is_empty).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. The link is cut (for ada only: bo talks to the server directly).

#[tokio::test]
async fn cut_link_queues_and_delivers_once_in_order() {
    let Some(inputs) = inputs("cut_link_queues_and_delivers_once_in_order") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let config = "max_retries=none backoff_base_ms=200 backoff_cap_ms=1000 connect_timeout_ms=2000";
    let mut s = Scenario::start("cut-link", &inputs, config, &[])
        .await
        .expect("scenario starts");
    let outcome = cut_link(&mut s).await;
    s.finish(outcome).await;
}

async fn cut_link(s: &mut Scenario) -> Outcome {
    let through_proxy = s.stack.app_url(&format!("/chat/{ROOM}"));
    let direct = s.stack.server_url(&format!("/chat/{ROOM}"));
    let ada = s.user("ada", &through_proxy).await?;
    let bo = s.user("bo", &direct).await?;
    send(s.b(ada), "before the cut").await?;
    wait_shown(s.b(bo), "bo to see ada's first message", T, |m| {
        count(m, "before the cut") == 1
    })
    .await?;

    s.stack
        .set_mode(ProxyMode::Cut)
        .await
        .ctx("cutting the link")?;
    let (a, b) = (s.b(ada), s.b(bo));
    wait_status(a, &["reconnecting"], T)
        .await
        .ctx("ada's banner after the cut")?;
    let texts: Vec<String> = (1..=5).map(|i| format!("while cut {i}")).collect();
    for text in &texts {
        let now = status(a).await?;
        if !matches!(now.as_deref(), Some("reconnecting" | "connecting")) {
            return Err(format!(
                "ada's banner should say reconnecting while the link is cut, says {now:?}"
            ));
        }
        send(a, text).await?;
    }
    // Ada sees five messages waiting; bo (still connected) sees none.
    wait_text(
        a,
        ".hl-banner__waiting",
        "ada's banner to count 5 waiting messages",
        |t| t == "5 messages waiting to be sent",
    )
    .await?;
    let waiting = shown(a).await?;
    let queued: Vec<&Shown> = waiting.iter().filter(|m| m.pending).collect();
    if queued.len() != 5 || queued.iter().any(|m| m.state.as_deref() != Some("queued")) {
        return Err(format!(
            "ada should see her 5 messages queued, sees {waiting:#?}"
        ));
    }
    if status(b).await?.as_deref() != Some("open") {
        return Err("bo's direct link should stay open during ada's cut".into());
    }
    if shown(b)
        .await?
        .iter()
        .any(|m| m.text.starts_with("while cut"))
    {
        return Err("bo sees a message ada sent while cut before the link is back".into());
    }

    s.stack
        .set_mode(ProxyMode::Pass)
        .await
        .ctx("restoring the link")?;
    wait_status(a, &["open"], T)
        .await
        .ctx("ada's banner after the link is back")?;
    let all_five =
        |m: &[Shown]| texts.iter().all(|t| count(m, t) >= 1) && !m.iter().any(|m| m.pending);
    let ada_view = wait_shown(a, "ada to see her 5 messages stored", T, all_five).await?;
    let bo_view = wait_shown(b, "bo to see ada's 5 messages", T, all_five).await?;
    for (who, view) in [("ada", &ada_view), ("bo", &bo_view)] {
        let cut: Vec<String> = stored_texts(view)
            .into_iter()
            .filter(|t| t.starts_with("while cut"))
            .collect();
        if cut != texts {
            return Err(format!(
                "{who} should see the 5 messages once each, in order; sees {cut:?}"
            ));
        }
    }
    for m in ada_view.iter().filter(|m| m.text.starts_with("while cut")) {
        if m.state.as_deref() != Some("acked") {
            return Err(format!("ada's {:?} should end acked: {m:?}", m.text));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. The link stalls (half-open).

/// Heartbeat settings of the stall scenario.
const STALL_INTERVAL_MS: u64 = 2_000;
const STALL_TIMEOUT_MS: u64 = 1_000;
/// Allowed lateness of the detection past interval + timeout: timers, the
/// page's render and the WebDriver round trips on a loaded 2-core machine.
const STALL_MARGIN_MS: u64 = 1_500;

#[tokio::test]
async fn stalled_link_is_detected_and_recovers() {
    let Some(inputs) = inputs("stalled_link_is_detected_and_recovers") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let config = format!(
        "heartbeat_ms={STALL_INTERVAL_MS} timeout_ms={STALL_TIMEOUT_MS} max_retries=none \
         backoff_base_ms=200 backoff_cap_ms=1000 connect_timeout_ms=2000"
    );
    let mut s = Scenario::start("stalled-link", &inputs, &config, &[])
        .await
        .expect("scenario starts");
    let outcome = stalled_link(&mut s).await;
    s.finish(outcome).await;
}

async fn stalled_link(s: &mut Scenario) -> Outcome {
    let url = s.stack.app_url(&format!("/chat/{ROOM}"));
    let ada = s.user("ada", &url).await?;
    let a = s.b(ada);
    send(a, "before the stall").await?;
    wait_shown(a, "the first message acked", T, |m| {
        m.iter()
            .any(|m| m.text == "before the stall" && m.state.as_deref() == Some("acked"))
    })
    .await?;

    // The page's clock at the stall: the banner log uses the same clock.
    let stalled_at = a
        .execute("return Date.now();", Vec::new())
        .await
        .ctx("reading the page clock")?
        .as_f64()
        .ok_or("Date.now() is not a number")?;
    s.stack
        .set_mode(ProxyMode::Stall)
        .await
        .ctx("stalling the link")?;
    // Typed during the stall, while the page still believes the link is up.
    send(a, "during the stall").await?;

    let limit = STALL_INTERVAL_MS + STALL_TIMEOUT_MS + STALL_MARGIN_MS;
    let lost = a
        .wait_until(
            "the banner to leave open after the stall",
            &format!(
                "const log = (window.__hl || {{}}).banner || [];\
                 const left = log.find(e => e.t >= {stalled_at} && e.status !== 'open');\
                 const lost = log.find(e => e.t >= {stalled_at} && ['reconnecting', 'connecting', 'offline', 'failed'].includes(e.status));\
                 return lost ? [left.t - {stalled_at}, left.status, lost.t - {stalled_at}, lost.status] : null;"
            ),
            Duration::from_millis(limit + 5_000),
        )
        .await
        .ctx("the stall to be noticed")?;
    let left_ms = lost[0].as_f64().unwrap_or(f64::NAN);
    let lost_ms = lost[2].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "stalled-link: the banner left open after {left_ms:.0} ms (to {}), said the link was lost after {lost_ms:.0} ms (to {}); interval + timeout = {} ms, allowed {limit} ms",
        lost[1],
        lost[3],
        STALL_INTERVAL_MS + STALL_TIMEOUT_MS
    );
    if lost_ms.is_nan() || lost_ms > limit as f64 {
        return Err(format!(
            "the stall was shown after {lost_ms:.0} ms, past interval + timeout + margin = {limit} ms"
        ));
    }

    s.stack
        .set_mode(ProxyMode::Pass)
        .await
        .ctx("ending the stall")?;
    wait_status(a, &["open"], T)
        .await
        .ctx("the banner after the stall ends")?;
    let view = wait_shown(
        a,
        "the message typed during the stall to be acked",
        T,
        |m| {
            m.iter()
                .any(|m| m.text == "during the stall" && m.state.as_deref() == Some("acked"))
                && !m.iter().any(|m| m.pending)
        },
    )
    .await?;
    for text in ["before the stall", "during the stall"] {
        if count(&view, text) != 1 {
            return Err(format!("{text:?} should be shown once: {view:#?}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Leaving the dashboard stops the metrics stream.

#[tokio::test]
async fn leaving_the_dashboard_stops_the_metrics_stream() {
    let Some(inputs) = inputs("leaving_the_dashboard_stops_the_metrics_stream") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    // Short heartbeats: once the samples stop, the pings' pongs show that
    // the link is alive and time has passed.
    let config = "heartbeat_ms=500 timeout_ms=2000";
    let mut s = Scenario::start(
        "leave-dashboard",
        &inputs,
        config,
        &["--metrics-interval-ms", "200"],
    )
    .await
    .expect("scenario starts");
    let outcome = leave_dashboard(&mut s).await;
    s.finish(outcome).await;
}

/// Frames received by `socketType` since index `from` of the page's log.
async fn frames_since(b: &Browser, from: u64) -> Outcome<Vec<String>> {
    let value = b
        .execute(
            "return ((window.__hl || {}).frames || []).slice(arguments[0]).map(f => f.type);",
            vec![json!(from)],
        )
        .await
        .ctx("reading the frame log")?;
    Ok(value
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect())
}

async fn leave_dashboard(s: &mut Scenario) -> Outcome {
    let url = s.stack.app_url("/dashboard");
    let ada = s.user("ada", &url).await?;
    let a = s.b(ada);
    a.wait_for("path.chart__line", T)
        .await
        .ctx("the dashboard's charts")?;
    wait_metrics_subscribers(&s.stack, 1, "on the dashboard").await?;
    let before = frames_since(a, 0).await?;
    let samples = before.iter().filter(|t| *t == "metrics.sample").count();
    if samples == 0 {
        return Err(format!(
            "the frame counter saw no metrics.sample on the dashboard: {before:?}"
        ));
    }

    // A navigation inside the app: a marker on window survives it, a page
    // load would not.
    a.execute("window.__hlSamePage = true;", Vec::new())
        .await
        .ctx("marking the page")?;
    let chat = a
        .driver()
        .ctx("the driver")?
        .find(By::XPath(
            "//nav//a[contains(@class,'nav__link')][normalize-space()='Chat']",
        ))
        .await
        .ctx("the Chat link in the nav")?;
    chat.click().await.ctx("clicking Chat")?;
    a.wait_for("#composer-text", T)
        .await
        .ctx("the chat page after clicking Chat")?;
    let same = a
        .execute(
            "return window.__hlSamePage === true && location.pathname.startsWith('/chat');",
            Vec::new(),
        )
        .await
        .ctx("checking the navigation")?;
    if same != Value::Bool(true) {
        return Err(
            "clicking Chat should be an in-app navigation to /chat, not a page load".into(),
        );
    }

    wait_metrics_subscribers(&s.stack, 0, "after leaving the dashboard").await?;
    let mark = a
        .execute("return window.__hl.frames.length;", Vec::new())
        .await
        .ctx("reading the frame count")?
        .as_u64()
        .ok_or("the frame count is not a number")?;
    // Three pongs after the mark: the link is alive and at least three
    // heartbeat intervals (over 1.5 s, 7 sample intervals) have passed.
    a.wait_until(
        "three pongs after the server counted 0 subscribers",
        &format!(
            "return window.__hl.frames.slice({mark}).filter(f => f.type === 'pong').length >= 3;"
        ),
        T,
    )
    .await
    .ctx("heartbeats after leaving the dashboard")?;
    let after = frames_since(a, mark).await?;
    // A sample queued before the unsubscribe may still be on its way at the
    // mark; none may follow the first pong after it.
    let first_pong = after.iter().position(|t| t == "pong").unwrap_or(0);
    let late: Vec<&String> = after[first_pong..]
        .iter()
        .filter(|t| *t == "metrics.sample")
        .collect();
    eprintln!(
        "leave-dashboard: {samples} samples on the dashboard; after 0 subscribers: {after:?}"
    );
    if !late.is_empty() {
        return Err(format!(
            "{} metrics.sample frames arrived after leaving the dashboard: {after:?}",
            late.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 9. The failed state, and Retry now.

#[tokio::test]
async fn gives_up_says_why_and_retry_now_reconnects() {
    let Some(inputs) = inputs("gives_up_says_why_and_retry_now_reconnects") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let config = "max_retries=2 backoff_base_ms=100 backoff_cap_ms=300 connect_timeout_ms=1000";
    let mut s = Scenario::start("failed-state", &inputs, config, &[])
        .await
        .expect("scenario starts");
    let outcome = failed_state(&mut s).await;
    s.finish(outcome).await;
}

async fn failed_state(s: &mut Scenario) -> Outcome {
    let url = s.stack.app_url(&format!("/chat/{ROOM}"));
    let ada = s.user("ada", &url).await?;
    send(s.b(ada), "before the server died").await?;

    s.stack.kill_server().await.ctx("killing the server")?;
    let a = s.b(ada);
    wait_status(a, &["failed"], T)
        .await
        .ctx("the banner to say the client gave up")?;
    let message = wait_text(a, ".hl-banner__message", "the reason in words", |t| {
        t.starts_with("Connection failed: ")
    })
    .await?;
    eprintln!("failed-state: the banner says {message:?}");
    if !message.contains("could not connect after") {
        return Err(format!(
            "the banner should say it could not connect (the retry limit), says {message:?}"
        ));
    }
    let retry = a
        .wait_for(".hl-banner__retry", T)
        .await
        .ctx("the Retry now button")?;
    let label = retry.text().await.ctx("the button's text")?;
    if label != "Retry now" {
        return Err(format!("the retry button says {label:?}"));
    }

    s.stack
        .restart_server()
        .await
        .ctx("restarting the server")?;
    retry.click().await.ctx("clicking Retry now")?;
    let a = s.b(ada);
    wait_status(a, &["open"], T)
        .await
        .ctx("the banner after Retry now")?;
    send(a, "after retry").await?;
    wait_shown(a, "the message after the retry to be acked", T, |m| {
        m.iter()
            .any(|m| m.text == "after retry" && m.state.as_deref() == Some("acked"))
    })
    .await?;
    Ok(())
}
