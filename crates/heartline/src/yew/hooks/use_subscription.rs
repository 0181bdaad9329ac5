use serde::de::DeserializeOwned;
use yew::prelude::*;
use yew_hooks::use_latest;

use crate::core::Inbound;
use crate::yew::error::SocketError;
use crate::yew::hooks::{use_socket, use_socket_handler};

/// A server message type with a fixed `socketType`, for
/// [`use_subscription`].
///
/// ```
/// use heartline::yew::SocketMessage;
///
/// #[derive(serde::Deserialize)]
/// struct Presence { room: String, users: Vec<String> }
///
/// impl SocketMessage for Presence {
///     const SOCKET_TYPE: &'static str = "presence";
/// }
/// assert_eq!(Presence::SOCKET_TYPE, "presence");
/// ```
pub trait SocketMessage: DeserializeOwned + 'static {
    /// The `socketType` of frames that decode to this type.
    const SOCKET_TYPE: &'static str;
}

/// Calls `handler` with every `T` the server sends (frames whose
/// `socketType` is `T::SOCKET_TYPE`), decoded. A frame that does not decode
/// is reported to the provider's `on_error` as [`SocketError::Decode`] and
/// skipped; it never panics. Registered on mount, removed on unmount, always
/// the latest `handler`.
///
/// ```no_run
/// use heartline::yew::{use_subscription, SocketMessage};
/// use yew::prelude::*;
///
/// #[derive(serde::Deserialize, Clone)]
/// struct Presence { room: String, users: Vec<String> }
/// impl SocketMessage for Presence { const SOCKET_TYPE: &'static str = "presence"; }
///
/// #[function_component(Online)]
/// fn online() -> Html {
///     let users = use_state(Vec::new);
///     {
///         let users = users.clone();
///         use_subscription::<Presence, _>(move |p| users.set(p.users));
///     }
///     html! { <p>{ users.join(", ") }</p> }
/// }
/// ```
#[hook]
pub fn use_subscription<T, F>(handler: F)
where
    T: SocketMessage,
    F: Fn(T) + 'static,
{
    let socket = use_socket();
    let latest = use_latest(handler);
    use_socket_handler(
        T::SOCKET_TYPE,
        move |message: Inbound| match T::deserialize(&*message.value) {
            Ok(decoded) => (latest.current())(decoded),
            Err(error) => socket.report(SocketError::Decode {
                socket_type: T::SOCKET_TYPE.to_owned(),
                message: error.to_string(),
            }),
        },
    );
}
