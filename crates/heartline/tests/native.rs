//! The native driver against a real WebSocket server on 127.0.0.1: a small
//! tokio-tungstenite server written here that acks ids, answers pings,
//! welcomes, and on command pushes frames, drops or closes its connections,
//! or stops and restarts on the same port. It counts connections per client
//! (by the name in `hello`), so every test checks that a client never holds
//! more than one socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use heartline::core::{
    BackoffConfig, Config, ConnectionStatus, DeliveryState, Jitter, MessageId, SendError,
    TimelineEvent,
};
use heartline::native::{Client, ClientOptions};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The longest any wait for a condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long "nothing happens" is watched for (about 10 reconnect delays of
/// the test policy).
const QUIET: Duration = Duration::from_millis(500);

// ---- the test server ---------------------------------------------------

#[derive(Debug, Clone)]
enum Control {
    /// A text frame to every connection.
    Push(String),
    /// A binary frame of this many bytes.
    Binary(usize),
    /// Drop every connection without a close frame.
    Drop,
    /// Close every connection with this code.
    Close(u16),
}

#[derive(Default)]
struct ServerState {
    accepted: AtomicUsize,
    live: AtomicUsize,
    /// Per client name (from `hello`): sockets open now, and the most ever.
    live_by_client: Mutex<HashMap<String, usize>>,
    max_by_client: Mutex<HashMap<String, usize>>,
    /// Every text frame received, parsed.
    frames: Mutex<Vec<Value>>,
    /// Close codes received from clients.
    close_codes: Mutex<Vec<u16>>,
}

impl ServerState {
    fn frames_of(&self, socket_type: &str) -> Vec<Value> {
        let frames = self.frames.lock().unwrap();
        frames
            .iter()
            .filter(|f| f["socketType"] == socket_type)
            .cloned()
            .collect()
    }

    fn frames_with_id(&self, id: &MessageId) -> usize {
        let frames = self.frames.lock().unwrap();
        frames.iter().filter(|f| f["id"] == id.as_str()).count()
    }

    fn max_sockets_of(&self, client: &str) -> usize {
        let max = self.max_by_client.lock().unwrap();
        max.get(client).copied().unwrap_or(0)
    }
}

struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    control: broadcast::Sender<Control>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (control, _) = broadcast::channel(64);
        let mut server = TestServer {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            control,
            accept: None,
        };
        server.serve(listener);
        server
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = Arc::clone(&self.state);
        let control = self.control.clone();
        self.accept = Some(tokio::spawn(async move {
            // Dropped with the accept task: aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::SeqCst);
                connections.spawn(connection(tcp, Arc::clone(&state), control.subscribe()));
            }
        }));
    }

    /// Stops listening and drops every connection (like a killed server).
    async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let state = Arc::clone(&self.state);
        wait_until("the server's connections to end", move || {
            state.live.load(Ordering::SeqCst) == 0
        })
        .await;
    }

    /// Listens again on the same address.
    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn send(&self, control: Control) {
        self.control.send(control).expect("a connection listens");
    }

    fn push(&self, frame: Value) {
        self.send(Control::Push(frame.to_string()));
    }

    fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

/// Counts a connection while it lives, overall and per client name.
struct LiveGuard {
    state: Arc<ServerState>,
    client: Option<String>,
}

impl LiveGuard {
    fn new(state: &Arc<ServerState>) -> LiveGuard {
        state.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard {
            state: Arc::clone(state),
            client: None,
        }
    }

    fn identify(&mut self, client: &str) {
        if self.client.is_some() {
            return;
        }
        let mut live = self.state.live_by_client.lock().unwrap();
        let now = live.entry(client.to_owned()).or_default();
        *now += 1;
        let mut max = self.state.max_by_client.lock().unwrap();
        let most = max.entry(client.to_owned()).or_default();
        *most = (*most).max(*now);
        self.client = Some(client.to_owned());
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(client) = &self.client
            && let Ok(mut live) = self.state.live_by_client.lock()
            && let Some(now) = live.get_mut(client)
        {
            *now = now.saturating_sub(1);
        }
        self.state.live.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(
    tcp: TcpStream,
    state: Arc<ServerState>,
    mut control: broadcast::Receiver<Control>,
) {
    let mut live = LiveGuard::new(&state);
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    state.frames.lock().unwrap().push(frame.clone());
                    for reply in answer(&frame, &mut live) {
                        if ws.send(Message::text(reply.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    if let Some(close) = close {
                        state.close_codes.lock().unwrap().push(close.code.into());
                    }
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            control = control.recv() => match control {
                Ok(Control::Push(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Ok(Control::Binary(len)) => {
                    if ws.send(Message::binary(vec![0u8; len])).await.is_err() {
                        return;
                    }
                }
                Ok(Control::Drop) | Err(_) => return,
                Ok(Control::Close(code)) => {
                    let frame = CloseFrame { code: code.into(), reason: "bye".into() };
                    let _ = ws.send(Message::Close(Some(frame))).await;
                    return;
                }
            },
        }
    }
}

/// The contract's answers: welcome a hello, pong a ping (echoing `t`), ack
/// every id.
fn answer(frame: &Value, live: &mut LiveGuard) -> Vec<Value> {
    let mut replies = Vec::new();
    match frame["socketType"].as_str() {
        Some("hello") => {
            let name = frame["name"].as_str().unwrap_or("anonymous");
            live.identify(name);
            replies.push(
                json!({"socketType": "welcome", "name": name, "token": format!("token-{name}")}),
            );
        }
        Some("ping") => replies.push(json!({"socketType": "pong", "t": frame["t"]})),
        _ => {}
    }
    if let Some(id) = frame["id"].as_str() {
        replies.push(json!({"socketType": "ack", "id": id}));
    }
    replies
}

// ---- helpers -----------------------------------------------------------

/// Fast retries without jitter, forever.
fn fast_config() -> Config {
    Config {
        backoff: BackoffConfig {
            base: 20,
            cap: 50,
            jitter: Jitter::None,
            ..BackoffConfig::default()
        },
        max_retries: None,
        ..Config::default()
    }
}

fn options(name: &str) -> ClientOptions {
    let name = name.to_owned();
    ClientOptions::new()
        .config(fast_config())
        .seed(7)
        .greeting(move || Some(json!({"socketType": "hello", "name": name})))
}

/// Polls `condition` until it holds; fails the test after [`DEADLINE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let polled = timeout(DEADLINE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "timed out waiting for {what}");
}

/// Awaits `future`; fails the test after [`DEADLINE`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn wait_open(client: &Client) {
    let mut status = client.status();
    within("the client to open", status.wait_for(|s| s.is_open()))
        .await
        .expect("the driver runs");
}

/// Waits for the final state of `id` on a receiver taken before the send.
async fn final_state(
    events: &mut broadcast::Receiver<(MessageId, DeliveryState)>,
    id: &MessageId,
) -> DeliveryState {
    within("a final state", async {
        loop {
            let (moved, state) = events.recv().await.expect("the driver runs");
            if &moved == id && state.is_final() {
                return state;
            }
        }
    })
    .await
}

// ---- tests -------------------------------------------------------------

#[tokio::test]
async fn connects_and_delivers_by_socket_type() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("ada")).unwrap();
    let mut news = client.subscribe("news");
    let mut other = client.subscribe("other");
    let mut welcome = client.subscribe("welcome");
    within("the welcome", welcome.recv()).await.unwrap();

    server.push(json!({"socketType": "news", "n": 1}));
    server.push(json!({"socketType": "other", "n": 2}));
    server.push(json!({"socketType": "news", "n": 3}));

    let first = within("news 1", news.recv()).await.unwrap();
    let second = within("news 3", news.recv()).await.unwrap();
    assert_eq!(
        (first.value["n"].clone(), second.value["n"].clone()),
        (json!(1), json!(3))
    );
    let only = within("other", other.recv()).await.unwrap();
    assert_eq!(&*only.socket_type, "other");
    assert!(other.try_recv().is_none());
    // The greeting went first and its answer is remembered.
    assert_eq!(server.state.frames_of("hello").len(), 1);
    let welcome = client.last("welcome").await.expect("a welcome");
    assert_eq!(welcome.value["name"], "ada");
    assert_eq!(server.state.max_sockets_of("ada"), 1);
}

#[tokio::test]
async fn a_reliable_message_sent_while_the_server_is_down_is_acked_once_after_it_returns() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let client = Client::spawn(server.url(), options("bob")).unwrap();
    let mut status = client.status();
    within(
        "a failed attempt",
        status.wait_for(|s| matches!(s, ConnectionStatus::Reconnecting { .. })),
    )
    .await
    .unwrap();

    let mut events = client.message_events();
    let id = client
        .send(json!({"socketType": "chat.send", "room": "lobby", "text": "offline"}))
        .await
        .unwrap();
    assert_eq!(client.message_state(&id).await, Some(DeliveryState::Queued));

    server.restart().await;
    assert_eq!(final_state(&mut events, &id).await, DeliveryState::Acked);
    assert_eq!(client.message_state(&id).await, Some(DeliveryState::Acked));
    assert_eq!(server.state.frames_with_id(&id), 1, "written once");
    let stats = client.stats().await;
    assert_eq!((stats.acked, stats.queued, stats.in_flight), (1, 0, 0));
    assert_eq!(server.state.max_sockets_of("bob"), 1);
}

#[tokio::test]
async fn reconnects_after_the_server_closes_or_drops_the_link() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("cy")).unwrap();
    client
        .add_standing(
            "room:lobby",
            json!({"socketType": "join", "room": "lobby"}),
            None,
        )
        .await
        .unwrap();
    wait_open(&client).await;
    let state = Arc::clone(&server.state);
    wait_until("the join", move || state.frames_of("join").len() == 1).await;

    // A close frame with a code that means "try again later"…
    server.send(Control::Close(4004));
    let state = Arc::clone(&server.state);
    wait_until("a second connection", move || {
        state.frames_of("join").len() == 2
    })
    .await;
    wait_open(&client).await;
    // …and a link that just dies.
    server.send(Control::Drop);
    let state = Arc::clone(&server.state);
    wait_until("a third connection", move || {
        state.frames_of("join").len() == 3
    })
    .await;
    wait_open(&client).await;

    // Every open sent the greeting, then the standing join.
    assert_eq!(server.state.frames_of("hello").len(), 3);
    assert_eq!(server.accepted(), 3);
    assert_eq!(client.stats().await.reconnects, 2);
    assert_eq!(server.state.max_sockets_of("cy"), 1);

    // The timeline tells the story in order: two losses, each followed by
    // a scheduled retry and a reconnect.
    let story: Vec<String> = client
        .timeline()
        .await
        .into_iter()
        .filter(|entry| {
            matches!(
                entry.event,
                TimelineEvent::Open { .. }
                    | TimelineEvent::Lost { .. }
                    | TimelineEvent::Reconnecting { .. }
            )
        })
        .map(|entry| match entry.event {
            TimelineEvent::Reconnecting { .. } => "retry".to_owned(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        story,
        [
            "connected",
            "connection lost: closed (4004: bye)",
            "retry",
            "reconnected",
            // A dropped TCP link is a read error to tungstenite.
            "connection lost: socket error",
            "retry",
            "reconnected",
        ]
    );
}

#[tokio::test]
async fn dropping_a_handler_guard_stops_deliveries() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("dee")).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let guard = client.on("news", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(guard.socket_type(), "news");
    let mut markers = client.subscribe("marker");
    wait_open(&client).await;

    server.push(json!({"socketType": "news"}));
    server.push(json!({"socketType": "marker"}));
    within("the first marker", markers.recv()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    drop(guard);
    server.push(json!({"socketType": "news"}));
    server.push(json!({"socketType": "marker"}));
    within("the second marker", markers.recv()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no call after the drop");

    // A dropped subscription is unregistered too: a marker now has no
    // handler, so the core counts it as an unknown type.
    drop(markers);
    let before = client.stats().await.unknown_types;
    server.push(json!({"socketType": "marker"}));
    within("the marker counted as unknown", async {
        while client.stats().await.unknown_types == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(client.stats().await.unknown_types, before + 1);
}

#[tokio::test]
async fn stop_closes_the_link_and_does_not_reconnect() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("eve")).unwrap();
    wait_open(&client).await;

    client.stop();
    let mut status = client.status();
    within(
        "closed",
        status.wait_for(|s| *s == ConnectionStatus::Closed),
    )
    .await
    .unwrap();
    let state = Arc::clone(&server.state);
    wait_until("the server to see the close", move || {
        state.live.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(*server.state.close_codes.lock().unwrap(), vec![1000]);

    // Nothing reconnects (watched for many reconnect delays), and reliable
    // sends are refused.
    let state = Arc::clone(&server.state);
    let reconnected = timeout(QUIET, async move {
        while state.accepted.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(reconnected.is_err(), "a stopped client reconnected");
    assert_eq!(
        client.send(json!({"socketType": "chat.send"})).await,
        Err(SendError::Closed)
    );

    // `start` connects again.
    client.start();
    wait_open(&client).await;
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.state.max_sockets_of("eve"), 1);
}

#[tokio::test]
async fn no_socket_leaks_across_drops_and_when_the_client_goes_away() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("fay")).unwrap();
    let mut news = client.subscribe("news");
    // Each round drops the connection whose greeting the server has read.
    for round in 1..=6 {
        if round > 1 {
            server.send(Control::Drop);
        }
        let state = Arc::clone(&server.state);
        wait_until("a connection", move || {
            state.frames_of("hello").len() == round
        })
        .await;
    }
    assert_eq!(server.state.max_sockets_of("fay"), 1);
    assert_eq!(server.accepted(), 6);

    // The last handle gone: the driver closes the link and ends, and so do
    // its subscriptions.
    drop(client);
    let state = Arc::clone(&server.state);
    wait_until("the server to see the close", move || {
        state.live.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(within("the subscription to end", news.recv()).await, None);
    assert_eq!(*server.state.close_codes.lock().unwrap(), vec![1000]);
}

#[tokio::test]
async fn many_clients_share_one_local_set() {
    let server = TestServer::start().await;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let names = ["g1", "g2", "g3"];
            let clients: Vec<Client> = names
                .iter()
                .map(|name| Client::spawn_local(server.url(), options(name)).unwrap())
                .collect();
            let mut subscriptions: Vec<_> = clients.iter().map(|c| c.subscribe("news")).collect();
            for client in &clients {
                wait_open(client).await;
            }
            let mut ids = Vec::new();
            for client in &clients {
                let id = client
                    .send(json!({"socketType": "chat.send"}))
                    .await
                    .unwrap();
                ids.push((client.clone(), id));
            }
            server.push(json!({"socketType": "news", "text": "to all"}));
            for subscription in &mut subscriptions {
                let message = within("news", subscription.recv()).await.unwrap();
                assert_eq!(message.value["text"], "to all");
            }
            for (client, id) in &ids {
                let mut state = client.message_state(id).await;
                within("the ack", async {
                    while state != Some(DeliveryState::Acked) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        state = client.message_state(id).await;
                    }
                })
                .await;
            }
            for name in names {
                assert_eq!(server.state.max_sockets_of(name), 1);
            }
        })
        .await;
}

#[tokio::test]
async fn binary_frames_are_counted_and_not_delivered() {
    let server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("hal")).unwrap();
    let mut markers = client.subscribe("marker");
    wait_open(&client).await;
    server.send(Control::Binary(10));
    server.push(json!({"socketType": "marker"}));
    within("the marker", markers.recv()).await.unwrap();
    let stats = client.stats().await;
    assert_eq!(stats.binary_frames, 1);
    assert!(
        client.status().borrow().is_open(),
        "a binary frame is not fatal"
    );
}

#[tokio::test]
async fn an_exported_outbox_goes_out_from_another_client_with_the_same_ids() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let first = Client::spawn(server.url(), options("ivy")).unwrap();
    let a = first
        .send(json!({"socketType": "chat.send", "text": "a"}))
        .await
        .unwrap();
    let b = first
        .send(json!({"socketType": "chat.send", "text": "b"}))
        .await
        .unwrap();
    let saved = first.export_outbox().await;
    drop(first);

    let second = Client::spawn(server.url(), options("ivy")).unwrap();
    let mut events = second.message_events();
    assert_eq!(
        second.restore_outbox(&saved).await,
        Ok(vec![a.clone(), b.clone()])
    );
    server.restart().await;
    assert_eq!(final_state(&mut events, &a).await, DeliveryState::Acked);
    assert_eq!(final_state(&mut events, &b).await, DeliveryState::Acked);
    assert_eq!(
        (
            server.state.frames_with_id(&a),
            server.state.frames_with_id(&b)
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn volatile_messages_need_an_open_link() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let client = Client::spawn(server.url(), options("jo")).unwrap();
    let typing = json!({"socketType": "typing", "room": "lobby"});
    assert_eq!(
        client.send_volatile(typing.clone()).await,
        Err(SendError::NotOpen)
    );
    server.restart().await;
    wait_open(&client).await;
    client.send_volatile(typing).await.unwrap();
    let state = Arc::clone(&server.state);
    wait_until("the typing frame", move || {
        state.frames_of("typing").len() == 1
    })
    .await;
    assert!(server.state.frames_of("typing")[0].get("id").is_none());
}

/// Reads message moves until every id in `ids` has a final state; returns
/// how often each id reached each final state.
async fn settle(
    events: &mut broadcast::Receiver<(MessageId, DeliveryState)>,
    ids: &[MessageId],
    finals: &mut HashMap<MessageId, Vec<DeliveryState>>,
) {
    within("every message to settle", async {
        while !ids.iter().all(|id| finals.contains_key(id)) {
            let (id, state) = events.recv().await.expect("the driver runs");
            if state.is_final() {
                finals.entry(id).or_default().push(state);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn fails_over_to_the_next_server_and_goes_on_sending() {
    let mut a = TestServer::start().await;
    let b = TestServer::start().await;
    let client = Client::spawn([a.url().as_str(), b.url().as_str()], options("fo")).unwrap();
    assert_eq!(client.urls(), [a.url(), b.url()]);
    client
        .add_standing(
            "room:lobby",
            json!({"socketType": "join", "room": "lobby"}),
            Some("lobby".into()),
        )
        .await
        .unwrap();
    let mut chat = client.subscribe("chat.message");
    let mut events = client.message_events();
    wait_open(&client).await;
    assert_eq!(*client.endpoint().borrow(), a.url(), "starts on the first");

    // On A: the room's stream, and messages that are acked.
    for seq in 1..=3 {
        a.push(json!({"socketType": "chat.message", "stream": "lobby", "seq": seq}));
    }
    for seq in 1..=3 {
        let message = within("a chat message", chat.recv()).await.unwrap();
        assert_eq!(message.value["seq"], seq);
    }
    let send = |text: String| {
        let client = client.clone();
        async move {
            client
                .send(json!({"socketType": "chat.send", "room": "lobby", "text": text}))
                .await
                .unwrap()
        }
    };
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(send(format!("on A {i}")).await);
    }
    let mut finals = HashMap::new();
    settle(&mut events, &ids, &mut finals).await;

    // A is gone; the client goes on sending while it moves to B.
    a.stop().await;
    for i in 0..10 {
        ids.push(send(format!("between {i}")).await);
    }
    let mut endpoint = client.endpoint();
    within("the move to B", endpoint.wait_for(|url| *url == b.url()))
        .await
        .unwrap();
    wait_open(&client).await;
    for i in 0..10 {
        ids.push(send(format!("on B {i}")).await);
    }
    settle(&mut events, &ids, &mut finals).await;

    // Every message acked exactly once, none failed.
    assert_eq!(finals.len(), 30);
    for id in &ids {
        assert_eq!(finals[id], [DeliveryState::Acked], "{id}");
    }
    let stats = client.stats().await;
    assert_eq!((stats.acked, stats.failed), (30, 0));
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
    assert!(stats.failovers >= 1);
    // B got the room resumed with `since`, and every message written on
    // the link that acked it: A the first ten, B the rest.
    let joins = b.state.frames_of("join");
    assert_eq!(joins[0]["since"], 3, "{joins:?}");
    for (i, id) in ids.iter().enumerate() {
        let on_b = b.state.frames_with_id(id);
        if i < 10 {
            assert_eq!((a.state.frames_with_id(id), on_b), (1, 0), "{id}");
        } else {
            assert_eq!(on_b, 1, "{id} written once on B");
        }
    }
    // One socket at a time on each server, and the story says where it went.
    assert_eq!(a.state.max_sockets_of("fo"), 1);
    assert_eq!(b.state.max_sockets_of("fo"), 1);
    let switched = client
        .timeline()
        .await
        .into_iter()
        .any(|entry| entry.event.to_string().contains(&b.url()));
    assert!(switched, "the timeline names B");
}

#[tokio::test]
async fn a_single_url_client_never_fails_over() {
    let mut server = TestServer::start().await;
    let client = Client::spawn(server.url(), options("uno")).unwrap();
    let state = Arc::clone(&server.state);
    wait_until("the greeting", move || state.frames_of("hello").len() == 1).await;
    server.send(Control::Drop);
    let state = Arc::clone(&server.state);
    wait_until("a second connection", move || {
        state.frames_of("hello").len() == 2
    })
    .await;
    wait_open(&client).await;
    server.stop().await;
    server.restart().await;
    let state = Arc::clone(&server.state);
    wait_until("a third connection", move || {
        state.frames_of("hello").len() == 3
    })
    .await;
    assert_eq!(client.urls(), [server.url()]);
    assert_eq!(client.url(), server.url());
    assert_eq!(*client.endpoint().borrow(), server.url());
    assert_eq!(client.stats().await.failovers, 0);
}
