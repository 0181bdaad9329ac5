//! Who this browser is to the server: the display name, the session token
//! from `welcome`, and where both (and the unsent messages) are kept.

use heartline::yew::use_subscription;
use heartline_protocol::ClientMessage;
use yew::prelude::*;

use crate::messages::Welcome;
use crate::storage;

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
///
/// ```
/// use heartline_app::session::socket_origin;
/// assert_eq!(socket_origin("WSS://Chat.Example.com/ws?x=1"), "wss://chat.example.com");
/// ```
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
/// use heartline_app::session::session_token_key;
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
/// use heartline_app::session::outbox_key;
/// assert_eq!(outbox_key("wss://a.example/ws"), "heartline.outbox@wss://a.example");
/// ```
pub fn outbox_key(resolved_url: &str) -> String {
    format!("{OUTBOX_KEY}@{}", socket_origin(resolved_url))
}

/// The localStorage keys of the app's identity on a list of servers: the
/// session token and the unsent messages.
///
/// They must not change when the app fails over from one server of the
/// list to another (the token is the identity the servers de-duplicate
/// re-sent messages by, and the outbox must go out after the move), so
/// they are those of the **first** URL of the list, whichever server is in
/// use. One exception keeps the promise of `?ws=` links: for a list of
/// several servers taken from the page address, the keys name the origins
/// of all of them, so a crafted link that puts a known server first never
/// sends that server's token to the others.
///
/// ```
/// use heartline_app::session::{StorageKeys, outbox_key, session_token_key};
/// let deployment = vec!["wss://a.example/ws".to_owned(), "wss://b.example/ws".to_owned()];
/// let keys = StorageKeys::for_servers(&deployment, false);
/// // The first server's keys: the same as with that server alone.
/// assert_eq!(keys.token, session_token_key("wss://a.example/ws"));
/// assert_eq!(keys.outbox, outbox_key("wss://a.example/ws"));
///
/// // The same list from a link gets keys of its own.
/// let link = StorageKeys::for_servers(&deployment, true);
/// assert_eq!(link.token, "heartline.token@wss://a.example wss://b.example");
/// assert_ne!(link.token, keys.token);
/// // A link with one server keeps that server's keys, as before.
/// assert_eq!(StorageKeys::for_servers(&deployment[..1], true), keys);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageKeys {
    /// Where the session token is kept (see [`session_token_key`]).
    pub token: String,
    /// Where the unsent messages are kept (see [`outbox_key`]).
    pub outbox: String,
}

impl StorageKeys {
    /// The keys for the resolved socket URLs the app dials, in failover
    /// order; `from_link` when they came from the page address.
    pub fn for_servers(resolved_urls: &[String], from_link: bool) -> StorageKeys {
        let mut origins: Vec<String> = Vec::new();
        for url in resolved_urls {
            let origin = socket_origin(url);
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        let scope = if from_link {
            origins.join(" ")
        } else {
            origins.into_iter().next().unwrap_or_default()
        };
        StorageKeys {
            token: format!("{TOKEN_KEY}@{scope}"),
            outbox: format!("{OUTBOX_KEY}@{scope}"),
        }
    }
}

/// The greeting for each (re)connect: the name, and the token this server
/// issued in its last session if there is one. Read afresh every time, so a
/// renewed token is used and never a stale one.
pub fn hello(name: &str, token_key: &str) -> ClientMessage {
    ClientMessage::Hello {
        name: name.to_owned(),
        token: storage::get(token_key),
    }
}

/// Props of [`SessionKeeper`].
#[derive(Properties, PartialEq, Debug)]
pub struct SessionKeeperProps {
    /// Where this server's token is kept.
    pub token_key: AttrValue,
}

/// Keeps the token of each `welcome`, under the server's own key. Without
/// storage the identity lasts as long as the page does.
#[function_component(SessionKeeper)]
pub fn session_keeper(props: &SessionKeeperProps) -> Html {
    let token_key = props.token_key.clone();
    use_subscription::<Welcome, _>(move |welcome| storage::set(&token_key, &welcome.token));
    html! {}
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
