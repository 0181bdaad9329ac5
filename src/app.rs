//! The app shell: one socket provider for the whole app, the connection
//! banner, and the pages.

use heartline::yew::{ConnectionBanner, SocketProvider};
use serde_json::json;
use yew::prelude::*;
use yew_hooks::use_local_storage;

use crate::components::connection_panel::ConnectionPanel;
use crate::config::socket_url;

const NAME_KEY: &str = "heartline.name";

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

/// The root component.
#[function_component(App)]
pub fn app() -> Html {
    let url = use_memo((), |_| socket_url());
    let name = use_display_name();
    // Built afresh for every (re)connect, so a changed name is sent next time.
    let greeting = {
        let name = name.clone();
        Callback::from(move |()| Some(json!({ "socketType": "hello", "name": name })))
    };
    html! {
        <SocketProvider url={AttrValue::from((*url).clone())} greeting={greeting}>
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
