//! The native driver (feature `tokio`): the same sans-IO
//! [`Connection`](crate::core::Connection) as the browser, fed by tokio
//! timers and a tokio-tungstenite socket, so bots, command-line clients,
//! services and load generators get the browser's policy (backoff,
//! heartbeat, outbox and acks, stream resume, flow control).
//!
//! - [`Client`] is the handle: `Clone + Send + Sync`, it talks to one driver
//!   task over channels. It mirrors the browser's `SocketHandle`: reliable
//!   and volatile sends, message states, subscriptions by `socketType` with
//!   guards, a status watch, stats, standing subscriptions, the outbox.
//! - Give it one URL or several servers of one deployment
//!   (`Client::spawn(["ws://a/ws", "ws://b/ws"], …)`): the core picks the
//!   URL of every attempt and fails over round robin with the same backoff
//!   (see [`Endpoints`](crate::core::Endpoints));
//!   [`Client::endpoint`] watches the one in use.
//! - The driver task owns the `Connection`, the handler
//!   [`Registry`](crate::core::Registry), one tokio deadline per
//!   [`TimerKind`](crate::core::TimerKind) and at most one socket. The core's
//!   registry and greeting are `Rc`-based, so the task is `!Send`: it runs on
//!   a `LocalSet`, either on a thread of its own ([`Client::spawn`]) or on
//!   the caller's ([`Client::spawn_local`], many clients on one thread).
//!
//! How the browser's driver contract maps here:
//!
//! - time is milliseconds since the driver started (tokio's monotonic
//!   `Instant`; the core only needs a consistent clock);
//! - a binary frame is `FrameData::Binary(len)`; tungstenite answers
//!   WebSocket pings itself; the core's heartbeat is its own JSON ping;
//! - `bufferedAmount` is the bytes handed to the socket's writer task and not
//!   yet flushed to the TCP socket: reported after every batch of writes and
//!   when the writer drains;
//! - a failed connect is `error` then `close` 1006, like a browser; the
//!   core's connect timeout applies; there are no `online`/`offline` or
//!   visibility signals, and `Unsupported` never happens;
//! - on `Action::Close` the socket writes what it holds and the close frame
//!   within a short grace period, then its task is aborted: a socket let go
//!   of never lingers.
//!
//! # A whole session
//!
//! ```
//! use heartline::core::{ConnectionStatus, DeliveryState};
//! use heartline::native::{Client, ClientOptions};
//! use serde_json::json;
//! # use futures_util::{SinkExt, StreamExt};
//! # use tokio_tungstenite::tungstenite::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A tiny server: it welcomes, acks ids and echoes chat.send as chat.message.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("ws://{}/ws", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     let Ok((tcp, _)) = listener.accept().await else { return };
//! #     let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
//! #     let mut seq = 0;
//! #     while let Some(Ok(Message::Text(text))) = ws.next().await {
//! #         let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
//! #         let mut replies = Vec::new();
//! #         match frame["socketType"].as_str() {
//! #             Some("hello") => replies.push(json!({"socketType":"welcome","name":frame["name"]})),
//! #             Some("chat.send") => {
//! #                 seq += 1;
//! #                 replies.push(json!({"socketType":"chat.message","stream":"lobby","seq":seq,"text":frame["text"]}));
//! #             }
//! #             Some("ping") => replies.push(json!({"socketType":"pong","t":frame["t"]})),
//! #             _ => {}
//! #         }
//! #         if let Some(id) = frame["id"].as_str() {
//! #             replies.push(json!({"socketType":"ack","id":id}));
//! #         }
//! #         for reply in replies {
//! #             if ws.send(Message::text(reply.to_string())).await.is_err() { return; }
//! #         }
//! #     }
//! # });
//! // A client on its own thread; the greeting is built afresh on every open.
//! let options = ClientOptions::new()
//!     .greeting(|| Some(json!({"socketType": "hello", "name": "bot"})));
//! let client = Client::spawn(url.as_str(), options)?;
//!
//! // Listen by socketType: a stream of messages, or a handler with a guard.
//! let mut chat = client.subscribe("chat.message");
//! let _welcome = client.on("welcome", |message| println!("welcome {}", message.value["name"]));
//!
//! // A standing subscription is re-sent (with `since`) after every reconnect.
//! client.add_standing("room:lobby", json!({"socketType": "join", "room": "lobby"}), Some("lobby".into()))
//!     .await?;
//!
//! // A reliable send: queued until open, kept until acked, re-sent after a drop.
//! let mut moves = client.message_events();
//! let id = client.send(json!({"socketType": "chat.send", "room": "lobby", "text": "hi"})).await?;
//! while let Ok((moved, state)) = moves.recv().await {
//!     if moved == id && state.is_final() {
//!         assert_eq!(state, DeliveryState::Acked);
//!         break;
//!     }
//! }
//! assert_eq!(client.message_state(&id).await, Some(DeliveryState::Acked));
//!
//! let message = chat.recv().await.expect("the echo");
//! assert_eq!(message.value["text"], "hi");
//! assert!(client.status().borrow().is_open());
//! assert_eq!(client.stats().await.acked, 1);
//!
//! // Close on purpose: no reconnect.
//! client.stop();
//! client.status().wait_for(|s| *s == ConnectionStatus::Closed).await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod driver;
mod poll;
mod socket;

use std::fmt;

use serde_json::Value;

use crate::core::Config;

pub use client::{Client, SpawnError, Subscription, SubscriptionGuard};

/// Builds the greeting sent first on every open, called afresh for each
/// attempt (so a token learned from `welcome` is used on the next one).
/// `None` sends no greeting. Runs on the driver's thread.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use heartline::native::Greeting;
/// use serde_json::json;
///
/// let token: Arc<Mutex<Option<String>>> = Arc::default();
/// let current = Arc::clone(&token);
/// let mut greeting: Greeting = Box::new(move || {
///     let token = current.lock().ok()?.clone();
///     Some(json!({"socketType": "hello", "name": "bot", "token": token}))
/// });
/// *token.lock().unwrap() = Some("t-1".into()); // learned from `welcome`
/// assert_eq!(greeting().unwrap()["token"], "t-1");
/// ```
pub type Greeting = Box<dyn FnMut() -> Option<Value> + Send>;

/// How a [`Client`] connects: the core's policy, the greeting, and the seed
/// of its jitter and message ids.
///
/// ```
/// use heartline::core::Config;
/// use heartline::native::ClientOptions;
/// use serde_json::json;
///
/// let options = ClientOptions::new()
///     .config(Config { max_retries: None, ..Config::default() })
///     .greeting(|| Some(json!({"socketType": "hello", "name": "bot"})))
///     .seed(7);
/// assert_eq!(options.seed, Some(7));
/// ```
#[derive(Default)]
pub struct ClientOptions {
    /// The connection policy (backoff, heartbeat, outbox, …).
    pub config: Config,
    /// The greeting, called on every open.
    pub greeting: Option<Greeting>,
    /// Seed of the backoff jitter and the message-id prefix; random when
    /// `None` (pass one in tests for reproducible runs).
    pub seed: Option<u64>,
}

impl ClientOptions {
    /// The defaults: `Config::default()`, no greeting, a random seed.
    ///
    /// ```
    /// let options = heartline::native::ClientOptions::new();
    /// assert!(options.greeting.is_none());
    /// ```
    pub fn new() -> Self {
        ClientOptions::default()
    }

    /// Sets the connection policy.
    ///
    /// ```
    /// use heartline::core::Config;
    /// let options = heartline::native::ClientOptions::new()
    ///     .config(Config { outbox_limit: 10_000, ..Config::default() });
    /// assert_eq!(options.config.outbox_limit, 10_000);
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the greeting builder, called on every open.
    ///
    /// ```
    /// let options = heartline::native::ClientOptions::new()
    ///     .greeting(|| Some(serde_json::json!({"socketType": "hello", "name": "bot"})));
    /// assert!(options.greeting.is_some());
    /// ```
    pub fn greeting(mut self, greeting: impl FnMut() -> Option<Value> + Send + 'static) -> Self {
        self.greeting = Some(Box::new(greeting));
        self
    }

    /// Sets the seed of the jitter and message ids.
    ///
    /// ```
    /// assert_eq!(heartline::native::ClientOptions::new().seed(3).seed, Some(3));
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("config", &self.config)
            .field("greeting", &self.greeting.is_some())
            .field("seed", &self.seed)
            .finish()
    }
}
