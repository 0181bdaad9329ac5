//! The app's own components in a real browser, against the real demo server
//! and, for faults, the fault-injecting proxy (both started by
//! scripts/test). Each test renders the app's component (not a stand-in)
//! inside a real `SocketProvider` and a router, and checks what a person
//! would see.

#![cfg(target_arch = "wasm32")]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use heartline::core::{Config, HeartbeatConfig};
use heartline::yew::{SocketHandle, SocketProvider, use_socket};
use heartline_app::components::chart::{Chart, Series, line_path};
use heartline_app::components::name_prompt::NamePrompt;
use heartline_app::components::room_list::RoomList;
use heartline_app::components::room_view::RoomView;
use heartline_app::pages::connection::ConnectionPage;
use heartline_app::pages::dashboard::DashboardPage;
use heartline_app::session::{SessionKeeper, hello, session_token_key};
use heartline_protocol::RoomSummary;
use serde_json::json;
use support::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;
use yew_router::Router;
use yew_router::history::{AnyHistory, MemoryHistory};

wasm_bindgen_test_configure!(run_in_browser);

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(25);

/// What the harness shows inside its provider.
#[derive(Clone, PartialEq)]
enum View {
    Nothing,
    RoomList {
        rooms: Rc<Vec<RoomSummary>>,
        current: AttrValue,
    },
    Room {
        room: AttrValue,
    },
    Dashboard,
    Connection,
}

#[derive(Properties, PartialEq)]
struct AppHarnessProps {
    url: AttrValue,
    config: Config,
    name: AttrValue,
    view: View,
    socket: Slot<Option<SocketHandle>>,
}

#[derive(Properties, PartialEq)]
struct GrabProps {
    socket: Slot<Option<SocketHandle>>,
}

#[function_component(Grab)]
fn grab(props: &GrabProps) -> Html {
    *props.socket.0.borrow_mut() = Some(use_socket());
    html! {}
}

/// A router (in memory: tests must not move the test page) and a real
/// provider around one of the app's components.
#[function_component(AppHarness)]
fn app_harness(props: &AppHarnessProps) -> Html {
    let history = use_memo((), |_| AnyHistory::from(MemoryHistory::new()));
    // The app's own session: `hello` with the token of the last `welcome`,
    // so a message re-sent after a reconnect is recognised as the same one.
    let token_key = AttrValue::from(session_token_key(&props.url));
    let greeting = {
        let name = props.name.clone();
        let token_key = token_key.clone();
        Callback::from(move |()| serde_json::to_value(hello(&name, &token_key)).ok())
    };
    let view = match &props.view {
        View::Nothing => html! {},
        View::RoomList { rooms, current } => {
            html! { <RoomList rooms={rooms.clone()} current={current.clone()} /> }
        }
        View::Room { room } => html! { <RoomView room={room.clone()} me={props.name.clone()} /> },
        View::Dashboard => html! { <DashboardPage /> },
        View::Connection => html! { <ConnectionPage /> },
    };
    html! {
        <Router history={(*history).clone()}>
            <SocketProvider url={props.url.clone()} config={props.config.clone()} {greeting}>
                <SessionKeeper token_key={token_key} />
                <Grab socket={props.socket.clone()} />
                { view }
            </SocketProvider>
        </Router>
    }
}

struct App {
    root: Element,
    name: AttrValue,
    url: AttrValue,
    config: Config,
    socket: Slot<Option<SocketHandle>>,
    handle: Option<yew::AppHandle<AppHarness>>,
}

impl App {
    fn mount(url: &str, config: Config, view: View) -> App {
        let root = mount_point();
        let name = AttrValue::from(unique("user-"));
        let socket = Slot::default();
        let url = AttrValue::from(url.to_owned());
        let props = AppHarnessProps {
            url: url.clone(),
            config: config.clone(),
            name: name.clone(),
            view,
            socket: socket.clone(),
        };
        let handle = yew::Renderer::<AppHarness>::with_root_and_props(root.clone(), props).render();
        App {
            root,
            name,
            url,
            config,
            socket,
            handle: Some(handle),
        }
    }

    fn show(&mut self, view: View) {
        let props = AppHarnessProps {
            url: self.url.clone(),
            config: self.config.clone(),
            name: self.name.clone(),
            view,
            socket: self.socket.clone(),
        };
        if let Some(handle) = self.handle.as_mut() {
            handle.update(props);
        }
    }

    fn socket(&self) -> SocketHandle {
        self.socket
            .0
            .borrow()
            .clone()
            .expect("the harness rendered")
    }

    async fn wait_open(&self) {
        let slot = self.socket.clone();
        wait_until("the socket to open", SHORT, || {
            let socket = slot.0.borrow().clone();
            socket.is_some_and(|s| s.status().is_open())
        })
        .await;
    }

    fn text(&self, selector: &str) -> String {
        text_of(&self.root, selector).unwrap_or_default()
    }

    fn count(&self, selector: &str) -> u32 {
        self.root
            .query_selector_all(selector)
            .map(|l| l.length())
            .unwrap_or(0)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.destroy();
        }
        self.root.remove();
    }
}

fn input_text(el: &Element, value: &str) {
    if let Some(textarea) = el.dyn_ref::<HtmlTextAreaElement>() {
        textarea.set_value(value);
    } else if let Some(input) = el.dyn_ref::<HtmlInputElement>() {
        input.set_value(value);
    }
    let event = web_sys::InputEvent::new("input").expect("input event");
    el.dispatch_event(&event).expect("dispatch input");
}

fn press_enter(el: &Element, shift: bool) {
    let init = web_sys::KeyboardEventInit::new();
    init.set_key("Enter");
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let event = web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init)
        .expect("keydown event");
    el.dispatch_event(&event).expect("dispatch keydown");
}

fn query(root: &Element, selector: &str) -> Element {
    root.query_selector(selector)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no {selector} rendered"))
}

/// Waits for Yew's first render (it is scheduled, not synchronous).
async fn rendered(root: &Element, selector: &str) -> Element {
    wait_until(&format!("{selector} to render"), SHORT, || {
        root.query_selector(selector).ok().flatten().is_some()
    })
    .await;
    query(root, selector)
}

/// The demo server's `/healthz`, as JSON.
async fn healthz() -> serde_json::Value {
    let url = server_ws_url()
        .replacen("ws://", "http://", 1)
        .replace("/ws", "/healthz");
    gloo_net::http::Request::get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url} body: {e}"))
}

async fn wait_metrics_subscribers(wanted: u64) {
    let deadline = js_sys::Date::now() + LONG.as_millis() as f64;
    loop {
        let now = healthz().await["metrics_subscribers"].as_u64();
        if now == Some(wanted) {
            return;
        }
        assert!(
            js_sys::Date::now() < deadline,
            "the server reports {now:?} metrics subscribers, waiting for {wanted}"
        );
        gloo_timers::future::TimeoutFuture::new(50).await;
    }
}

fn summary(name: &str, epoch: u64, last_seq: u64, online: u32) -> RoomSummary {
    RoomSummary {
        name: name.into(),
        epoch,
        last_seq,
        online,
    }
}

#[wasm_bindgen_test]
async fn the_room_list_shows_rooms_who_is_in_and_unread_counts() {
    let seen = unique("seen-");
    let fresh = unique("fresh-");
    let current = unique("here-");
    // We read `seen` up to 3 of its 10 messages, in epoch 7.
    heartline_app::storage::set(
        "heartline.last_read",
        &json!({ seen.clone(): {"epoch": 7, "seq": 3} }).to_string(),
    );
    let mut rooms = vec![
        summary(&seen, 7, 10, 2),
        summary(&fresh, 1, 4, 0),
        summary(&current, 1, 9, 1),
    ];
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let app = App::mount(
        server_ws_url(),
        fast_config(),
        View::RoomList {
            rooms: Rc::new(rooms),
            current: current.clone().into(),
        },
    );
    wait_until("the list to render", SHORT, || {
        app.count(".rooms__item") == 3
    })
    .await;
    let item = |room: &str| format!(".rooms__item[data-room=\"{room}\"]");
    assert_eq!(
        app.text(&format!("{} .rooms__online", item(&seen))),
        "2 online"
    );
    assert_eq!(app.text(&format!("{} .rooms__unread", item(&seen))), "7");
    // Never opened here: no count. The open room: nothing unread.
    assert_eq!(app.count(&format!("{} .rooms__unread", item(&fresh))), 0);
    assert_eq!(app.count(&format!("{} .rooms__unread", item(&current))), 0);
    assert_eq!(app.count(".rooms__item--current"), 1);
    assert!(app.text(".rooms__item--current").contains(&current));

    // A bad room name is refused with the server's own rule, before sending.
    let input = query(&app.root, "#new-room");
    input_text(&input, &"x".repeat(40));
    let form = query(&app.root, ".rooms__new");
    form.dispatch_event(&web_sys::Event::new("submit").expect("submit"))
        .expect("submit");
    wait_until("the room name error", SHORT, || {
        app.text("#new-room-error")
            .contains("at most 32 characters")
    })
    .await;
    heartline_app::storage::remove("heartline.last_read");
}

#[wasm_bindgen_test]
async fn name_validation_follows_the_servers_rules() {
    let root = mount_point();
    let chosen: Rc<RefCell<Vec<String>>> = Rc::default();
    let on_done = {
        let chosen = chosen.clone();
        Callback::from(move |name: String| chosen.borrow_mut().push(name))
    };
    let handle = yew::Renderer::<NamePrompt>::with_root_and_props(
        root.clone(),
        yew::props!(heartline_app::components::name_prompt::NamePromptProps { on_done }),
    )
    .render();
    let input = rendered(&root, "#display-name").await;
    let form = query(&root, "form");
    let submit = || {
        form.dispatch_event(&web_sys::Event::new("submit").expect("submit"))
            .expect("submit")
    };

    input_text(&input, "   ");
    submit();
    wait_until("the empty-name error", SHORT, || {
        text_of(&root, "#display-name-error").is_some_and(|t| t.contains("must not be empty"))
    })
    .await;
    input_text(&input, &"n".repeat(33));
    wait_until("the too-long error", SHORT, || {
        text_of(&root, "#display-name-error").is_some_and(|t| t.contains("at most 32"))
    })
    .await;
    assert_eq!(
        attr_of(&root, "#display-name", "aria-invalid").as_deref(),
        Some("true")
    );
    submit();
    next_tick().await;
    assert!(
        chosen.borrow().is_empty(),
        "an invalid name is never accepted"
    );

    input_text(&input, "  Ada Lovelace ");
    wait_until("the error to clear", SHORT, || {
        text_of(&root, "#display-name-error").is_some_and(|t| t.is_empty())
    })
    .await;
    submit();
    wait_until("the name to be accepted", SHORT, || {
        !chosen.borrow().is_empty()
    })
    .await;
    assert_eq!(
        chosen.borrow().as_slice(),
        ["Ada Lovelace"],
        "trimmed, once"
    );
    handle.destroy();
    root.remove();
}

#[wasm_bindgen_test]
async fn the_composer_queues_while_cut_and_states_go_queued_sent_acked() {
    proxy("restore").await;
    let room = unique("room-");
    // A short heartbeat: however the stalled link ends, it is declared dead
    // within seconds, not the default 14.
    let config = Config {
        heartbeat: HeartbeatConfig {
            interval: 1_000,
            timeout: 1_500,
            probe_timeout: 1_500,
            ..HeartbeatConfig::default()
        },
        ..fast_config()
    };
    let app = App::mount(
        proxy_ws_url(),
        config,
        View::Room {
            room: room.clone().into(),
        },
    );
    app.wait_open().await;
    wait_until("the room to be live", SHORT, || {
        app.text(".messages").contains("No messages yet")
    })
    .await;
    let composer = query(&app.root, "#composer-text");
    assert_eq!(app.text(".composer__send"), "Send");

    // Shift+Enter does not send.
    input_text(&composer, "line one");
    press_enter(&composer, true);
    next_tick().await;
    assert_eq!(app.count(".message--pending"), 0);

    // Cut: the composer says so and still takes messages.
    proxy("cut").await;
    wait_until("the composer to show the link is down", SHORT, || {
        attr_of(&app.root, ".composer", "data-open").as_deref() == Some("false")
    })
    .await;
    assert_eq!(app.text(".composer__send"), "Queue");
    assert!(app.text(".composer__help").contains("wait and go out"));
    for text in ["first while cut", "second while cut"] {
        input_text(&composer, text);
        press_enter(&composer, false);
        next_tick().await;
    }
    wait_until("both to show as queued", SHORT, || {
        app.count(".message--pending[data-state=\"queued\"]") == 2
    })
    .await;
    assert!(app.text(".group--pending").contains("first while cut"));

    // Stalled (half-open): written to the socket, not acked yet: "sent".
    proxy("stall").await;
    proxy("restore").await;
    app.wait_open().await;
    wait_until("the queued ones to be acked and shown once", LONG, || {
        app.count(".message--pending") == 0 && app.count(".message[data-state=\"acked\"]") == 2
    })
    .await;
    proxy("stall").await;
    input_text(&composer, "during a stall");
    press_enter(&composer, false);
    wait_until("the stalled one to be sent, not acked", SHORT, || {
        app.count(".message--pending[data-state=\"sent\"]") == 1
    })
    .await;
    proxy("restore").await;
    let recovered = poll_until(LONG, || app.count(".message[data-state=\"acked\"]") == 3).await;
    assert!(
        recovered,
        "the stalled one was not acked after recovery: status {:?}, stats {:?}, timeline {:?}, messages {}",
        app.socket().status(),
        app.socket().stats(),
        app.socket()
            .timeline()
            .iter()
            .map(|e| e.event.to_string())
            .collect::<Vec<_>>(),
        app.root
            .query_selector(".messages")
            .ok()
            .flatten()
            .map(|e| e.inner_html())
            .unwrap_or_default()
    );
    // In the order typed, each once.
    let texts: Vec<String> = (0..3)
        .map(|i| {
            app.root
                .query_selector_all(".message .message__text")
                .ok()
                .and_then(|l| l.item(i))
                .and_then(|n| n.dyn_into::<HtmlElement>().ok())
                .map(|e| e.inner_text())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        texts,
        ["first while cut", "second while cut", "during a stall"]
    );
    assert_eq!(app.count(".message"), 3);

    // Over the length limit: counted, and the button refuses.
    input_text(&composer, &"y".repeat(2_001));
    wait_until("the counter", SHORT, || {
        app.text(".composer__count").contains("2001 / 2000")
    })
    .await;
    assert!(attr_of(&app.root, ".composer__send", "disabled").is_some());
    proxy("restore").await;
}

#[wasm_bindgen_test]
async fn a_message_that_expires_while_cut_fails_with_the_reason_and_retry_sends_it() {
    proxy("restore").await;
    let room = unique("room-");
    let config = Config {
        default_ttl: Some(300),
        ..fast_config()
    };
    let app = App::mount(
        proxy_ws_url(),
        config,
        View::Room {
            room: room.clone().into(),
        },
    );
    app.wait_open().await;
    proxy("cut").await;
    wait_until("the link to drop", SHORT, || {
        !app.socket().status().is_open()
    })
    .await;
    let composer = query(&app.root, "#composer-text");
    input_text(&composer, "will expire");
    press_enter(&composer, false);
    wait_until("it to fail", SHORT, || {
        app.count(".message--pending[data-state=\"failed\"]") == 1
    })
    .await;
    assert!(
        app.text(".message--failed .message__state")
            .contains("expired")
    );
    proxy("restore").await;
    app.wait_open().await;
    // Retry sends it again (the TTL only bites while the link is down).
    let retry = query(&app.root, ".message--failed button");
    assert_eq!(retry.text_content().as_deref(), Some("Retry"));
    retry.dyn_ref::<HtmlElement>().expect("button").click();
    wait_until("the retried message to be acked once", LONG, || {
        app.count(".message[data-state=\"acked\"]") == 1 && app.count(".message--pending") == 0
    })
    .await;
    assert!(app.text(".messages").contains("will expire"));
}

#[wasm_bindgen_test]
async fn the_dashboard_subscribes_on_mount_and_unsubscribes_on_unmount() {
    wait_metrics_subscribers(0).await;
    let mut app = App::mount(server_ws_url(), fast_config(), View::Dashboard);
    app.wait_open().await;
    wait_metrics_subscribers(1).await;
    wait_until("the first charts", LONG, || app.count(".chart") >= 6).await;
    assert!(app.text(".chart").contains("CPU"));
    app.show(View::Nothing);
    wait_metrics_subscribers(0).await;
    assert!(
        app.socket().status().is_open(),
        "leaving the page keeps the socket"
    );
}

#[wasm_bindgen_test]
async fn a_chart_given_known_samples_draws_a_known_path() {
    let root = mount_point();
    let series = vec![Series {
        label: "total".into(),
        values: vec![0.0, 50.0, 100.0],
        tone: "a",
    }];
    let handle = yew::Renderer::<Chart>::with_root_and_props(
        root.clone(),
        yew::props!(heartline_app::components::chart::ChartProps {
            title: "CPU",
            series,
            capacity: 3usize,
            y_max: Some(100.0),
            unit: heartline_app::format::Unit::Percent,
        }),
    )
    .render();
    rendered(&root, "path[data-series=\"total\"]").await;
    // The plot area is 260 × 76 user units (300 × 100 less the axes).
    assert_eq!(
        line_path(&[0.0, 50.0, 100.0], 3, 260.0, 76.0, 100.0),
        "M0.0,76.0L130.0,38.0L260.0,0.0"
    );
    assert_eq!(
        attr_of(&root, "path[data-series=\"total\"]", "d").as_deref(),
        Some("M0.0,76.0L130.0,38.0L260.0,0.0")
    );
    assert_eq!(text_of(&root, ".chart__value").as_deref(), Some("100 %"));
    let y_top = root
        .query_selector(".chart__labels text")
        .ok()
        .flatten()
        .and_then(|t| t.text_content());
    assert_eq!(y_top.as_deref(), Some("100 %"), "the y axis tops at y_max");
    handle.destroy();
    root.remove();
}

#[wasm_bindgen_test]
async fn the_connection_timeline_lists_a_forced_cut_and_the_reconnect() {
    proxy("restore").await;
    let app = App::mount(proxy_ws_url(), fast_config(), View::Connection);
    app.wait_open().await;
    let before = app.count(".timeline__entry");
    proxy("cut").await;
    wait_until("the link to drop", SHORT, || {
        !app.socket().status().is_open()
    })
    .await;
    proxy("restore").await;
    app.wait_open().await;
    wait_until(
        "the timeline to list the cut and the reconnect",
        SHORT,
        || app.count(".timeline__entry") > before + 1,
    )
    .await;
    let timeline = app.text(".timeline__list").to_lowercase();
    // Newest first: the reconnect above the loss, the loss above the first
    // connect.
    let at = |what: &str| {
        timeline
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in the timeline: {timeline}"))
    };
    assert!(at("reconnected") < at("connection lost"), "{timeline}");
    let first_connect = timeline.rfind("connected").unwrap_or(0);
    assert!(at("connection lost") < first_connect, "{timeline}");
    assert!(app.text(".panel__facts").contains("Reconnects"));
}
