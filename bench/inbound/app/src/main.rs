//! The wasm variants of `scripts/bench inbound` (client inbound throughput
//! in headless Chromium), one page chosen by `?v=`:
//!
//! - `hooks`: yew-hooks' `use_websocket` with an `onmessage` callback,
//!   serde_json into the protocol's payload structs, dispatched by
//!   `socketType` (read first, borrowed);
//! - `handler`: the socket layer through `use_socket_handler`;
//! - `subscription`: the socket layer through `use_subscription::<T>`;
//! - `render`: the socket layer with one component showing a live count,
//!   folded with `use_message_fold` (at most one render per frame).
//!
//! Every variant handles `chat.message` and `metrics.sample`, checks the
//! chat `seq` order, and when `?n=` messages have arrived publishes
//! `window.__bench` (counts, milliseconds from the first message to the
//! last, and the animation frames and renders over that interval) for the
//! driver, `crates/heartline-bench/src/bin/bench-inbound.rs`. The page asks
//! the push server to start with a `bench.start` frame once its handlers
//! are registered.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use heartline::core::{Config, ConnectionStatus};
use heartline::yew::{
    SocketMessage, SocketProvider, use_message_fold, use_socket, use_socket_handler,
    use_subscription,
};
use heartline_protocol::{ChatMessage, MetricsSample};
use serde::Deserialize;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use yew::prelude::*;
use yew_hooks::{UseWebSocketOptions, UseWebSocketReadyState, use_websocket_with_options};

/// A frame's `socketType`, borrowed from the text (the other fields are
/// skipped, not built).
#[derive(Debug, Deserialize)]
struct Tag<'a> {
    #[serde(rename = "socketType", borrow)]
    socket_type: &'a str,
}

/// The frame that asks the push server to start.
const START: &str = r#"{"socketType":"bench.start"}"#;

/// A chat message, as the socket layer's typed hooks decode it.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct Chat(ChatMessage);

impl SocketMessage for Chat {
    const SOCKET_TYPE: &'static str = ChatMessage::SOCKET_TYPE;
}

/// A metrics sample, as the socket layer's typed hooks decode it.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct Sample(MetricsSample);

impl SocketMessage for Sample {
    const SOCKET_TYPE: &'static str = MetricsSample::SOCKET_TYPE;
}

/// The run's tally; never rendered, so plain cells (the render variant
/// renders its own state).
#[derive(Debug, Default)]
struct Tally {
    expected: u64,
    received: Cell<u64>,
    chat: Cell<u64>,
    metrics: Cell<u64>,
    other: Cell<u64>,
    last_seq: Cell<u64>,
    out_of_order: Cell<u64>,
    checksum: Cell<f64>,
    first_ms: Cell<f64>,
    first_frame: Cell<f64>,
    renders: Cell<u64>,
    /// Renders before the first message (mount, connection status).
    first_renders: Cell<u64>,
    variant: &'static str,
}

thread_local! {
    static TALLY: RefCell<Option<Rc<Tally>>> = const { RefCell::new(None) };
}

fn tally() -> Rc<Tally> {
    TALLY.with(|t| t.borrow().clone()).unwrap_or_default()
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn frames() -> f64 {
    web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w, &JsValue::from_str("__frames")).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

impl Tally {
    fn chat(&self, seq: u64) {
        if seq != self.last_seq.get() + 1 {
            self.out_of_order.set(self.out_of_order.get() + 1);
        }
        self.last_seq.set(seq);
        self.chat.set(self.chat.get() + 1);
        self.count();
    }

    fn metrics(&self, cpu: f32) {
        self.checksum.set(self.checksum.get() + f64::from(cpu));
        self.metrics.set(self.metrics.get() + 1);
        self.count();
    }

    fn other(&self) {
        self.other.set(self.other.get() + 1);
        self.count();
    }

    fn count(&self) {
        let received = self.received.get() + 1;
        self.received.set(received);
        if received == 1 {
            self.first_ms.set(now_ms());
            self.first_frame.set(frames());
            self.first_renders.set(self.renders.get());
        }
        if received == self.expected {
            self.publish();
        }
    }

    /// `window.__bench`, read by the driver.
    fn publish(&self) {
        let result = json!({
            "variant": self.variant,
            "received": self.received.get(),
            "chat": self.chat.get(),
            "metrics": self.metrics.get(),
            "other": self.other.get(),
            "out_of_order": self.out_of_order.get(),
            "ms": now_ms() - self.first_ms.get(),
            "frames": frames() - self.first_frame.get(),
            "renders": self.renders.get() - self.first_renders.get(),
            "checksum": self.checksum.get(),
        });
        let parsed = js_sys::JSON::parse(&result.to_string()).unwrap_or(JsValue::NULL);
        if let Some(window) = web_sys::window() {
            // Nothing to do if it fails: the driver times out and says so.
            let _ = js_sys::Reflect::set(&window, &JsValue::from_str("__bench"), &parsed);
        }
    }
}

/// Variant 2: yew-hooks `use_websocket`; its `message` state re-renders
/// this component per message, as it does for any user of the hook.
#[function_component(HooksVariant)]
fn hooks_variant() -> Html {
    let tally = tally();
    tally.renders.set(tally.renders.get() + 1);
    let url = use_memo((), |()| socket_url());
    let socket = {
        let tally = tally.clone();
        use_websocket_with_options(
            (*url).clone(),
            UseWebSocketOptions {
                onmessage: Some(Box::new(move |frame: String| {
                    // Read the tag, then decode the payload struct straight
                    // from the text: no JSON value, no buffering through
                    // the internally tagged enum.
                    let tag = serde_json::from_str::<Tag<'_>>(&frame).map(|t| t.socket_type);
                    match tag {
                        Ok(ChatMessage::SOCKET_TYPE) => {
                            match serde_json::from_str::<ChatMessage>(&frame) {
                                Ok(chat) => tally.chat(chat.seq),
                                Err(_) => tally.other(),
                            }
                        }
                        Ok(MetricsSample::SOCKET_TYPE) => {
                            match serde_json::from_str::<MetricsSample>(&frame) {
                                Ok(sample) => tally.metrics(sample.cpu_total),
                                Err(_) => tally.other(),
                            }
                        }
                        _ => tally.other(),
                    }
                })),
                ..Default::default()
            },
        )
    };
    let open = *socket.ready_state == UseWebSocketReadyState::Open;
    {
        let socket = socket.clone();
        use_effect_with(open, move |open| {
            if *open {
                socket.send(START.to_owned());
            }
        });
    }
    html! { <p>{ format!("{:?}", *socket.ready_state) }</p> }
}

/// Variant 3: `use_socket_handler`, reading fields from the JSON value.
#[function_component(HandlerVariant)]
fn handler_variant() -> Html {
    let tally = tally();
    {
        let tally = tally.clone();
        use_socket_handler(ChatMessage::SOCKET_TYPE, move |message| {
            tally.chat(
                message
                    .value
                    .get("seq")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            );
        });
    }
    use_socket_handler(MetricsSample::SOCKET_TYPE, move |message| {
        let cpu = message.value.get("cpu_total").and_then(Value::as_f64);
        #[allow(clippy::cast_possible_truncation)]
        tally.metrics(cpu.unwrap_or(0.0) as f32);
    });
    html! { <Starter /> }
}

/// Variant 4: `use_subscription::<T>`, typed.
#[function_component(SubscriptionVariant)]
fn subscription_variant() -> Html {
    let tally = tally();
    {
        let tally = tally.clone();
        use_subscription::<Chat, _>(move |Chat(chat)| tally.chat(chat.seq));
    }
    use_subscription::<Sample, _>(move |Sample(sample)| tally.metrics(sample.cpu_total));
    html! { <Starter /> }
}

/// What the render variant shows.
#[derive(Debug, Default)]
struct Live {
    chat: u64,
    metrics: u64,
}

/// Variant 5: one component showing a live count, folded as messages
/// arrive and rendered at most once per animation frame.
#[function_component(RenderVariant)]
fn render_variant() -> Html {
    let tally = tally();
    tally.renders.set(tally.renders.get() + 1);
    let live = {
        let tally = tally.clone();
        use_message_fold::<Chat, Live>(Live::default, move |live, Chat(chat)| {
            live.chat += 1;
            tally.chat(chat.seq);
        })
    };
    {
        // Folded into the same state without a render of its own: the
        // chat fold's frame render shows it.
        let live = live.clone();
        use_subscription::<Sample, _>(move |Sample(sample)| {
            live.borrow_mut().metrics += 1;
            tally.metrics(sample.cpu_total);
        });
    }
    let live = live.borrow();
    html! {
        <>
            <p id="live">{ live.chat }{ " chat messages, " }{ live.metrics }{ " samples" }</p>
            <Starter />
        </>
    }
}

/// Sends `bench.start` once the socket layer is open (its handlers are
/// registered by then: they subscribe on mount, before the socket opens).
#[function_component(Starter)]
fn starter() -> Html {
    let socket = use_socket();
    let status = socket.status();
    let open = matches!(status, ConnectionStatus::Open { .. });
    use_effect_with(open, move |open| {
        if let (true, Ok(start)) = (*open, serde_json::from_str::<Value>(START)) {
            // A refusal shows as a run that never starts; the driver times
            // out and reports it.
            let _ = socket.send_volatile(start);
        }
    });
    html! { <p>{ format!("{status:?}") }</p> }
}

/// `ws://<page host>/ws`; yew-hooks wants an absolute URL.
fn socket_url() -> String {
    let host = web_sys::window()
        .and_then(|w| w.location().host().ok())
        .unwrap_or_default();
    format!("ws://{host}/ws")
}

fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

#[function_component(App)]
fn app() -> Html {
    let variant = query("v").unwrap_or_default();
    let expected = query("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    let (name, page): (&'static str, Html) = match variant.as_str() {
        "hooks" => ("yew-hooks", html! { <HooksVariant /> }),
        "handler" => ("layer-handler", html! { <HandlerVariant /> }),
        "subscription" => ("layer-subscription", html! { <SubscriptionVariant /> }),
        "render" => ("layer-render", html! { <RenderVariant /> }),
        _ => return html! { <p>{ "unknown variant: ?v=hooks|handler|subscription|render" }</p> },
    };
    TALLY.with(|t| {
        t.borrow_mut().get_or_insert_with(|| {
            Rc::new(Tally {
                expected,
                variant: name,
                ..Tally::default()
            })
        });
    });
    if name == "yew-hooks" {
        return page;
    }
    html! {
        <SocketProvider url="/ws" config={Config::default()}>
            { page }
        </SocketProvider>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
