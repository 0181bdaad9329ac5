//! The app shell: one socket provider for the whole app, the connection
//! banner, and the pages.

use heartline::yew::{ConnectionBanner, SocketProvider, resolve_against_page, use_socket_handler};
use serde_json::{Value, json};
use yew::prelude::*;
use yew_hooks::use_local_storage;

use crate::components::connection_panel::ConnectionPanel;
use crate::config::socket_url;

const NAME_KEY: &str = "heartline.name";
/// The session token from the server's `welcome`: presenting it again keeps
/// the same identity, so the server recognises re-sent message ids. Kept per
/// server origin (see [`session_token_key`]).
const TOKEN_KEY: &str = "heartline.token";
/// Unsent messages, kept across reloads; per server origin too, so they go
/// to the server they were written for.
const OUTBOX_KEY: &str = "heartline.outbox";

/// The scheme and authority of a resolved socket URL
/// (`wss://chat.example.com:8443`), lowercased; the whole URL when it has no
/// `scheme://`.
pub fn socket_origin(resolved_url: &str) -> String {
    let Some((scheme, rest)) = resolved_url.split_once("://") else {
        return resolved_url.to_ascii_lowercase();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // Credentials in the URL are not part of the origin.
    let authority = &rest[..end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// The localStorage key of the session token issued by the server at
/// `resolved_url` (a socket URL already resolved against the page): one key
/// per server origin, so a `?ws=` target never receives a token another
/// server issued.
///
/// ```
/// use heartline_app::app::session_token_key;
/// assert_eq!(session_token_key("ws://127.0.0.1:8080/ws"), "heartline.token@ws://127.0.0.1:8080");
/// assert_ne!(session_token_key("wss://a.example/ws"), session_token_key("wss://b.example/ws"));
/// ```
pub fn session_token_key(resolved_url: &str) -> String {
    format!("{TOKEN_KEY}@{}", socket_origin(resolved_url))
}

/// The localStorage key of the unsent messages for the server at
/// `resolved_url`.
///
/// ```
/// use heartline_app::app::outbox_key;
/// assert_eq!(outbox_key("wss://a.example/ws"), "heartline.outbox@wss://a.example");
/// ```
pub fn outbox_key(resolved_url: &str) -> String {
    format!("{OUTBOX_KEY}@{}", socket_origin(resolved_url))
}

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

/// The greeting for each (re)connect: the name, and the token this server
/// issued in its last session if there is one. Read afresh every time, so a
/// renewed token is used and never a stale one.
fn hello(name: &str, token_key: &str) -> Value {
    let token = local_storage().and_then(|s| s.get_item(token_key).ok().flatten());
    match token {
        Some(token) => json!({ "socketType": "hello", "name": name, "token": token }),
        None => json!({ "socketType": "hello", "name": name }),
    }
}

#[derive(Properties, PartialEq)]
struct SessionKeeperProps {
    /// Where this server's token is kept.
    token_key: AttrValue,
}

/// Keeps the token of each `welcome`, under the server's own key.
#[function_component(SessionKeeper)]
fn session_keeper(props: &SessionKeeperProps) -> Html {
    let token_key = props.token_key.clone();
    use_socket_handler("welcome", move |welcome| {
        if let (Some(token), Some(storage)) = (welcome.value["token"].as_str(), local_storage()) {
            // Without storage the identity lasts as long as the page does.
            let _ = storage.set_item(&token_key, token);
        }
    });
    html! {}
}

/// The root component.
#[function_component(App)]
pub fn app() -> Html {
    // Resolved once here so the storage keys name the server actually
    // dialled (the provider resolves the same way).
    let url = use_memo((), |_| resolve_against_page(&socket_url()));
    let token_key = AttrValue::from(session_token_key(&url));
    let name = use_display_name();
    let greeting = {
        let name = name.clone();
        let token_key = token_key.clone();
        Callback::from(move |()| Some(hello(&name, &token_key)))
    };
    html! {
        <SocketProvider
            url={AttrValue::from((*url).clone())}
            greeting={greeting}
            persist_key={AttrValue::from(outbox_key(&url))}
        >
            <SessionKeeper token_key={token_key} />
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn each_server_origin_has_its_own_token_key() {
        let home = session_token_key("ws://127.0.0.1:8080/ws");
        assert_eq!(home, "heartline.token@ws://127.0.0.1:8080");
        // Another path on the same server shares the token...
        assert_eq!(home, session_token_key("ws://127.0.0.1:8080/other?x=1"));
        // ...another port, host or scheme does not.
        assert_ne!(home, session_token_key("ws://127.0.0.1:9090/ws"));
        assert_ne!(home, session_token_key("ws://evil.example/ws"));
        assert_ne!(home, session_token_key("wss://127.0.0.1:8080/ws"));
        // A host that only starts like ours is another origin.
        assert_ne!(
            home,
            session_token_key("ws://127.0.0.1:8080.evil.example/ws")
        );
        // Case and credentials do not make a new origin.
        assert_eq!(
            session_token_key("WSS://Chat.Example.com/ws"),
            session_token_key("wss://user:pw@chat.example.com/ws")
        );
        assert_ne!(
            outbox_key("ws://a.example/ws"),
            outbox_key("ws://b.example/ws")
        );
    }
}
