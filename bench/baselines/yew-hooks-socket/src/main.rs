//! Bundle-size baseline: a minimal app on yew-hooks' `use_websocket`. It
//! connects to `/ws` on the page's host, parses every text frame with
//! serde_json and shows how many `chat.message` frames arrived and the last
//! one's text: the same job as the `baseline-heartline-socket` app, so the
//! two bundles differ by what the socket layer itself costs.

use std::rc::Rc;

use serde_json::Value;
use yew::prelude::*;
use yew_hooks::{UseWebSocketOptions, use_websocket_with_options};

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

/// `ws://<page host>/ws` (`wss://` on an https page); yew-hooks wants an
/// absolute URL.
fn socket_url() -> String {
    let location = web_sys::window().map(|window| window.location());
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_default();
    let scheme = match location.and_then(|l| l.protocol().ok()).as_deref() {
        Some("https:") => "wss",
        _ => "ws",
    };
    format!("{scheme}://{host}/ws")
}

#[function_component(Messages)]
fn messages() -> Html {
    let received = use_reducer(Received::default);
    let url = use_memo((), |()| socket_url());
    let socket = {
        let dispatch = received.dispatcher();
        use_websocket_with_options(
            (*url).clone(),
            UseWebSocketOptions {
                onmessage: Some(Box::new(move |frame: String| {
                    let Ok(value) = serde_json::from_str::<Value>(&frame) else {
                        return;
                    };
                    if value.get("socketType").and_then(Value::as_str) == Some(SHOWN_TYPE) {
                        let text = value
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        dispatch.dispatch(text.to_owned());
                    }
                })),
                ..Default::default()
            },
        )
    };
    html! {
        <main>
            <p>{ format!("{:?}", *socket.ready_state) }</p>
            <p>{ received.count }{ " messages" }</p>
            <p>{ received.last_text.clone() }</p>
        </main>
    }
}

fn main() {
    yew::Renderer::<Messages>::new().render();
}
