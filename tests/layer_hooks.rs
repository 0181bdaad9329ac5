//! The socket layer's component-bound hooks in a real browser, against the
//! real demo server (started by scripts/test): `use_standing` joins on
//! mount and leaves on unmount; `use_message_fold` and `use_latest_message`
//! take a burst of messages with far fewer renders than messages.

#![cfg(target_arch = "wasm32")]

mod support;

use std::time::Duration;

use gloo_timers::future::TimeoutFuture;
use heartline::core::{DeliveryState, MessageId};
use heartline::yew::{
    SocketHandle, SocketMessage, SocketProvider, use_latest_message, use_message_fold, use_socket,
    use_socket_handler, use_standing,
};
use serde::Deserialize;
use serde_json::json;
use support::*;
use wasm_bindgen_test::*;
use yew::prelude::*;

wasm_bindgen_test_configure!(run_in_browser);

const SHORT: Duration = Duration::from_secs(10);

/// A chat message as far as these tests care.
#[derive(Debug, Deserialize)]
struct ChatSeen {
    stream: String,
    seq: u64,
}

impl SocketMessage for ChatSeen {
    const SOCKET_TYPE: &'static str = "chat.message";
}

#[derive(Properties, PartialEq)]
struct AppProps {
    name: AttrValue,
    room: AttrValue,
    /// Mount the room member (`use_standing` join/leave).
    #[prop_or_default]
    member: bool,
    /// Mount the metrics subscriber (`use_standing` subscribe/unsubscribe).
    #[prop_or_default]
    metrics: bool,
    /// Mount the coalescing chat readers.
    #[prop_or_default]
    readers: bool,
    /// Connect through the fault proxy instead of straight to the server.
    #[prop_or_default]
    via_proxy: bool,
    socket: Slot<Option<SocketHandle>>,
    samples: Slot<u64>,
    folded: Slot<u64>,
    fold_renders: Slot<u64>,
    latest_seq: Slot<Option<u64>>,
    latest_renders: Slot<u64>,
}

#[function_component(App)]
fn app(props: &AppProps) -> Html {
    let name = props.name.clone();
    let greeting =
        Callback::from(move |()| Some(json!({"socketType": "hello", "name": name.as_str()})));
    html! {
        <SocketProvider url={if props.via_proxy { proxy_ws_url() } else { server_ws_url() }} config={fast_config()} {greeting}>
            <Grab socket={props.socket.clone()} samples={props.samples.clone()} />
            <TimelineView />
            if props.member {
                <RoomMember room={props.room.clone()} />
            }
            if props.metrics {
                <MetricsSubscriber />
            }
            if props.readers {
                <RoomMember room={props.room.clone()} />
                <FoldReader
                    room={props.room.clone()}
                    folded={props.folded.clone()}
                    renders={props.fold_renders.clone()}
                />
                <LatestReader seq={props.latest_seq.clone()} renders={props.latest_renders.clone()} />
            }
        </SocketProvider>
    }
}

#[derive(Properties, PartialEq)]
struct GrabProps {
    socket: Slot<Option<SocketHandle>>,
    samples: Slot<u64>,
}

/// Hands the socket to the test and counts metrics samples (always
/// mounted, so it sees them stop).
#[function_component(Grab)]
fn grab(props: &GrabProps) -> Html {
    let socket = use_socket();
    *props.socket.0.borrow_mut() = Some(socket);
    let samples = props.samples.clone();
    use_socket_handler("metrics.sample", move |_| *samples.0.borrow_mut() += 1);
    html! {}
}

/// The connection timeline as a list: it must re-render when an entry is
/// added.
#[function_component(TimelineView)]
fn timeline_view() -> Html {
    let socket = use_socket();
    html! {
        <ol class="timeline">{ for socket.timeline().iter().map(|entry| html! {
            <li>{ entry.event.to_string() }</li>
        }) }</ol>
    }
}

#[derive(Properties, PartialEq)]
struct RoomProps {
    room: AttrValue,
}

#[function_component(RoomMember)]
fn room_member(props: &RoomProps) -> Html {
    let room = props.room.to_string();
    use_standing(
        &format!("room:{room}"),
        json!({"socketType": "join", "room": room}),
        Some(json!({"socketType": "leave", "room": room})),
        Some(&room),
    );
    html! {}
}

#[function_component(MetricsSubscriber)]
fn metrics_subscriber() -> Html {
    use_standing(
        "metrics",
        json!({"socketType": "metrics.subscribe"}),
        Some(json!({"socketType": "metrics.unsubscribe"})),
        None,
    );
    html! {}
}

#[derive(Properties, PartialEq)]
struct FoldProps {
    room: AttrValue,
    folded: Slot<u64>,
    renders: Slot<u64>,
}

#[function_component(FoldReader)]
fn fold_reader(props: &FoldProps) -> Html {
    *props.renders.0.borrow_mut() += 1;
    let room = props.room.to_string();
    let count = use_message_fold::<ChatSeen, u64>(
        || 0,
        move |count, message| {
            if message.stream == room {
                *count += 1;
            }
        },
    );
    *props.folded.0.borrow_mut() = *count.borrow();
    html! { <p class="folded">{ *count.borrow() }</p> }
}

#[derive(Properties, PartialEq)]
struct LatestProps {
    seq: Slot<Option<u64>>,
    renders: Slot<u64>,
}

#[function_component(LatestReader)]
fn latest_reader(props: &LatestProps) -> Html {
    *props.renders.0.borrow_mut() += 1;
    let latest = use_latest_message::<ChatSeen>();
    *props.seq.0.borrow_mut() = latest.as_ref().map(|m| m.seq);
    html! {}
}

/// A rendered [`App`], destroyed when dropped.
struct Mounted2 {
    root: web_sys::Element,
    props: AppProps,
    handle: Option<yew::AppHandle<App>>,
}

impl Mounted2 {
    fn new(props: AppProps) -> Self {
        let root = mount_point();
        let handle =
            yew::Renderer::<App>::with_root_and_props(root.clone(), props.clone_props()).render();
        Mounted2 {
            root,
            props,
            handle: Some(handle),
        }
    }

    fn update(&mut self, change: impl FnOnce(&mut AppProps)) {
        change(&mut self.props);
        if let Some(handle) = self.handle.as_mut() {
            handle.update(self.props.clone_props());
        }
    }

    fn socket(&self) -> SocketHandle {
        self.props.socket.0.borrow().clone().expect("rendered")
    }

    async fn wait_open(&self) {
        wait_until("the socket to open", SHORT, || {
            self.props
                .socket
                .0
                .borrow()
                .as_ref()
                .is_some_and(|s| s.status().is_open())
        })
        .await;
    }
}

impl Drop for Mounted2 {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.destroy();
        }
        self.root.remove();
    }
}

impl AppProps {
    fn new(name: &str, room: &str) -> Self {
        AppProps {
            name: AttrValue::from(name.to_owned()),
            room: AttrValue::from(room.to_owned()),
            member: false,
            metrics: false,
            readers: false,
            via_proxy: false,
            socket: Slot::default(),
            samples: Slot::default(),
            folded: Slot::default(),
            fold_renders: Slot::default(),
            latest_seq: Slot::default(),
            latest_renders: Slot::default(),
        }
    }

    /// The same props (slots shared).
    fn clone_props(&self) -> Self {
        AppProps {
            name: self.name.clone(),
            room: self.room.clone(),
            member: self.member,
            metrics: self.metrics,
            readers: self.readers,
            via_proxy: self.via_proxy,
            socket: self.socket.clone(),
            samples: self.samples.clone(),
            folded: self.folded.clone(),
            fold_renders: self.fold_renders.clone(),
            latest_seq: self.latest_seq.clone(),
            latest_renders: self.latest_renders.clone(),
        }
    }
}

/// The users of the last `presence` of `room` an observer got.
fn last_presence(observer: &Mounted, room: &str) -> Option<Vec<String>> {
    observer
        .probe
        .received_of("presence")
        .iter()
        .rev()
        .find(|m| m.value["room"] == room)
        .map(|m| {
            m.value["users"]
                .as_array()
                .map(|users| {
                    users
                        .iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
}

#[wasm_bindgen_test]
async fn use_standing_joins_on_mount_and_leaves_on_unmount() {
    let room = unique("r");
    let name = unique("member-");
    // An observer in the room sees who is there.
    let observer = Mounted::mount(yew::props!(HarnessProps {
        url: AttrValue::from(server_ws_url()),
        config: fast_config(),
        probe: Probe::default(),
        listening: true,
        listen_to: AttrValue::from("presence"),
    }));
    observer.wait_for_status("open", SHORT).await;
    observer
        .socket()
        .add_standing("room", json!({"socketType": "join", "room": room}), None)
        .expect("observer joined");

    let mut app = Mounted2::new(AppProps {
        member: true,
        ..AppProps::new(&name, &room)
    });
    app.wait_open().await;
    // The server saw the join: it answered with the history's `joined`, and
    // the observer sees the member in the room.
    wait_until("the member's `joined`", SHORT, || {
        app.socket()
            .last("joined")
            .is_some_and(|m| m.value["stream"] == room.as_str())
    })
    .await;
    wait_until("the observer to see the member", SHORT, || {
        last_presence(&observer, &room).is_some_and(|users| users.contains(&name))
    })
    .await;

    // Unmounting the member sends the leave: the observer sees it go, while
    // the member's socket stays open.
    app.update(|p| p.member = false);
    wait_until("the observer to see the member leave", SHORT, || {
        last_presence(&observer, &room).is_some_and(|users| !users.contains(&name))
    })
    .await;
    assert!(app.socket().status().is_open());
}

#[wasm_bindgen_test]
async fn use_standing_subscribes_to_metrics_and_unsubscribes_on_unmount() {
    let mut app = Mounted2::new(AppProps {
        metrics: true,
        ..AppProps::new(&unique("metrics-"), &unique("r"))
    });
    app.wait_open().await;
    let samples = app.props.samples.clone();
    wait_until("a metrics sample", SHORT, || *samples.0.borrow() >= 1).await;

    app.update(|p| p.metrics = false);
    // A sample already on its way may still arrive; then they stop.
    TimeoutFuture::new(1_500).await;
    let after_leave = *samples.0.borrow();
    TimeoutFuture::new(2_500).await;
    assert_eq!(
        *samples.0.borrow(),
        after_leave,
        "samples kept coming after the unsubscribe"
    );
    assert!(app.socket().status().is_open());
}

#[wasm_bindgen_test]
async fn a_burst_of_messages_is_folded_whole_with_few_renders() {
    const N: u64 = 50; // the server's recent history is 50 messages
    let room = unique("r");
    // A writer fills the room.
    let writer = Mounted::new(server_ws_url(), fast_config(), false);
    writer.wait_for_status("open", SHORT).await;
    writer.join_and_read_history(&room).await;
    let ids: Vec<MessageId> = (0..N)
        .map(|i| {
            writer
                .socket()
                .send(json!({"socketType": "chat.send", "room": room, "text": format!("m{i}")}))
                .expect("queued")
        })
        .collect();
    wait_until("every message acked", Duration::from_secs(20), || {
        ids.iter()
            .all(|id| writer.socket().message_state(id) == Some(DeliveryState::Acked))
    })
    .await;

    // A reader joins: the history arrives as one burst of N frames.
    let app = Mounted2::new(AppProps {
        readers: true,
        ..AppProps::new(&unique("reader-"), &room)
    });
    let folded = app.props.folded.clone();
    wait_until("every message folded and shown", SHORT, || {
        *folded.0.borrow() == N
    })
    .await;
    let latest = app.props.latest_seq.clone();
    wait_until("the latest message shown", SHORT, || {
        *latest.0.borrow() == Some(N)
    })
    .await;
    let fold_renders = *app.props.fold_renders.0.borrow();
    let latest_renders = *app.props.latest_renders.0.borrow();
    assert!(
        fold_renders <= N / 4,
        "{fold_renders} renders of the fold for {N} messages"
    );
    assert!(
        latest_renders <= N / 4,
        "{latest_renders} renders of the latest message for {N} messages"
    );
    let shown = text_of(&app.root, ".folded").unwrap_or_default();
    assert_eq!(shown, N.to_string());
}

fn timeline_lines(root: &web_sys::Element) -> Vec<String> {
    let Ok(items) = root.query_selector_all(".timeline li") else {
        return Vec::new();
    };
    (0..items.length())
        .filter_map(|i| items.item(i))
        .filter_map(|node| node.text_content())
        .collect()
}

#[wasm_bindgen_test]
async fn the_timeline_shows_a_cut_and_the_reconnect_as_they_happen() {
    proxy("restore").await;
    let app = Mounted2::new(AppProps {
        via_proxy: true,
        ..AppProps::new(&unique("timeline-"), &unique("r"))
    });
    app.wait_open().await;
    let root = app.root.clone();
    wait_until("\"connected\" on screen", SHORT, || {
        timeline_lines(&root).iter().any(|l| l == "connected")
    })
    .await;

    proxy("cut").await;
    wait_until("the loss and the retry on screen", SHORT, || {
        let lines = timeline_lines(&root);
        lines.iter().any(|l| l.starts_with("connection lost"))
            && lines.iter().any(|l| l.starts_with("reconnecting in"))
    })
    .await;
    proxy("restore").await;
    wait_until("\"reconnected\" on screen", Duration::from_secs(20), || {
        timeline_lines(&root).iter().any(|l| l == "reconnected")
    })
    .await;

    let lines = timeline_lines(&root);
    let position = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    let (connected, lost, retry, reconnected) = (
        position("connected"),
        position("connection lost"),
        position("reconnecting in"),
        position("reconnected"),
    );
    assert!(
        connected < lost && lost < retry && retry < reconnected,
        "out of order: {lines:?}"
    );
    // The handle's copy matches what is on screen.
    let from_handle: Vec<String> = app
        .socket()
        .timeline()
        .iter()
        .map(|e| e.event.to_string())
        .collect();
    assert_eq!(from_handle, lines);
}
