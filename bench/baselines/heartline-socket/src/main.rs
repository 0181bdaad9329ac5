//! Bundle-size baseline: a minimal app on the Heartline socket layer, one
//! `SocketProvider` (on `/ws`, the default config) and one
//! `use_socket_handler`. It shows how many `chat.message` frames arrived and
//! the last one's text: the same job as the `baseline-yew-hooks-socket` app,
//! so the two bundles differ by what the socket layer itself costs.

use std::rc::Rc;

use heartline::yew::{SocketProvider, use_socket, use_socket_handler};
use serde_json::Value;
use yew::prelude::*;

/// The frames this app shows.
const SHOWN_TYPE: &str = "chat.message";

/// What the page shows: the count of frames received and the last text.
#[derive(Debug, Default, PartialEq)]
struct Received {
    count: u64,
    last_text: String,
}

impl Reducible for Received {
    type Action = String;

    fn reduce(self: Rc<Self>, text: String) -> Rc<Self> {
        Rc::new(Self {
            count: self.count + 1,
            last_text: text,
        })
    }
}

#[function_component(Messages)]
fn messages() -> Html {
    let received = use_reducer(Received::default);
    let socket = use_socket();
    {
        let dispatch = received.dispatcher();
        use_socket_handler(SHOWN_TYPE, move |message| {
            let text = message
                .value
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            dispatch.dispatch(text.to_owned());
        });
    }
    html! {
        <main>
            <p>{ format!("{:?}", socket.status()) }</p>
            <p>{ received.count }{ " messages" }</p>
            <p>{ received.last_text.clone() }</p>
        </main>
    }
}

#[function_component(App)]
fn app() -> Html {
    html! {
        <SocketProvider url="/ws">
            <Messages />
        </SocketProvider>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
