//! The server frames the app listens to, as [`SocketMessage`] types.
//!
//! Every type here decodes through `heartline-protocol`'s [`ServerMessage`],
//! so the wire shape is written once, in the protocol crate: these are views
//! of one of its variants, keyed by that variant's `socketType`. (The trait
//! and the protocol live in different crates, hence the app-side wrappers.)

use heartline::yew::SocketMessage;
use heartline_protocol::{ChatMessage, MetricsSample, RoomSummary, ServerMessage};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

/// Declares a view of one `ServerMessage` variant: a struct with the given
/// fields that decodes only from frames of that variant.
macro_rules! server_view {
    (
        $(#[$meta:meta])*
        $name:ident = $socket_type:literal, $variant:ident { $($field:ident : $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name { $(pub $field: $ty),* }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                match ServerMessage::deserialize(deserializer)? {
                    ServerMessage::$variant { $($field),* , .. } => Ok($name { $($field),* }),
                    _ => Err(D::Error::custom(concat!("expected a `", $socket_type, "` frame"))),
                }
            }
        }

        impl SocketMessage for $name {
            const SOCKET_TYPE: &'static str = $socket_type;
        }
    };
}

server_view! {
    /// `welcome`: the server accepted our `hello`.
    Welcome = "welcome", Welcome { name: String, token: String }
}

server_view! {
    /// `rooms`: the live room directory.
    Rooms = "rooms", Rooms { rooms: Vec<RoomSummary> }
}

server_view! {
    /// `joined`: a room's history was sent; it is live from here on.
    Joined = "joined", Joined { stream: String, last_seq: u64, epoch: u64 }
}

server_view! {
    /// `presence`: who is in a room now.
    Presence = "presence", Presence { room: String, users: Vec<String> }
}

server_view! {
    /// `typing`: someone is typing in a room.
    Typing = "typing", Typing { room: String, from: String }
}

server_view! {
    /// `history`: a page of older messages, answering a `history` request.
    HistoryPage = "history", History { room: String, epoch: u64, messages: Vec<ChatMessage>, has_more: bool }
}

/// `chat.message`: one message of a room's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Chat(pub ChatMessage);

impl<'de> Deserialize<'de> for Chat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match ServerMessage::deserialize(deserializer)? {
            ServerMessage::ChatMessage(message) => Ok(Chat(message)),
            _ => Err(D::Error::custom("expected a `chat.message` frame")),
        }
    }
}

impl SocketMessage for Chat {
    const SOCKET_TYPE: &'static str = "chat.message";
}

/// `metrics.sample`: one reading of the host and the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample(pub MetricsSample);

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match ServerMessage::deserialize(deserializer)? {
            ServerMessage::MetricsSample(sample) => Ok(Sample(sample)),
            _ => Err(D::Error::custom("expected a `metrics.sample` frame")),
        }
    }
}

impl SocketMessage for Sample {
    const SOCKET_TYPE: &'static str = "metrics.sample";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_view_decodes_its_variant_and_refuses_another() {
        let presence: Presence =
            serde_json::from_str(r#"{"socketType":"presence","room":"lobby","users":["ada"]}"#)
                .expect("presence decodes");
        assert_eq!(presence.users, vec!["ada".to_owned()]);
        let wrong = serde_json::from_str::<Presence>(
            r#"{"socketType":"typing","room":"lobby","from":"ada"}"#,
        );
        assert!(wrong.is_err());
    }
}

server_view! {
    /// `error`: something we sent was refused.
    ServerError = "error", Error { code: String, message: String, id: Option<String> }
}
