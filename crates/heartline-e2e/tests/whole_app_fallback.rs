//! Whole-app scenario of issue 13: a network that refuses the WebSocket
//! upgrade but passes plain HTTP. The fault proxy answers every upgrade with
//! 403 (as such corporate proxies do); the app in headless Chromium must
//! connect through the HTTP long-poll fallback, chat both ways with a user
//! on WebSocket in the same room, say in its banner that it is
//! long-polling, and move back to WebSocket once the proxy allows upgrades,
//! without losing or doubling a message typed across the switch.
//!
//! Needs `HEARTLINE_E2E_BIN_DIR` and `HEARTLINE_E2E_DIST` like the other
//! whole-app tests (`scripts/test` sets both); without them it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use heartline_e2e::Browser;
use tokio::time::Instant;

/// The wait for the way back: the first probes come after 2 s, 4 s, 8 s…
/// (capped at 30 s), so one is due within about 30 s of the proxy allowing
/// upgrades.
const BACK_TO_WEBSOCKET: Duration = Duration::from_secs(45);

/// The banner's `data-transport` (`websocket` or `long-polling`).
async fn transport(b: &Browser) -> Outcome<Option<String>> {
    let value = b
        .execute(
            "const b = document.querySelector('.hl-banner'); return b ? b.getAttribute('data-transport') : null;",
            Vec::new(),
        )
        .await
        .ctx("reading the banner's transport")?;
    Ok(value.as_str().map(str::to_owned))
}

/// Waits until the banner is open on `want`.
async fn wait_transport(b: &Browser, want: &str, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    loop {
        let open = matches!(
            status(b).await.unwrap_or(None).as_deref(),
            Some("open" | "degraded")
        );
        let now = transport(b).await.unwrap_or(None);
        if open && now.as_deref() == Some(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for the banner to be open on {want}; transport {now:?}, status {:?}",
                status(b).await.unwrap_or(None)
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL).await;
    }
}

#[tokio::test]
async fn refused_upgrades_fall_back_to_long_polling_and_move_back_without_loss() {
    let test = "refused_upgrades_fall_back_to_long_polling_and_move_back_without_loss";
    let Some(inputs) = inputs(test) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let mut s = Scenario::start("fallback", &inputs, "", &[])
        .await
        .expect("scenario starts");
    let outcome = fallback(&mut s).await;
    s.finish(outcome).await;
}

async fn fallback(s: &mut Scenario) -> Outcome {
    s.stack
        .refuse_upgrades(true)
        .await
        .ctx("making the proxy refuse upgrades")?;
    // ada is behind the proxy; bo talks to the server straight, on
    // WebSocket.
    let through_proxy = s.stack.app_url(&format!("/chat/{ROOM}"));
    let direct = s.stack.server_url(&format!("/chat/{ROOM}"));
    let ada = s.user("ada", &through_proxy).await?;
    let bo = s.user("bo", &direct).await?;

    let (a, b) = (s.b(ada), s.b(bo));
    wait_transport(a, "long-polling", T).await?;
    wait_transport(b, "websocket", T).await?;
    wait_text(a, ".hl-banner", "ada's banner to name the transport", |t| {
        t.contains("long-polling")
    })
    .await?;
    let proxy = s
        .stack
        .proxy_status()
        .await
        .ctx("reading the proxy status")?;
    if proxy["refused_upgrades"].as_u64().unwrap_or(0) < 2 {
        return Err(format!("the proxy refused no upgrade: {proxy}"));
    }
    wait_text(a, ".room__people", "ada to see bo here", |t| {
        t.contains("bo")
    })
    .await?;
    wait_text(b, ".room__people", "bo to see ada here", |t| {
        t.contains("ada")
    })
    .await?;

    // Chat both ways across the two transports.
    send(a, "poll 1").await?;
    send(b, "socket 1").await?;
    send(a, "poll 2").await?;
    let first = ["poll 1", "socket 1", "poll 2"];
    for (who, browser) in [("ada", a), ("bo", b)] {
        wait_shown(browser, &format!("{who} to see the first three"), T, |m| {
            first.iter().all(|t| count(m, t) == 1) && m.iter().all(|m| !m.pending)
        })
        .await?;
    }

    // The proxy lets upgrades through again; ada keeps typing while her
    // client finds WebSocket and switches.
    s.stack
        .refuse_upgrades(false)
        .await
        .ctx("making the proxy allow upgrades")?;
    let mut typed: Vec<String> = Vec::new();
    let deadline = Instant::now() + BACK_TO_WEBSOCKET;
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("switch {n}");
        send(a, &text).await?;
        typed.push(text);
        if transport(a).await?.as_deref() == Some("websocket") {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "ada did not move back to WebSocket within {BACK_TO_WEBSOCKET:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_transport(a, "websocket", T).await?;
    send(a, "after the switch").await?;
    send(b, "socket 2").await?;
    typed.push("after the switch".into());

    let mut all: Vec<String> = first.iter().map(|t| (*t).to_owned()).collect();
    all.extend(typed.iter().cloned());
    all.push("socket 2".into());
    let mut views = Vec::new();
    for (who, browser) in [("ada", a), ("bo", b)] {
        let view = wait_shown(
            browser,
            &format!("{who} to see every message once"),
            T,
            |m| all.iter().all(|t| count(m, t) == 1) && m.iter().all(|m| !m.pending),
        )
        .await?;
        views.push(stored_texts(&view));
    }
    if views[0] != views[1] {
        return Err(format!(
            "the two views differ:\nada: {:?}\nbo:  {:?}",
            views[0], views[1]
        ));
    }
    // ada's messages in the order she typed them.
    let hers: Vec<&String> = views[0].iter().filter(|t| typed.contains(t)).collect();
    let typed_refs: Vec<&String> = typed.iter().collect();
    if hers != typed_refs {
        return Err(format!(
            "ada's messages out of order: {hers:?}, typed {typed:?}"
        ));
    }
    // Her own messages end delivered.
    let view = shown(a).await?;
    for m in view.iter().filter(|m| typed.contains(&m.text)) {
        if m.state.as_deref() != Some("acked") {
            return Err(format!("own message {:?} is not acked: {m:?}", m.text));
        }
    }
    // The Connection page says which transport is in use.
    let connection = s.stack.app_url("/connection");
    a.goto(&connection)
        .await
        .ctx("opening the Connection page")?;
    wait_text(
        a,
        "[data-testid=transport]",
        "the Connection page to say WebSocket",
        |t| t.contains("WebSocket"),
    )
    .await?;
    Ok(())
}
