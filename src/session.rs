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
