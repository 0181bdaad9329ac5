//! The socket layer in a real browser: `SocketProvider`, its hooks and the
//! `ConnectionBanner`, against the real demo server and, for faults, the
//! fault-injecting proxy in front of it (both started by scripts/test).
//!
//! Tests run one after another in one page and share the proxy: each one
//! leaves it restored and destroys what it rendered.

#![cfg(target_arch = "wasm32")]

mod support;

use std::time::Duration;

use heartline::core::{
    BackoffConfig, Config, DeliveryState, FallbackConfig, HeartbeatConfig, HeartbeatStyle, Jitter,
};
use heartline::yew::{NoProviderError, ShareOptions, SocketError, use_socket_checked};
use serde_json::json;
use support::*;
use wasm_bindgen_test::*;
use yew::prelude::*;

wasm_bindgen_test_configure!(run_in_browser);

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(20);

fn join(room: &str) -> serde_json::Value {
    json!({"socketType": "join", "room": room})
}

fn chat(room: &str, text: &str) -> serde_json::Value {
    json!({"socketType": "chat.send", "room": room, "text": text})
}

#[wasm_bindgen_test]
async fn banner_goes_connecting_then_connected() {
    proxy("restore").await;
    let app = Mounted::new(server_ws_url(), fast_config(), false);
    app.wait_for_status("open", SHORT).await;

    let seen = app.probe.statuses.0.borrow().clone();
    let connecting = seen.iter().position(|s| s == "connecting");
    let open = seen.iter().position(|s| s == "open");
    assert!(
        matches!((connecting, open), (Some(c), Some(o)) if c < o),
        "expected connecting before open, saw {seen:?}"
    );
    let text = text_of(&app.root, ".hl-banner__message").unwrap_or_default();
    assert_eq!(text, "Connected");
    assert_eq!(
        attr_of(&app.root, ".hl-banner", "role").as_deref(),
        Some("status")
    );
}

#[wasm_bindgen_test]
async fn the_connected_banner_hides_after_a_moment_and_stays_announced() {
    proxy("restore").await;
    let app = Mounted::mount(yew::props!(HarnessProps {
        url: AttrValue::from(server_ws_url()),
        config: fast_config(),
        probe: Probe::default(),
        banner_ms: 300,
    }));
    app.wait_for_status("open", SHORT).await;
    let root = app.root.clone();
    wait_until("the banner to hide", SHORT, || {
        root.query_selector(".hl-banner[hidden]")
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    // Hidden, not removed: the live region stays in place for the next change.
    assert_eq!(
        attr_of(&root, ".hl-banner", "aria-live").as_deref(),
        Some("polite")
    );
}

#[wasm_bindgen_test]
async fn after_a_cut_the_banner_counts_down_then_reconnects() {
    proxy("restore").await;
    // A slower backoff, so the countdown is on screen long enough to read.
    let config = Config {
        backoff: BackoffConfig {
            base: 1_500,
            factor: 1.5,
            cap: 3_000,
            jitter: Jitter::None,
        },
        ..fast_config()
    };
    let app = Mounted::new(proxy_ws_url(), config, false);
    app.wait_for_status("open", SHORT).await;

    proxy("cut").await;
    app.wait_for_status("reconnecting", SHORT).await;
    let message = text_of(&app.root, ".hl-banner__message").unwrap_or_default();
    assert!(
        message.contains("Reconnecting (attempt"),
        "banner said {message:?}"
    );
    let countdown = text_of(&app.root, ".hl-banner__countdown").unwrap_or_default();
    assert!(
        countdown.trim_start().starts_with("in ") && countdown.ends_with(" s"),
        "countdown said {countdown:?}"
    );
    assert!(
        text_of(&app.root, ".hl-banner__retry").is_some(),
        "a Retry now button"
    );

    proxy("restore").await;
    app.wait_for_status("open", LONG).await;
    assert!(app.socket().stats().reconnects >= 1);
}

#[wasm_bindgen_test]
async fn a_message_sent_while_cut_is_acked_once_after_restore() {
    proxy("restore").await;
    let room = unique("r");
    let app = Mounted::new(proxy_ws_url(), fast_config(), true);
    app.wait_for_status("open", SHORT).await;
    app.socket()
        .add_standing("room", join(&room), Some(room.clone()))
        .expect("join registered");

    proxy("cut").await;
    let root = app.root.clone();
    wait_until("the link to drop", SHORT, || {
        banner_status(&root).as_deref() != Some("open")
    })
    .await;

    let text = unique("typed while offline ");
    let id = app.socket().send(chat(&room, &text)).expect("queued");
    assert_eq!(app.socket().message_state(&id), Some(DeliveryState::Queued));
    wait_until("the banner to count the waiting message", SHORT, || {
        attr_of(&root, ".hl-banner", "data-waiting").as_deref() == Some("1")
    })
    .await;

    proxy("restore").await;
    wait_until("the message to be acked", LONG, || {
        app.socket().message_state(&id) == Some(DeliveryState::Acked)
    })
    .await;
    wait_until("our own message to come back", SHORT, || {
        !app.probe.received_of("chat.message").is_empty()
    })
    .await;

    // A fresh client reads the room's history: the message is there once.
    let reader = Mounted::new(server_ws_url(), fast_config(), true);
    reader.wait_for_status("open", SHORT).await;
    reader.join_and_read_history(&room).await;
    assert_eq!(
        reader.chat_messages_with("text", &text),
        1,
        "the server holds the message exactly once"
    );
    assert_eq!(
        app.chat_messages_with("id", id.as_str()),
        1,
        "the sender saw its message broadcast once"
    );
}

#[wasm_bindgen_test]
async fn a_stalled_link_is_declared_dead_and_recovers() {
    proxy("restore").await;
    let config = Config {
        heartbeat: HeartbeatConfig {
            interval: 300,
            timeout: 600,
            probe_timeout: 600,
            ..HeartbeatConfig::default()
        },
        connect_timeout: 1_500,
        ..fast_config()
    };
    let app = Mounted::new(proxy_ws_url(), config, false);
    app.wait_for_status("open", SHORT).await;

    // Half-open: nothing is closed, nothing gets through.
    proxy("stall").await;
    let root = app.root.clone();
    wait_until("the silent link to be declared dead", SHORT, || {
        banner_status(&root).as_deref() != Some("open")
    })
    .await;
    assert!(
        app.socket().stats().heartbeat_losses >= 1,
        "the heartbeat, not a close, found it: {:?}",
        app.socket().stats()
    );

    proxy("restore").await;
    app.wait_for_status("open", LONG).await;
}

#[wasm_bindgen_test]
async fn a_subscription_stops_receiving_after_its_component_unmounts() {
    proxy("restore").await;
    let room = unique("r");
    let config = fast_config();
    let mut app = Mounted::new(server_ws_url(), config.clone(), true);
    app.wait_for_status("open", SHORT).await;
    app.socket()
        .add_standing("room", join(&room), Some(room.clone()))
        .expect("join registered");

    app.socket().send(chat(&room, "first")).expect("sent");
    wait_until("the listener to get the first message", SHORT, || {
        app.probe.received_of("chat.message").len() == 1
    })
    .await;

    app.set_listening(server_ws_url(), config, false);
    let second = app.socket().send(chat(&room, "second")).expect("sent");
    // The provider got it (its registry keeps the last message of a type)...
    wait_until("the second message to arrive", SHORT, || {
        app.socket()
            .last("chat.message")
            .is_some_and(|m| m.value["id"] == second.as_str())
    })
    .await;
    // ...but the unmounted listener did not.
    assert_eq!(app.probe.received_of("chat.message").len(), 1);
}

#[wasm_bindgen_test]
async fn two_providers_with_different_urls_do_not_cross_talk() {
    proxy("restore").await;
    let room = unique("r");
    let direct = Mounted::new(server_ws_url(), fast_config(), true);
    let proxied = Mounted::new(proxy_ws_url(), fast_config(), true);
    direct.wait_for_status("open", SHORT).await;
    proxied.wait_for_status("open", SHORT).await;
    assert_ne!(direct.socket().url(), proxied.socket().url());

    direct
        .socket()
        .add_standing("room", join(&room), Some(room.clone()))
        .expect("join registered");
    let id = direct
        .socket()
        .send(chat(&room, "only for direct"))
        .expect("sent");
    wait_until("the direct provider to get its message", SHORT, || {
        direct
            .probe
            .received_of("chat.message")
            .iter()
            .any(|m| m.value["id"] == id.as_str())
    })
    .await;
    assert!(proxied.probe.received_of("chat.message").is_empty());
    assert!(proxied.socket().last("chat.message").is_none());

    // A fault on one link leaves the other alone.
    proxy("cut").await;
    let root = proxied.root.clone();
    wait_until("the proxied provider to notice the cut", SHORT, || {
        banner_status(&root).as_deref() != Some("open")
    })
    .await;
    assert_eq!(direct.status().as_deref(), Some("open"));
    proxy("restore").await;
    proxied.wait_for_status("open", LONG).await;
}

#[function_component(OutsideAnyProvider)]
fn outside_any_provider() -> Html {
    match use_socket_checked() {
        Ok(_) => html! { <p class="outcome">{ "found a provider" }</p> },
        Err(error) => html! { <p class="outcome">{ error.to_string() }</p> },
    }
}

#[wasm_bindgen_test]
async fn a_hook_outside_a_provider_gives_the_documented_error() {
    let root = mount_point();
    let app = yew::Renderer::<OutsideAnyProvider>::with_root(root.clone()).render();
    wait_until("the component to render", SHORT, || {
        text_of(&root, ".outcome").is_some()
    })
    .await;
    let text = text_of(&root, ".outcome").unwrap_or_default();
    assert_eq!(text, NoProviderError.to_string());
    assert!(text.contains("<SocketProvider>"), "{text}");
    app.destroy();
    root.remove();
}

#[wasm_bindgen_test]
async fn the_plain_text_ping_pong_heartbeat_keeps_the_link_up() {
    proxy("restore").await;
    let config = Config {
        heartbeat: HeartbeatConfig {
            interval: 200,
            timeout: 1_000,
            style: HeartbeatStyle::Text {
                ping: "ping".into(),
                pong: "pong".into(),
            },
            ..HeartbeatConfig::default()
        },
        ..fast_config()
    };
    let app = Mounted::new(server_ws_url(), config, false);
    app.wait_for_status("open", SHORT).await;
    // Five round trips of text pings, each answered by a text "pong".
    wait_until("five pongs", SHORT, || {
        let stats = app.socket().stats();
        stats.last_rtt.is_some() && stats.frames_in >= 6
    })
    .await;
    let stats = app.socket().stats();
    assert_eq!(stats.heartbeat_losses, 0, "{stats:?}");
    assert_eq!(stats.reconnects, 0, "{stats:?}");
    assert_eq!(
        stats.invalid_frames, 0,
        "a text pong is not an invalid frame: {stats:?}"
    );
    assert_eq!(app.status().as_deref(), Some("open"));
}

/// Fast retries over WebSocket sockets only: during a cut every attempt
/// fails, and with the fallback on some would be long-poll sessions, whose
/// HTTP keep-alive connections the browser pools on its own terms. The
/// fallback's one-link-at-a-time is checked by the core's tests.
fn reconnect_storm_config() -> Config {
    Config {
        backoff: BackoffConfig {
            base: 50,
            factor: 1.5,
            cap: 200,
            jitter: Jitter::Full,
        },
        fallback: FallbackConfig {
            enabled: false,
            ..FallbackConfig::default()
        },
        ..fast_config()
    }
}

/// Twenty rounds of cutting the proxy until every banner has left "open",
/// then restoring it until every banner is open again.
async fn twenty_cuts(tabs: &[Mounted]) {
    let roots: Vec<_> = tabs.iter().map(|t| t.root.clone()).collect();
    for round in 1..=20 {
        proxy("cut").await;
        wait_until(&format!("round {round}: the link to drop"), SHORT, || {
            roots
                .iter()
                .all(|root| banner_status(root).as_deref() != Some("open"))
        })
        .await;
        proxy("restore").await;
        for tab in tabs {
            tab.wait_for_status("open", LONG).await;
        }
    }
}

/// Waits (5 s at most) until the proxy holds exactly one connection.
async fn wait_for_one_proxy_connection() {
    let deadline = js_sys::Date::now() + 5_000.0;
    loop {
        let open = proxy_open_connections().await;
        if open == 1 {
            break;
        }
        assert!(
            js_sys::Date::now() < deadline,
            "proxy still holds {open} connections"
        );
        next_tick().await;
    }
}

#[wasm_bindgen_test]
async fn after_twenty_reconnects_the_page_holds_one_socket() {
    proxy("restore").await;
    let app = Mounted::new(proxy_ws_url(), reconnect_storm_config(), false);
    app.wait_for_status("open", SHORT).await;
    twenty_cuts(std::slice::from_ref(&app)).await;
    let counts = app.socket().socket_counts();
    assert!(counts.created >= 21, "{counts:?}");
    assert_eq!(counts.live, 1, "{counts:?}");
    assert!(app.socket().stats().reconnects >= 20);

    // The proxy sees exactly one connection from this page.
    wait_for_one_proxy_connection().await;
}

#[wasm_bindgen_test]
async fn after_twenty_reconnects_three_sharing_tabs_hold_one_socket() {
    proxy("restore").await;
    let config = reconnect_storm_config();
    // Three providers sharing one name play three tabs: each has its own
    // BroadcastChannel end and its own request for the leader lock.
    let share = ShareOptions::new(unique("share-"));
    let tabs: Vec<Mounted> = (0..3)
        .map(|_| {
            Mounted::mount(yew::props!(HarnessProps {
                url: AttrValue::from(proxy_ws_url().to_owned()),
                config: config.clone(),
                probe: Probe::default(),
                share: Some(share.clone()),
            }))
        })
        .collect();
    let leaders = |tabs: &[Mounted]| {
        tabs.iter()
            .filter(|t| t.socket().share().is_some_and(|info| info.leading()))
            .count()
    };
    for tab in &tabs {
        tab.wait_for_status("open", SHORT).await;
    }
    wait_until("one tab to lead", SHORT, || leaders(&tabs) == 1).await;
    twenty_cuts(&tabs).await;
    assert_eq!(leaders(&tabs), 1);
    let counts: Vec<_> = tabs.iter().map(|t| t.socket().socket_counts()).collect();
    // One tab made every socket; the others none.
    assert_eq!(counts.iter().map(|c| c.live).sum::<u32>(), 1, "{counts:?}");
    assert!(counts.iter().any(|c| c.created >= 21), "{counts:?}");
    assert_eq!(
        counts.iter().filter(|c| c.created == 0).count(),
        2,
        "{counts:?}"
    );

    // The proxy sees exactly one connection from the three.
    wait_for_one_proxy_connection().await;

    // A follower still sends through the leader's socket.
    let follower = tabs
        .iter()
        .find(|t| !t.socket().share().is_some_and(|info| info.leading()))
        .expect("a follower");
    let room = unique("r");
    follower
        .socket()
        .add_standing("room", join(&room), Some(room.clone()))
        .expect("join registered");
    let id = follower
        .socket()
        .send(json!({"socketType": "chat.send", "room": room, "text": "via the leader"}))
        .expect("queued");
    wait_until("the follower's message to be acked", SHORT, || {
        follower.socket().message_state(&id) == Some(DeliveryState::Acked)
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_leader_that_drops_a_shared_subscription_keeps_it_for_the_other_tab() {
    proxy("restore").await;
    let share = ShareOptions::new(unique("share-"));
    let tabs: Vec<Mounted> = (0..2)
        .map(|_| {
            Mounted::mount(yew::props!(HarnessProps {
                url: AttrValue::from(proxy_ws_url().to_owned()),
                config: reconnect_storm_config(),
                probe: Probe::default(),
                share: Some(share.clone()),
                listening: true,
                listen_to: AttrValue::from("joined"),
            }))
        })
        .collect();
    for tab in &tabs {
        tab.wait_for_status("open", SHORT).await;
    }
    let leading = |t: &&Mounted| t.socket().share().is_some_and(|info| info.leading());
    wait_until("one tab to lead", SHORT, || {
        tabs.iter().filter(leading).count() == 1
    })
    .await;
    let leader = tabs.iter().find(leading).expect("a leader");
    let follower = tabs.iter().find(|t| !leading(t)).expect("a follower");
    let room = unique("r");
    let joined = |tab: &Mounted| {
        tab.probe
            .received_of("joined")
            .iter()
            .filter(|m| m.value["stream"] == room.as_str())
            .count()
    };
    for tab in &tabs {
        tab.socket()
            .add_standing("room", join(&room), Some(room.clone()))
            .expect("join registered");
    }
    wait_until("the follower to see the room joined", SHORT, || {
        joined(follower) >= 1
    })
    .await;

    // The leader lets go; the follower still holds the subscription, so the
    // connection must keep re-sending it.
    assert!(leader.socket().remove_standing("room").is_some());
    let before = joined(follower);
    twenty_cuts(std::slice::from_ref(leader)).await;
    wait_until(
        "the room to be joined again after the reconnects",
        SHORT,
        || joined(follower) > before,
    )
    .await;
}

#[wasm_bindgen_test]
async fn typed_subscriptions_decode_and_a_mismatch_is_reported_not_thrown() {
    proxy("restore").await;
    let room = unique("r");
    let app = Mounted::with_typed(server_ws_url(), fast_config(), false, true);
    app.wait_for_status("open", SHORT).await;
    app.socket()
        .add_standing("room", join(&room), Some(room.clone()))
        .expect("join registered");

    wait_until("a decoded presence for our room", SHORT, || {
        app.probe.presence.0.borrow().iter().any(|p| p.room == room)
    })
    .await;
    let presence = app.probe.presence.0.borrow().clone();
    let ours = presence.iter().find(|p| p.room == room).cloned();
    assert_eq!(ours.map(|p| p.users.len()), Some(1), "{presence:?}");

    wait_until("the decode failure to be reported", SHORT, || {
        matches!(app.socket().last_error(), Some(SocketError::Decode { .. }))
    })
    .await;
    let Some(SocketError::Decode {
        socket_type,
        message,
    }) = app.socket().last_error()
    else {
        unreachable!("checked above");
    };
    assert_eq!(socket_type, "presence");
    assert!(
        message.contains("users") || message.contains("invalid type"),
        "{message}"
    );
    // The link is unharmed.
    assert_eq!(app.status().as_deref(), Some("open"));
}

fn fire_window_event(name: &str) {
    let window = web_sys::window().expect("a window");
    let event = web_sys::Event::new(name).expect("an event");
    window.dispatch_event(&event).expect("dispatched");
}

#[wasm_bindgen_test]
async fn offline_pauses_retries_and_online_reconnects_at_once() {
    proxy("restore").await;
    // A long backoff: only `online` can bring the link back quickly.
    let config = Config {
        backoff: BackoffConfig {
            base: 60_000,
            factor: 1.5,
            cap: 60_000,
            jitter: Jitter::None,
        },
        ..fast_config()
    };
    let app = Mounted::new(proxy_ws_url(), config, false);
    app.wait_for_status("open", SHORT).await;

    proxy("cut").await;
    fire_window_event("offline");
    app.wait_for_status("offline", SHORT).await;
    let message = text_of(&app.root, ".hl-banner__message").unwrap_or_default();
    assert!(message.contains("offline"), "banner said {message:?}");
    let attempts = app.socket().stats().connect_attempts;

    proxy("restore").await;
    fire_window_event("online");
    app.wait_for_status("open", SHORT).await;
    assert!(
        app.socket().stats().connect_attempts > attempts,
        "online started a new attempt without waiting out the minute-long backoff"
    );
}

fn stored(key: &str) -> Option<String> {
    web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|storage| storage.get_item(key).ok().flatten())
}

#[wasm_bindgen_test]
async fn unsent_messages_survive_a_reload_and_go_out_once() {
    proxy("restore").await;
    let room = unique("r");
    let key = unique("heartline.test.outbox.");
    let text = unique("typed before the reload ");

    // First page: the link is cut, a message is typed, the page goes away.
    let first = Mounted::mount(yew::props!(HarnessProps {
        url: AttrValue::from(proxy_ws_url()),
        config: fast_config(),
        probe: Probe::default(),
        persist_key: Some(AttrValue::from(key.clone())),
    }));
    first.wait_for_status("open", SHORT).await;
    first.join_and_read_history(&room).await;
    proxy("cut").await;
    let root = first.root.clone();
    wait_until("the link to drop", SHORT, || {
        banner_status(&root).as_deref() != Some("open")
    })
    .await;
    let id = first.socket().send(chat(&room, &text)).expect("queued");
    let saved = stored(&key).unwrap_or_default();
    assert!(saved.contains(id.as_str()), "saved outbox: {saved:?}");
    drop(first);
    proxy("restore").await;

    // Second page, same storage: the message goes out by itself, once.
    let second = Mounted::mount(yew::props!(HarnessProps {
        url: AttrValue::from(server_ws_url()),
        config: fast_config(),
        probe: Probe::default(),
        listening: true,
        persist_key: Some(AttrValue::from(key.clone())),
    }));
    second.wait_for_status("open", SHORT).await;
    let acked = poll_until(SHORT, || {
        second.socket().message_state(&id) == Some(DeliveryState::Acked)
    })
    .await;
    assert!(
        acked,
        "the restored message was not acked: {:?}",
        second.socket().message_state(&id)
    );
    wait_until("the saved outbox to be cleared", SHORT, || {
        stored(&key).is_none()
    })
    .await;

    second.join_and_read_history(&room).await;
    assert_eq!(
        second.chat_messages_with("text", &text),
        1,
        "the server holds the message exactly once"
    );
}
