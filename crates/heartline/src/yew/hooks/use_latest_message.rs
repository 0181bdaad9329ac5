use std::rc::Rc;

use yew::prelude::*;

use crate::yew::hooks::frame::use_frame_render;
use crate::yew::hooks::{SocketMessage, use_socket, use_subscription};

/// The latest `T` the server sent (frames of type `T::SOCKET_TYPE`), for a
/// component that shows only the newest value (a gauge, a status line).
/// Every message is decoded as it arrives, but the component re-renders at
/// most once per animation frame, however fast they come. Starts from the
/// last message of that type the provider saw, so a component mounted late
/// is not empty. A message that does not decode goes to the provider's
/// `on_error` (and `last_error`), like [`use_subscription`].
///
/// ```no_run
/// use heartline::yew::{use_latest_message, SocketMessage};
/// use yew::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Sample { cpu: f64 }
/// impl SocketMessage for Sample { const SOCKET_TYPE: &'static str = "metrics.sample"; }
///
/// #[function_component(Cpu)]
/// fn cpu() -> Html {
///     match use_latest_message::<Sample>() {
///         Some(sample) => html! { <meter value={sample.cpu.to_string()} max="100" /> },
///         None => html! { "waiting for data…" },
///     }
/// }
/// ```
#[hook]
pub fn use_latest_message<T: SocketMessage>() -> Option<Rc<T>> {
    let socket = use_socket();
    let latest = use_mut_ref(|| {
        socket
            .last(T::SOCKET_TYPE)
            .and_then(|message| T::deserialize(&*message.value).ok())
            .map(Rc::new)
    });
    let render = use_frame_render();
    {
        let latest = latest.clone();
        use_subscription::<T, _>(move |message| {
            *latest.borrow_mut() = Some(Rc::new(message));
            render.schedule();
        });
    }
    latest.borrow().clone()
}
