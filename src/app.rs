//! The app shell: one socket provider for the whole app, the connection
//! banner, and the pages.

use heartline::yew::{ConnectionBanner, SocketProvider, use_socket_handler};
use serde_json::{Value, json};
use yew::prelude::*;
use yew_hooks::use_local_storage;

use crate::components::connection_panel::ConnectionPanel;
use crate::config::socket_url;

const NAME_KEY: &str = "heartline.name";
/// The session token from the server's `welcome`: presenting it again keeps
/// the same identity, so the server recognises re-sent message ids.
const TOKEN_KEY: &str = "heartline.token";
/// Unsent messages, kept across reloads.
const OUTBOX_KEY: &str = "heartline.outbox";

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// A display name for this browser: kept in localStorage, `guest-NNNN` at
/// first.
#[hook]
fn use_display_name() -> String {
    let stored = use_local_storage::<String>(NAME_KEY.to_owned());
    let fallback = use_memo((), |_| {
        format!("guest-{:04}", (js_sys::Math::random() * 10_000.0) as u32)
    });
    {
        let stored = stored.clone();
        let fallback = (*fallback).clone();
        use_effect_with((), move |_| {
            if stored.is_none() {
                stored.set(fallback);
            }
        });
    }
    (*stored).clone().unwrap_or_else(|| (*fallback).clone())
}

/// The greeting for each (re)connect: the name, and the token of the last
/// session if there is one. Read afresh every time, so a renewed token is
/// used and never a stale one.
fn hello(name: &str) -> Value {
    let token = local_storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten());
    match token {
        Some(token) => json!({ "socketType": "hello", "name": name, "token": token }),
        None => json!({ "socketType": "hello", "name": name }),
    }
}

/// Keeps the token of each `welcome`.
#[function_component(SessionKeeper)]
fn session_keeper() -> Html {
    use_socket_handler("welcome", |welcome| {
        if let (Some(token), Some(storage)) = (welcome.value["token"].as_str(), local_storage()) {
            // Without storage the identity lasts as long as the page does.
            let _ = storage.set_item(TOKEN_KEY, token);
        }
    });
    html! {}
}

/// The root component.
#[function_component(App)]
pub fn app() -> Html {
    let url = use_memo((), |_| socket_url());
    let name = use_display_name();
    let greeting = {
        let name = name.clone();
        Callback::from(move |()| Some(hello(&name)))
    };
    html! {
        <SocketProvider
            url={AttrValue::from((*url).clone())}
            greeting={greeting}
            persist_key={AttrValue::from(OUTBOX_KEY)}
        >
            <SessionKeeper />
            <main class="shell">
                <header class="shell__header">
                    <h1>{ "Heartline" }</h1>
                    <span class="shell__who">{ format!("signed in as {name}") }</span>
                </header>
                <ConnectionBanner />
                <ConnectionPanel />
            </main>
        </SocketProvider>
    }
}
