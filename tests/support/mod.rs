//! Helpers shared by the browser tests: a fresh mount point per test, polling
//! with a deadline (never a fixed sleep), the fault proxy's control API, and a
//! test harness component around a real `SocketProvider`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gloo_timers::future::TimeoutFuture;
use heartline::core::{BackoffConfig, Config, Inbound, Jitter};
use heartline::yew::{
    ConnectionBanner, SocketHandle, SocketMessage, SocketProvider, use_socket, use_socket_handler,
    use_subscription,
};
use serde::Deserialize;
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};
use yew::prelude::*;

fn compile_time(name: &str, value: Option<&'static str>) -> &'static str {
    match value {
        Some(value) => value,
        None => panic!("{name} is set by scripts/test; run the browser tests through it"),
    }
}

/// The demo server's socket URL (scripts/test starts the server on a free
/// port and stops it afterwards).
pub fn server_ws_url() -> &'static str {
    compile_time(
        "HEARTLINE_TEST_WS_URL",
        option_env!("HEARTLINE_TEST_WS_URL"),
    )
}

/// The same server behind the fault-injecting proxy.
pub fn proxy_ws_url() -> &'static str {
    compile_time(
        "HEARTLINE_TEST_PROXY_WS_URL",
        option_env!("HEARTLINE_TEST_PROXY_WS_URL"),
    )
}

fn proxy_control_url() -> &'static str {
    compile_time(
        "HEARTLINE_TEST_PROXY_CONTROL_URL",
        option_env!("HEARTLINE_TEST_PROXY_CONTROL_URL"),
    )
}

/// Switches the proxy: "cut", "stall" or "restore".
pub async fn proxy(mode: &str) {
    let url = format!("{}/{mode}", proxy_control_url());
    let response = gloo_net::http::Request::post(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("proxy control {url}: {e}"));
    assert!(
        response.ok(),
        "proxy control {url}: HTTP {}",
        response.status()
    );
}

/// Connections the proxy holds open right now.
pub async fn proxy_open_connections() -> u64 {
    let url = format!("{}/status", proxy_control_url());
    let status: Value = gloo_net::http::Request::get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("proxy status: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("proxy status body: {e}"));
    status["open_connections"].as_u64().unwrap_or(u64::MAX)
}

/// A new, empty `<div>` appended to `<body>`, so each test renders in
/// isolation (never into the shared `#output`).
pub fn mount_point() -> Element {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("tests run in a browser document");
    let div = document.create_element("div").expect("create div");
    document
        .body()
        .expect("document has a body")
        .append_child(&div)
        .expect("append mount point");
    div
}

/// Quick retries so fault tests take seconds, not minutes.
pub fn fast_config() -> Config {
    Config {
        backoff: BackoffConfig {
            base: 100,
            factor: 1.5,
            cap: 500,
            jitter: Jitter::Full,
        },
        max_retries: None,
        connect_timeout: 2_000,
        min_uptime: 500,
        ..Config::default()
    }
}

/// How long helpers wait for the server.
const SHORT_WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` every 20 ms until it holds, or panics with `what` after
/// `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    if !poll_until(timeout, condition).await {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Polls `condition` every 20 ms until it holds (true) or `timeout` passes
/// (false).
pub async fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = js_sys::Date::now() + timeout.as_millis() as f64;
    loop {
        if condition() {
            return true;
        }
        if js_sys::Date::now() > deadline {
            return false;
        }
        TimeoutFuture::new(20).await;
    }
}

/// Lets the browser run pending work (renders, socket events) for a moment.
pub async fn next_tick() {
    TimeoutFuture::new(0).await;
}

/// The text of the first element matching `selector` under `root`.
pub fn text_of(root: &Element, selector: &str) -> Option<String> {
    root.query_selector(selector)
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        .map(|e| e.inner_text())
}

/// An attribute of the first element matching `selector` under `root`.
pub fn attr_of(root: &Element, selector: &str, attr: &str) -> Option<String> {
    root.query_selector(selector)
        .ok()
        .flatten()
        .and_then(|e| e.get_attribute(attr))
}

/// The banner's `data-status` under `root`.
pub fn banner_status(root: &Element) -> Option<String> {
    attr_of(root, ".hl-banner", "data-status")
}

/// A short random suffix for room and user names, so tests sharing one
/// server never see each other's data.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{:08x}",
        (js_sys::Math::random() * f64::from(u32::MAX)) as u32
    )
}

/// A shared slot a test reads and a component writes; compared by identity
/// so it can sit in props.
#[derive(Debug)]
pub struct Slot<T>(pub Rc<RefCell<T>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(Rc::clone(&self.0))
    }
}

impl<T: Default> Default for Slot<T> {
    fn default() -> Self {
        Slot(Rc::default())
    }
}

impl<T> PartialEq for Slot<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// What a [`Harness`] exposes to the test.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Probe {
    /// The provider's handle, as of the last render.
    pub socket: Slot<Option<SocketHandle>>,
    /// Every distinct banner status seen, in order.
    pub statuses: Slot<Vec<String>>,
    /// Messages received by the listener, if shown.
    pub received: Slot<Vec<Inbound>>,
    /// `presence` messages received by the typed subscriber, if shown.
    pub presence: Slot<Vec<Presence>>,
}

impl Probe {
    pub fn socket(&self) -> SocketHandle {
        self.socket
            .0
            .borrow()
            .clone()
            .expect("the harness rendered its socket probe")
    }

    pub fn received_of(&self, socket_type: &str) -> Vec<Inbound> {
        self.received
            .0
            .borrow()
            .iter()
            .filter(|m| &*m.socket_type == socket_type)
            .cloned()
            .collect()
    }
}

/// Props of [`Harness`].
#[derive(Properties, PartialEq, Debug)]
pub struct HarnessProps {
    pub url: AttrValue,
    #[prop_or_default]
    pub config: Config,
    /// Sent as `hello` on every connect.
    #[prop_or_else(|| AttrValue::from(unique("tester-")))]
    pub name: AttrValue,
    pub probe: Probe,
    /// Mount a listener for `listen_to` (unmounting it must unregister).
    #[prop_or_default]
    pub listening: bool,
    #[prop_or(AttrValue::from("chat.message"))]
    pub listen_to: AttrValue,
    /// Mount typed `presence` subscribers: one that decodes, one whose type
    /// does not match the wire format.
    #[prop_or_default]
    pub typed: bool,
    /// How long the banner shows "Connected".
    #[prop_or(2_500)]
    pub banner_ms: u32,
    /// localStorage key for unsent messages.
    #[prop_or_default]
    pub persist_key: Option<AttrValue>,
    /// Share one connection with the other harnesses of this name (each
    /// plays a tab: its own channel end and lock request).
    #[prop_or_default]
    pub share: Option<heartline::yew::ShareOptions>,
}

/// A real provider with the banner, a probe that hands the socket handle to
/// the test, and an optional listener.
#[function_component(Harness)]
pub fn harness(props: &HarnessProps) -> Html {
    let name = props.name.clone();
    let greeting =
        Callback::from(move |()| Some(json!({"socketType": "hello", "name": name.as_str()})));
    html! {
        <SocketProvider
            url={props.url.clone()}
            config={props.config.clone()}
            {greeting}
            persist_key={props.persist_key.clone()}
            share={props.share.clone()}
        >
            <ConnectionBanner connected_for_ms={props.banner_ms} />
            <SocketProbe probe={props.probe.clone()} />
            if props.listening {
                <Listener probe={props.probe.clone()} socket_type={props.listen_to.clone()} />
            }
            if props.typed {
                <TypedListeners probe={props.probe.clone()} />
            }
        </SocketProvider>
    }
}

#[derive(Properties, PartialEq, Debug)]
struct SocketProbeProps {
    probe: Probe,
}

#[function_component(SocketProbe)]
fn socket_probe(props: &SocketProbeProps) -> Html {
    let socket = use_socket();
    let key = status_key(&socket);
    {
        let mut statuses = props.probe.statuses.0.borrow_mut();
        if statuses.last() != Some(&key) {
            statuses.push(key);
        }
    }
    *props.probe.socket.0.borrow_mut() = Some(socket);
    html! {}
}

fn status_key(socket: &SocketHandle) -> String {
    use heartline::core::ConnectionStatus::*;
    match socket.status() {
        Idle => "idle",
        Connecting { .. } => "connecting",
        Open { .. } => "open",
        Reconnecting { .. } => "reconnecting",
        Offline => "offline",
        Closed => "closed",
        Failed(_) => "failed",
    }
    .to_owned()
}

#[derive(Properties, PartialEq, Debug)]
struct ListenerProps {
    probe: Probe,
    socket_type: AttrValue,
}

#[function_component(Listener)]
fn listener(props: &ListenerProps) -> Html {
    let received = props.probe.received.clone();
    use_socket_handler(&props.socket_type, move |message| {
        received.0.borrow_mut().push(message);
    });
    html! {}
}

/// The server's `presence` message, decoded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Presence {
    pub room: String,
    pub users: Vec<String>,
}

impl SocketMessage for Presence {
    const SOCKET_TYPE: &'static str = "presence";
}

/// A type that claims `presence` but does not match it (`users` is a list on
/// the wire): every message fails to decode.
#[derive(Debug, Clone, Deserialize)]
pub struct MistypedPresence {
    pub users: u32,
}

impl SocketMessage for MistypedPresence {
    const SOCKET_TYPE: &'static str = "presence";
}

#[function_component(TypedListeners)]
fn typed_listeners(props: &ListenerProbeProps) -> Html {
    let presence = props.probe.presence.clone();
    use_subscription::<Presence, _>(move |message| presence.0.borrow_mut().push(message));
    use_subscription::<MistypedPresence, _>(|_| panic!("a mistyped message must not decode"));
    html! {}
}

#[derive(Properties, PartialEq, Debug)]
struct ListenerProbeProps {
    probe: Probe,
}

/// A rendered harness; destroyed when dropped so no provider outlives its
/// test (a leftover one would keep reconnecting through the shared proxy).
pub struct Mounted {
    pub root: Element,
    pub probe: Probe,
    handle: Option<yew::AppHandle<Harness>>,
}

impl Mounted {
    pub fn new(url: &str, config: Config, listening: bool) -> Mounted {
        Mounted::with_typed(url, config, listening, false)
    }

    /// Like [`Mounted::new`], optionally with the typed `presence`
    /// subscribers.
    pub fn with_typed(url: &str, config: Config, listening: bool, typed: bool) -> Mounted {
        Mounted::mount(yew::props!(HarnessProps {
            url: AttrValue::from(url.to_owned()),
            config,
            probe: Probe::default(),
            listening,
            typed,
        }))
    }

    /// Renders a harness with any props.
    pub fn mount(props: HarnessProps) -> Mounted {
        let root = mount_point();
        let probe = props.probe.clone();
        let handle = yew::Renderer::<Harness>::with_root_and_props(root.clone(), props).render();
        Mounted {
            root,
            probe,
            handle: Some(handle),
        }
    }

    /// Re-renders with `listening` changed (mounts or unmounts the listener).
    pub fn set_listening(&mut self, url: &str, config: Config, listening: bool) {
        let props = yew::props!(HarnessProps {
            url: AttrValue::from(url.to_owned()),
            config,
            probe: self.probe.clone(),
            listening,
        });
        if let Some(handle) = self.handle.as_mut() {
            handle.update(props);
        }
    }

    pub fn socket(&self) -> SocketHandle {
        self.probe.socket()
    }

    /// Joins `room` as a standing subscription and waits for the server's
    /// `joined`, which follows the room's history.
    pub async fn join_and_read_history(&self, room: &str) {
        self.socket()
            .add_standing(
                "room",
                json!({"socketType": "join", "room": room}),
                Some(room.to_owned()),
            )
            .expect("join registered");
        wait_until("the history to end with `joined`", SHORT_WAIT, || {
            self.socket()
                .last("joined")
                .is_some_and(|m| m.value["stream"] == room)
        })
        .await;
    }

    /// How many `chat.message`s the listener got whose `field` is `value`.
    pub fn chat_messages_with(&self, field: &str, value: &str) -> usize {
        self.probe
            .received_of("chat.message")
            .iter()
            .filter(|m| m.value[field] == value)
            .count()
    }

    pub fn status(&self) -> Option<String> {
        banner_status(&self.root)
    }

    pub async fn wait_for_status(&self, wanted: &str, timeout: Duration) {
        let root = self.root.clone();
        let reached = poll_until(timeout, || banner_status(&root).as_deref() == Some(wanted)).await;
        if !reached {
            panic!(
                "timed out after {timeout:?} waiting for banner status {wanted:?}; banner is {:?}, \
                 statuses seen {:?}, core status {:?}, stats {:?}",
                banner_status(&self.root),
                self.probe.statuses.0.borrow(),
                self.probe.socket.0.borrow().as_ref().map(|s| s.status()),
                self.probe.socket.0.borrow().as_ref().map(|s| s.stats()),
            );
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.destroy();
        }
        self.root.remove();
    }
}
