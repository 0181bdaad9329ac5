//! The app-facing handle: cheap to clone, `Send + Sync`, and a thin layer
//! of channels over the driver task.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::core::{
    CancelError, Connection, ConnectionStatus, DeliveryState, Endpoints, Event, Inbound, MessageId,
    Report, RestoreError, SendError, SendOptions, Stats, TimelineEntry,
};

use super::ClientOptions;
use super::driver::{Command, Driver, Outlets, RemoteHandler};

/// Message-state events kept for a slow [`Client::message_events`] receiver
/// before it lags.
const MESSAGE_EVENTS_CAPACITY: usize = 1_024;
/// Reports kept for a slow [`Client::reports`] receiver before it lags.
const REPORTS_CAPACITY: usize = 256;

/// Why a client could not be started.
///
/// ```
/// use heartline::native::{Client, ClientOptions, SpawnError};
/// let error = Client::spawn("not a url", ClientOptions::default()).unwrap_err();
/// assert!(matches!(error, SpawnError::InvalidUrl(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The URL is not a `ws://` or `wss://` URL tungstenite accepts.
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(String),
    /// The list of URLs is empty.
    ///
    /// ```
    /// use heartline::native::{Client, ClientOptions, SpawnError};
    /// let none: Vec<String> = Vec::new();
    /// let error = Client::spawn(none, ClientOptions::default()).unwrap_err();
    /// assert!(matches!(error, SpawnError::NoUrl));
    /// ```
    #[error("no WebSocket URL given")]
    NoUrl,
    /// The runtime or the driver's thread could not be created.
    #[error("could not start the driver: {0}")]
    Io(#[from] std::io::Error),
}

/// A connection to one WebSocket server (or to one of several, failing over
/// between them), driven by the same sans-IO core as the browser: reliable
/// and volatile sends, message states, subscriptions by `socketType`, a
/// status stream and stats.
///
/// Given several URLs (`Client::spawn(["ws://a/ws", "ws://b/ws"], …)`) it
/// starts on the first, stays on a server while it works and, after a
/// failed attempt or a lost link, moves to the next one (round robin) with
/// the backoff going on unchanged; every standing subscription is re-sent
/// with `since` and the outbox re-sent, as after any reconnect (see
/// [`Endpoints`]). [`endpoint`](Self::endpoint) says which one is in use.
///
/// `Client` is a handle: clone it freely and use it from any thread. The
/// connection lives as long as a handle does; when the last one is dropped
/// the driver closes the link (as [`stop`](Self::stop) does) and ends, and
/// every [`Subscription`] then ends too.
///
/// ```no_run
/// use heartline::native::{Client, ClientOptions};
/// use serde_json::json;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::spawn("ws://127.0.0.1:3000/ws", ClientOptions::default())?;
/// let id = client.send(json!({"socketType": "chat.send", "room": "lobby", "text": "hi"})).await?;
/// println!("queued {id}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    urls: Vec<String>,
    endpoint: watch::Receiver<String>,
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<ConnectionStatus>,
    message_events: broadcast::Sender<(MessageId, DeliveryState)>,
    reports: broadcast::Sender<Report>,
    next_subscription: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("urls", &self.shared.urls)
            .field("endpoint", &*self.shared.endpoint.borrow())
            .field("status", &*self.shared.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a client on a thread of its own, with its own current-thread
    /// runtime: for bots, command-line clients and services. Callable from
    /// anywhere, inside a runtime or not. The thread ends shortly after the
    /// last handle is dropped (once the close frame is written).
    ///
    /// `urls` is one URL (`&str`, `String`) or a list of them (an array, a
    /// `Vec`, a slice, [`Endpoints`]) to fail over between, in order. Every
    /// URL is checked here.
    ///
    /// ```no_run
    /// use heartline::native::{Client, ClientOptions};
    /// let client = Client::spawn("ws://127.0.0.1:3000/ws", ClientOptions::default())
    ///     .expect("a valid URL");
    /// // Two servers of one deployment: the second takes over when the first is gone.
    /// let both = Client::spawn(["ws://10.0.0.1:3000/ws", "ws://10.0.0.2:3000/ws"], ClientOptions::default())
    ///     .expect("valid URLs");
    /// # drop((client, both));
    /// ```
    pub fn spawn(urls: impl Into<Endpoints>, options: ClientOptions) -> Result<Client, SpawnError> {
        let endpoints = validate_urls(urls.into())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (client, start) = Client::new(endpoints, options);
        std::thread::Builder::new()
            .name("heartline-client".to_owned())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.spawn_local(start.into_driver().run());
                // Runs until the driver and its sockets' writers are done.
                runtime.block_on(local);
            })?;
        Ok(client)
    }

    /// Starts a client as a task on the caller's `LocalSet`: many clients on
    /// one thread (load generators). The driver runs while the `LocalSet`
    /// is driven. `urls` as in [`spawn`](Self::spawn).
    ///
    /// # Panics
    ///
    /// Outside a `LocalSet` (like `tokio::task::spawn_local`).
    ///
    /// ```no_run
    /// use heartline::native::{Client, ClientOptions};
    ///
    /// # async fn demo() -> Result<(), heartline::native::SpawnError> {
    /// let local = tokio::task::LocalSet::new();
    /// local
    ///     .run_until(async {
    ///         let clients: Vec<Client> = (0..100)
    ///             .map(|_| Client::spawn_local("ws://127.0.0.1:3000/ws", ClientOptions::default()))
    ///             .collect::<Result<_, _>>()?;
    ///         // … drive them …
    ///         # drop(clients);
    ///         Ok(())
    ///     })
    ///     .await
    /// # }
    /// ```
    pub fn spawn_local(
        urls: impl Into<Endpoints>,
        options: ClientOptions,
    ) -> Result<Client, SpawnError> {
        let endpoints = validate_urls(urls.into())?;
        let (client, start) = Client::new(endpoints, options);
        tokio::task::spawn_local(start.into_driver().run());
        Ok(client)
    }

    fn new(endpoints: Endpoints, options: ClientOptions) -> (Client, DriverStart) {
        let (commands, command_queue) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(ConnectionStatus::Idle);
        let first = endpoints.current().unwrap_or_default().to_owned();
        let (endpoint_tx, endpoint) = watch::channel(first);
        let urls = endpoints.urls().to_vec();
        let (message_events, _) = broadcast::channel(MESSAGE_EVENTS_CAPACITY);
        let (reports, _) = broadcast::channel(REPORTS_CAPACITY);
        let start = DriverStart {
            endpoints,
            options,
            commands: command_queue,
            outlets: Outlets {
                status: status_tx,
                endpoint: endpoint_tx,
                message_events: message_events.clone(),
                reports: reports.clone(),
            },
        };
        let client = Client {
            shared: Arc::new(Shared {
                urls,
                endpoint,
                commands,
                status,
                message_events,
                reports,
                next_subscription: AtomicU64::new(1),
            }),
        };
        (client, start)
    }

    /// The server URL: the first of the list when there are several (the
    /// one it starts on; [`endpoint`](Self::endpoint) is the one in use).
    ///
    /// ```no_run
    /// # let client: heartline::native::Client = unimplemented!();
    /// assert!(client.url().starts_with("ws"));
    /// ```
    pub fn url(&self) -> &str {
        self.shared.urls.first().map_or("", String::as_str)
    }

    /// Every server URL, in failover order.
    ///
    /// ```no_run
    /// use heartline::native::{Client, ClientOptions};
    /// let client = Client::spawn(["ws://a:3000/ws", "ws://b:3000/ws"], ClientOptions::default())
    ///     .expect("valid URLs");
    /// assert_eq!(client.urls(), ["ws://a:3000/ws", "ws://b:3000/ws"]);
    /// ```
    pub fn urls(&self) -> &[String] {
        &self.shared.urls
    }

    /// The URL of the server in use (connecting or open, or the one the
    /// next attempt opens), as a watch: read it with `borrow()`, or wait for
    /// a failover with `changed()` / `wait_for`.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// println!("on {}", *client.endpoint().borrow());
    /// let mut endpoint = client.endpoint();
    /// let _ = endpoint.wait_for(|url| url.contains("b:3000")).await;
    /// # }
    /// ```
    pub fn endpoint(&self) -> watch::Receiver<String> {
        self.shared.endpoint.clone()
    }

    // ---- sending ----

    /// Sends a reliable message: the core sets its `id`, keeps it until the
    /// server's `ack` (re-sending it after a reconnect), and queues it while
    /// the link is down. Returns its id once the driver accepted it.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let id = client
    ///     .send(serde_json::json!({"socketType": "chat.send", "room": "lobby", "text": "hi"}))
    ///     .await
    ///     .expect("outbox has room");
    /// # let _ = id;
    /// # }
    /// ```
    pub async fn send(&self, value: Value) -> Result<MessageId, SendError> {
        self.send_with(value, SendOptions::default()).await
    }

    /// [`send`](Self::send) with options (a time-to-live after which the
    /// message fails instead of going out stale).
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// use heartline::core::SendOptions;
    /// let msg = serde_json::json!({"socketType": "chat.send", "room": "lobby", "text": "hi"});
    /// let _ = client.send_with(msg, SendOptions { ttl: Some(60_000) }).await;
    /// # }
    /// ```
    pub async fn send_with(
        &self,
        value: Value,
        options: SendOptions,
    ) -> Result<MessageId, SendError> {
        self.request(|reply| Command::Send {
            value,
            options,
            reply,
        })
        .await
        .unwrap_or(Err(SendError::Closed))
    }

    /// [`send`](Self::send) for any serializable message type.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// #[derive(serde::Serialize)]
    /// #[serde(tag = "socketType", rename = "chat.send")]
    /// struct ChatSend { room: String, text: String }
    /// let _ = client.send_message(&ChatSend { room: "lobby".into(), text: "hi".into() }).await;
    /// # }
    /// ```
    pub async fn send_message<T: Serialize>(&self, message: &T) -> Result<MessageId, SendError> {
        self.send(to_value(message)?).await
    }

    /// Sends a volatile message (typing, cursor): written only when open and
    /// not congested, never queued, never re-sent.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// use heartline::core::SendError;
    /// let typing = serde_json::json!({"socketType": "typing", "room": "lobby"});
    /// match client.send_volatile(typing).await {
    ///     Ok(()) | Err(SendError::NotOpen | SendError::Congested) => {}
    ///     Err(other) => eprintln!("{other}"),
    /// }
    /// # }
    /// ```
    pub async fn send_volatile(&self, value: Value) -> Result<(), SendError> {
        self.request(|reply| Command::SendVolatile { value, reply })
            .await
            .unwrap_or(Err(SendError::Closed))
    }

    /// [`send_volatile`](Self::send_volatile) for any serializable type.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// #[derive(serde::Serialize)]
    /// #[serde(tag = "socketType", rename = "typing")]
    /// struct Typing { room: String }
    /// let _ = client.send_volatile_message(&Typing { room: "lobby".into() }).await;
    /// # }
    /// ```
    pub async fn send_volatile_message<T: Serialize>(&self, message: &T) -> Result<(), SendError> {
        self.send_volatile(to_value(message)?).await
    }

    /// Cancels a queued reliable message (it fails as cancelled); one
    /// already written on the live socket cannot be called back.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client, id: heartline::core::MessageId) {
    /// let _ = client.cancel(&id).await;
    /// # }
    /// ```
    pub async fn cancel(&self, id: &MessageId) -> Result<(), CancelError> {
        let id = id.clone();
        self.request(|reply| Command::Cancel { id, reply })
            .await
            .unwrap_or(Err(CancelError::NotFound))
    }

    // ---- message states ----

    /// Where a reliable message is: queued, sent, acked or failed (and why).
    /// Final states are remembered for the last 4,096 messages; `None` for
    /// an id this client never saw (or forgot).
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client, id: heartline::core::MessageId) {
    /// use heartline::core::DeliveryState;
    /// let acked = client.message_state(&id).await == Some(DeliveryState::Acked);
    /// # let _ = acked;
    /// # }
    /// ```
    pub async fn message_state(&self, id: &MessageId) -> Option<DeliveryState> {
        let id = id.clone();
        self.request(|reply| Command::MessageState { id, reply })
            .await
            .flatten()
    }

    /// Every reliable message's moves (queued, sent, acked, failed) from now
    /// on. A receiver more than 1,024 events behind gets
    /// `RecvError::Lagged` and skips ahead.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// use heartline::core::DeliveryState;
    /// let mut events = client.message_events();
    /// let id = client.send(serde_json::json!({"socketType": "chat.send", "room": "lobby", "text": "hi"}))
    ///     .await
    ///     .expect("queued");
    /// while let Ok((moved, state)) = events.recv().await {
    ///     if moved == id && state.is_final() {
    ///         println!("{id}: {state:?}");
    ///         break;
    ///     }
    /// }
    /// # }
    /// ```
    pub fn message_events(&self) -> broadcast::Receiver<(MessageId, DeliveryState)> {
        self.shared.message_events.subscribe()
    }

    // ---- receiving ----

    /// Receives every message of `socket_type` from now on, until the
    /// returned [`Subscription`] is dropped. Messages wait in the
    /// subscription until read (unbounded: keep reading, or drop it).
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let mut chat = client.subscribe("chat.message");
    /// while let Some(message) = chat.recv().await {
    ///     println!("{}", message.value["text"]);
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self, socket_type: &str) -> Subscription {
        let (tx, messages) = mpsc::unbounded_channel();
        let registration = self.register(
            socket_type,
            Box::new(move |message: &Inbound| {
                // The subscription may be gone already; its drop unregisters.
                let _ = tx.send(message.clone());
            }),
        );
        Subscription {
            messages,
            registration,
        }
    }

    /// Calls `handler` for every message of `socket_type` until the returned
    /// guard is dropped. The handler runs on the driver's thread, in the
    /// driver's loop: keep it short, and do not block on the client from it
    /// (send through a channel or spawn a task instead).
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// let guard = client.on("presence", |message| println!("{}", message.value));
    /// // … later: stop listening
    /// drop(guard);
    /// # }
    /// ```
    #[must_use = "the handler is unregistered when the guard is dropped"]
    pub fn on(
        &self,
        socket_type: &str,
        handler: impl Fn(&Inbound) + Send + 'static,
    ) -> SubscriptionGuard {
        SubscriptionGuard {
            registration: self.register(socket_type, Box::new(handler)),
        }
    }

    fn register(&self, socket_type: &str, handler: RemoteHandler) -> Registration {
        let id = self
            .shared
            .next_subscription
            .fetch_add(1, Ordering::Relaxed);
        // If the driver is gone the handler is dropped with the command,
        // which ends a subscription at once.
        let _ = self.shared.commands.send(Command::Subscribe {
            id,
            socket_type: socket_type.to_owned(),
            handler,
        });
        Registration {
            id,
            socket_type: socket_type.to_owned(),
            commands: self.shared.commands.downgrade(),
        }
    }

    /// The last message of `socket_type` the driver received (whether or
    /// not anyone listened), for a late subscriber.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// if let Some(welcome) = client.last("welcome").await {
    ///     println!("we are {}", welcome.value["name"]);
    /// }
    /// # }
    /// ```
    pub async fn last(&self, socket_type: &str) -> Option<Inbound> {
        let socket_type = socket_type.to_owned();
        self.request(|reply| Command::Last { socket_type, reply })
            .await
            .flatten()
    }

    // ---- state ----

    /// The connection status, as a watch: read it now with `borrow()`, or
    /// wait for a change with `changed()` / `wait_for`.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let mut status = client.status();
    /// let _ = status.wait_for(|s| s.is_open()).await;
    /// # }
    /// ```
    pub fn status(&self) -> watch::Receiver<ConnectionStatus> {
        self.shared.status.clone()
    }

    /// A snapshot of the connection's counters (default values if the
    /// driver has ended).
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let stats = client.stats().await;
    /// println!("{} acked, {} reconnects", stats.acked, stats.reconnects);
    /// # }
    /// ```
    pub async fn stats(&self) -> Stats {
        self.request(Command::Stats).await.unwrap_or_default()
    }

    /// The connection timeline, oldest first (empty if the driver has
    /// ended): state changes, retries, heartbeat losses, refused frames, …
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// for entry in client.timeline().await {
    ///     println!("{} {}", entry.at, entry.event);
    /// }
    /// # }
    /// ```
    pub async fn timeline(&self) -> Vec<TimelineEntry> {
        self.request(Command::Timeline).await.unwrap_or_default()
    }

    /// The last 60 round-trip times (ms), oldest first.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let samples = client.rtt_history().await;
    /// # let _ = samples;
    /// # }
    /// ```
    pub async fn rtt_history(&self) -> Vec<f64> {
        self.request(Command::RttHistory).await.unwrap_or_default()
    }

    /// The core's diagnostics (malformed frames, gaps, unknown acks…) from
    /// now on, for logs. A receiver more than 256 behind lags.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let mut reports = client.reports();
    /// while let Ok(report) = reports.recv().await {
    ///     eprintln!("heartline: {report}");
    /// }
    /// # }
    /// ```
    pub fn reports(&self) -> broadcast::Receiver<Report> {
        self.shared.reports.subscribe()
    }

    // ---- standing subscriptions and the outbox ----

    /// Adds (or replaces) a standing subscription, re-sent on every open
    /// after the greeting; with `resume_stream` it carries `since` (the last
    /// sequence number delivered on that stream). Sent at once when open.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let join = serde_json::json!({"socketType": "join", "room": "lobby"});
    /// client.add_standing("room:lobby", join, Some("lobby".into())).await.expect("a valid frame");
    /// # }
    /// ```
    pub async fn add_standing(
        &self,
        key: impl Into<String>,
        value: Value,
        resume_stream: Option<String>,
    ) -> Result<(), SendError> {
        let key = key.into();
        self.request(|reply| Command::AddStanding {
            key,
            value,
            resume_stream,
            reply,
        })
        .await
        .unwrap_or(Err(SendError::Closed))
    }

    /// Stops re-sending a standing subscription; returns its value. (Send
    /// the matching `leave` yourself.)
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// if client.remove_standing("room:lobby").await.is_some() {
    ///     let _ = client.send(serde_json::json!({"socketType": "leave", "room": "lobby"})).await;
    /// }
    /// # }
    /// ```
    pub async fn remove_standing(&self, key: &str) -> Option<Value> {
        let key = key.to_owned();
        self.request(|reply| Command::RemoveStanding { key, reply })
            .await
            .flatten()
    }

    /// The outbox (every unacked reliable message) as JSON, to save before
    /// the process exits.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) -> std::io::Result<()> {
    /// std::fs::write("outbox.json", client.export_outbox().await)?;
    /// # Ok(()) }
    /// ```
    pub async fn export_outbox(&self) -> String {
        self.request(Command::ExportOutbox)
            .await
            .unwrap_or_default()
    }

    /// Restores a saved outbox: its messages keep their ids (so the server
    /// counts each once) and go out on the next open.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// if let Ok(saved) = std::fs::read_to_string("outbox.json") {
    ///     let restored = client.restore_outbox(&saved).await;
    ///     println!("{restored:?}");
    /// }
    /// # }
    /// ```
    pub async fn restore_outbox(&self, json: &str) -> Result<Vec<MessageId>, RestoreError> {
        let json = json.to_owned();
        self.request(|reply| Command::RestoreOutbox { json, reply })
            .await
            .unwrap_or_else(|| Err(RestoreError::Json("the client has stopped".to_owned())))
    }

    // ---- control ----

    /// Reconnects now: skips the wait before the next attempt, or starts
    /// afresh after the core gave up.
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// client.retry_now();
    /// # }
    /// ```
    pub fn retry_now(&self) {
        self.core_event(Event::RetryNow);
    }

    /// Closes the link on purpose (close code 1000): no reconnect, and
    /// reliable sends are refused with [`SendError::Closed`] until
    /// [`start`](Self::start).
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// client.stop();
    /// let _ = client.status().wait_for(|s| *s == heartline::core::ConnectionStatus::Closed).await;
    /// # }
    /// ```
    pub fn stop(&self) {
        self.core_event(Event::Stop);
    }

    /// Connects again after [`stop`](Self::stop) (the client connects by
    /// itself when spawned).
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// client.stop();
    /// client.start();
    /// # }
    /// ```
    pub fn start(&self) {
        self.core_event(Event::Start);
    }

    fn core_event(&self, event: Event) {
        // A driver that ended has nothing left to start or stop.
        let _ = self.shared.commands.send(Command::Core(event));
    }

    /// Sends a command with a reply channel; `None` if the driver ended.
    async fn request<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.shared.commands.send(command(reply)).ok()?;
        answer.await.ok()
    }
}

/// Every URL must be one tungstenite accepts, and there must be one.
fn validate_urls(endpoints: Endpoints) -> Result<Endpoints, SpawnError> {
    if endpoints.is_empty() {
        return Err(SpawnError::NoUrl);
    }
    for url in endpoints.urls() {
        url.as_str()
            .into_client_request()
            .map_err(|error| SpawnError::InvalidUrl(format!("{url}: {error}")))?;
    }
    Ok(endpoints)
}

fn to_value<T: Serialize>(message: &T) -> Result<Value, SendError> {
    serde_json::to_value(message).map_err(|_| SendError::NotAnObject)
}

/// Everything the driver needs, moved to where it runs.
struct DriverStart {
    endpoints: Endpoints,
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    outlets: Outlets,
}

impl DriverStart {
    fn into_driver(self) -> Driver {
        let ClientOptions {
            config,
            greeting,
            seed,
        } = self.options;
        let mut core = Connection::new(config, seed.unwrap_or_else(random_seed));
        core.set_endpoints(self.endpoints);
        if let Some(greeting) = greeting {
            core.set_greeting(Some(greeting));
        }
        Driver::new(core, self.commands, self.outlets)
    }
}

/// A seed from std's per-process random keys, the time and a counter.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since_epoch.as_nanos());
    }
    hasher.finish()
}

/// Unregisters a handler from the driver when dropped. Holds a weak sender,
/// so it does not keep the driver alive.
#[derive(Debug)]
struct Registration {
    id: u64,
    socket_type: String,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Unsubscribe(self.id));
        }
    }
}

/// The messages of one `socketType`, from [`Client::subscribe`]. Dropping it
/// unregisters it. It ends (`recv` gives `None`) when the client's driver
/// ends. Also a [`futures_util::Stream`].
///
/// ```no_run
/// # async fn demo(client: heartline::native::Client) {
/// use futures_util::StreamExt;
/// let presence = client.subscribe("presence");
/// let first_three: Vec<_> = presence.take(3).collect().await;
/// # let _ = first_three;
/// # }
/// ```
#[derive(Debug)]
pub struct Subscription {
    messages: mpsc::UnboundedReceiver<Inbound>,
    registration: Registration,
}

impl Subscription {
    /// The next message, waiting for it; `None` once the driver ended.
    ///
    /// ```no_run
    /// # async fn demo(client: heartline::native::Client) {
    /// let mut welcome = client.subscribe("welcome");
    /// if let Some(message) = welcome.recv().await {
    ///     println!("token {}", message.value["token"]);
    /// }
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Inbound> {
        self.messages.recv().await
    }

    /// The next message if one is waiting, without waiting.
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// let mut news = client.subscribe("news");
    /// while let Some(message) = news.try_recv() {
    ///     println!("{}", message.value);
    /// }
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<Inbound> {
        self.messages.try_recv().ok()
    }

    /// The type this subscription receives.
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// assert_eq!(client.subscribe("presence").socket_type(), "presence");
    /// # }
    /// ```
    pub fn socket_type(&self) -> &str {
        &self.registration.socket_type
    }
}

impl futures_util::Stream for Subscription {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        self.messages.poll_recv(cx)
    }
}

/// Keeps a handler from [`Client::on`] registered; dropping it unregisters
/// the handler. It does not keep the client alive.
///
/// ```no_run
/// # fn demo(client: heartline::native::Client) {
/// let guard = client.on("typing", |message| println!("{}", message.value["user"]));
/// assert_eq!(guard.socket_type(), "typing");
/// drop(guard); // no more calls
/// # }
/// ```
#[derive(Debug)]
pub struct SubscriptionGuard {
    registration: Registration,
}

impl SubscriptionGuard {
    /// The type the handler listens to.
    ///
    /// ```no_run
    /// # fn demo(client: heartline::native::Client) {
    /// let guard = client.on("presence", |_| {});
    /// assert_eq!(guard.socket_type(), "presence");
    /// # }
    /// ```
    pub fn socket_type(&self) -> &str {
        &self.registration.socket_type
    }
}
