//! The server frames the app listens to, as [`SocketMessage`] types.
//!
//! Each type here is a thin wrapper of one `heartline-protocol` payload
//! struct, so the wire shape is written once, in the protocol crate. The
//! wrapper decodes the payload straight from the frame's object (its
//! `socketType` key is ignored) and names the payload's `SOCKET_TYPE`, by
//! which the socket layer dispatches: the internally tagged
//! [`heartline_protocol::ServerMessage`] enum is never decoded in the
//! browser, which keeps serde's buffering deserializer out of the wasm.
//! (The trait and the protocol live in different crates, hence the
//! app-side wrappers.) Each wrapper derefs to its payload; take it apart
//! (`|Presence(presence)| …`) to move fields out.

use heartline::yew::SocketMessage;
use heartline_protocol as protocol;
use serde::Deserialize;

/// Declares a wrapper of one protocol payload, keyed by its `SOCKET_TYPE`.
macro_rules! server_view {
    ($(#[$meta:meta])* $name:ident($payload:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $payload);

        impl SocketMessage for $name {
            const SOCKET_TYPE: &'static str = <$payload>::SOCKET_TYPE;
        }

        impl std::ops::Deref for $name {
            type Target = $payload;

            fn deref(&self) -> &$payload {
                &self.0
            }
        }
    };
}

server_view! {
    /// `welcome`: the server accepted our `hello`.
    Welcome(protocol::Welcome)
}

server_view! {
    /// `rooms`: the live room directory.
    Rooms(protocol::Rooms)
}

server_view! {
    /// `joined`: a room's history was sent; it is live from here on.
    Joined(protocol::Joined)
}

server_view! {
    /// `presence`: who is in a room now.
    Presence(protocol::Presence)
}

server_view! {
    /// `typing`: someone is typing in a room.
    Typing(protocol::Typing)
}

server_view! {
    /// `history`: a page of older messages, answering a `history` request.
    HistoryPage(protocol::HistoryPage)
}

server_view! {
    /// `chat.message`: one message of a room's stream.
    Chat(protocol::ChatMessage)
}

server_view! {
    /// `metrics.sample`: one reading of the host and the server.
    Sample(protocol::MetricsSample)
}

server_view! {
    /// `error`: something we sent was refused.
    ServerError(protocol::ErrorFrame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_view_decodes_its_frame_and_refuses_another() {
        let presence: Presence = serde_json::from_str(
            r#"{"socketType":"presence","room":"lobby","users":["ada"],"count":1}"#,
        )
        .expect("presence decodes");
        assert_eq!(presence.users, vec!["ada".to_owned()]);
        assert_eq!(Presence::SOCKET_TYPE, "presence");
        // A `typing` frame lacks `users`: it is not mistaken for presence.
        let wrong = serde_json::from_str::<Presence>(
            r#"{"socketType":"typing","room":"lobby","from":"ada"}"#,
        );
        assert!(wrong.is_err());
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn views_decode_from_the_parsed_frame_the_socket_layer_hands_over() {
        let frame: serde_json::Value = serde_json::from_str(
            r#"{"socketType":"error","code":"limit_reached","message":"full","retry_after_ms":5}"#,
        )
        .expect("json");
        let ServerError(error) = ServerError::deserialize(&frame).expect("error decodes");
        assert_eq!(
            (error.code.as_str(), error.id, error.retry_after_ms),
            (protocol::error_code::LIMIT_REACHED, None, Some(5))
        );
        assert_eq!(ServerError::SOCKET_TYPE, "error");
        assert_eq!(Chat::SOCKET_TYPE, "chat.message");
        assert_eq!(Sample::SOCKET_TYPE, "metrics.sample");
        assert_eq!(HistoryPage::SOCKET_TYPE, "history");
    }
}
