//! The app shell.

use yew::prelude::*;

use crate::components::connection_probe::ConnectionProbe;
use crate::config::socket_url;

/// The root component.
#[function_component(App)]
pub fn app() -> Html {
    let url = use_memo((), |_| socket_url());
    html! {
        <main class="shell">
            <header class="shell__header">
                <h1>{ "Heartline" }</h1>
                <ConnectionProbe url={AttrValue::from((*url).clone())} />
            </header>
        </main>
    }
}
