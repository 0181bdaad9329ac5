use std::rc::Rc;

use yew::prelude::*;
use yew_hooks::use_latest;

use crate::core::Inbound;
use crate::yew::hooks::use_socket;

/// Calls `handler` with every server message whose `socketType` is
/// `socket_type`, from the nearest provider: registered on mount, removed on
/// unmount, and always the latest `handler` (a closure made on each render
/// never re-registers). Messages of a stream arrive once each, in order.
///
/// ```no_run
/// use heartline::yew::use_socket_handler;
/// use yew::prelude::*;
///
/// #[function_component(Pings)]
/// fn pings() -> Html {
///     let count = use_state(|| 0);
///     {
///         let count = count.clone();
///         use_socket_handler("presence", move |_msg| count.set(*count + 1));
///     }
///     html! { <p>{ *count }</p> }
/// }
/// ```
#[hook]
pub fn use_socket_handler<F>(socket_type: &str, handler: F)
where
    F: Fn(Inbound) + 'static,
{
    let socket = use_socket();
    let latest = use_latest(handler);
    let driver = socket.driver_ptr() as usize;
    use_effect_with((driver, socket_type.to_owned()), move |(_, socket_type)| {
        let guard = socket.subscribe(
            socket_type,
            Rc::new(move |message: &Inbound| (latest.current())(message.clone())),
        );
        move || drop(guard)
    });
}
