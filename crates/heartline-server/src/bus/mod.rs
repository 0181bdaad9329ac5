//! The bus: fan-out of chat messages, typing and presence across server
//! processes through Redis pub/sub.
//!
//! The database is the source of truth and the bus is only the doorbell:
//! every process publishes what its own clients did, and every process
//! relays what the others did to its own clients. Nothing on the bus is
//! durable. A process that may have missed events (the link dropped, Redis
//! restarted, or it read too slowly) is told so with
//! [`BusNotice::Resubscribed`] or [`BusNotice::Lagged`], and re-syncs: it
//! fills `seq` gaps of its rooms from the database and re-sends its
//! presence.
//!
//! One [`Bus`] holds two Redis connections: a publisher and a subscriber to
//! one channel (`{prefix}:bus`). Both reconnect on their own, forever, with
//! exponential backoff and jitter capped at [`BusConfig::reconnect_max`].
//!
//! * [`Bus::publish`] never blocks and never awaits Redis: it appends to a
//!   bounded queue that a background task sends in order (pipelined). While
//!   Redis is down the queue keeps the newest [`BusConfig::queue`] events
//!   and drops the oldest, counted in [`BusStats::dropped`]. A batch whose
//!   `PUBLISH` failed is sent again after the reconnect, so an event can
//!   arrive twice: receivers ignore a chat message whose `seq` they have
//!   (they must do that anyway to fill gaps).
//! * The subscriber pings Redis every [`BusConfig::heartbeat`] on its own
//!   connection, so a dead link is noticed even when nobody publishes; it
//!   then resubscribes and emits [`BusNotice::Resubscribed`].
//! * Every heartbeat the bus publishes [`BusEvent::Alive`]; [`Bus::close`]
//!   publishes [`BusEvent::Gone`]. Presence heartbeats are the caller's
//!   (it knows the rooms): re-send [`BusEvent::Presence`] every
//!   [`Bus::heartbeat`], and expire another node's entries after
//!   [`Bus::expiry`] without any event from it.
//! * The notices channel is bounded ([`BusConfig::notices`]). When the
//!   consumer falls behind, the reader does not wait for it: Redis would
//!   buffer without bound, or disconnect us, and a slow reader would hold
//!   every later event. It drops the events that do not fit, counts them in
//!   [`BusStats::missed`], and owes the consumer a [`BusNotice::Lagged`],
//!   delivered as soon as there is room, before any later event: the
//!   consumer then re-syncs from the database like after a resubscription.
//! * Bad data never panics: a payload that is larger than
//!   [`BusConfig::max_payload`] or not a valid [`Envelope`] is logged
//!   (`tracing::warn`, at most once a second) and counted in
//!   [`BusStats::malformed`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), heartline_server::bus::BusError> {
//! use heartline_server::bus::{Bus, BusEvent, BusNotice, random_node_id};
//! let (bus, mut notices) = Bus::connect("redis://127.0.0.1:6379", random_node_id(), "heartline").await?;
//! bus.publish(BusEvent::Typing { room: "lobby".into(), from: "ada".into() });
//! while let Some(notice) = notices.recv().await {
//!     match notice {
//!         BusNotice::Event { node, event } => println!("{node}: {event:?}"),
//!         BusNotice::Resubscribed | BusNotice::Lagged { .. } => println!("re-sync from the database"),
//!     }
//! }
//! # Ok(()) }
//! ```

mod link;
mod publisher;
mod subscriber;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use heartline_protocol::ChatMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

/// This process's id on the bus: random at start (see [`random_node_id`]).
/// Events a node sent come back to it from Redis and are filtered out.
pub type NodeId = u64;

/// A fresh random node id in `[1, 2^53)` (exact as a JavaScript number, so
/// `/healthz` can show it).
///
/// ```
/// let a = heartline_server::bus::random_node_id();
/// assert!(a >= 1 && a < 1 << 53);
/// ```
pub fn random_node_id() -> NodeId {
    crate::ids::new_epoch()
}

/// What processes tell each other. JSON on the wire inside an [`Envelope`],
/// tagged by `kind`.
///
/// ```
/// use heartline_server::bus::BusEvent;
/// let e = BusEvent::Typing { room: "lobby".into(), from: "ada".into() };
/// let json = serde_json::to_string(&e).unwrap();
/// assert_eq!(json, r#"{"kind":"typing","room":"lobby","from":"ada"}"#);
/// assert_eq!(serde_json::from_str::<BusEvent>(&json).unwrap(), e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    /// A committed chat message.
    Chat(ChatMessage),
    /// `from` is typing in `room`.
    Typing {
        /// The room.
        room: String,
        /// The typist's display name.
        from: String,
    },
    /// This node's members of `room`: display name -> number of tabs, and
    /// how many distinct users. Sent on change and re-sent every heartbeat;
    /// receivers expire a node's entries when its heartbeat stops. An empty
    /// `names` means the node has nobody left in the room.
    Presence {
        /// The room.
        room: String,
        /// Display name -> how many of this node's connections show it.
        names: BTreeMap<String, u32>,
        /// Distinct users of this node in the room.
        users: u32,
    },
    /// The sender is alive (sent every heartbeat, even with no room).
    Alive,
    /// The sender is shutting down cleanly: forget its presence now.
    Gone,
}

/// One bus message: the sending node and its event. This is the JSON of a
/// Redis payload.
///
/// ```
/// use heartline_server::bus::{BusEvent, Envelope};
/// let env = Envelope { node: 7, event: BusEvent::Alive };
/// let json = env.to_json();
/// assert_eq!(json, r#"{"node":7,"event":{"kind":"alive"}}"#);
/// assert_eq!(Envelope::from_json(json.as_bytes()).unwrap(), env);
/// assert!(Envelope::from_json(b"{\"node\":7}").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that sent it.
    pub node: NodeId,
    /// What it says.
    pub event: BusEvent,
}

impl Envelope {
    /// The wire form.
    pub fn to_json(&self) -> String {
        // Strings, integers and maps with string keys: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a payload.
    pub fn from_json(payload: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// What the bus tells its consumer.
///
/// ```
/// use heartline_server::bus::{BusEvent, BusNotice};
/// assert!(BusNotice::Resubscribed.needs_resync());
/// assert!(BusNotice::Lagged { missed: 3 }.needs_resync());
/// assert!(!BusNotice::Event { node: 1, event: BusEvent::Alive }.needs_resync());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusNotice {
    /// An event from another node.
    Event {
        /// The node that sent it.
        node: NodeId,
        /// The event.
        event: BusEvent,
    },
    /// The subscription was re-established after the link dropped or Redis
    /// restarted: events may have been missed in between, and the other
    /// nodes may have missed ours. Re-sync: fill chat gaps from the
    /// database and re-send this node's presence.
    Resubscribed,
    /// The consumer read too slowly and `missed` events were dropped before
    /// this notice (see the module docs). Fill chat gaps from the
    /// database; other nodes' presence is repaired by their next heartbeat.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl BusNotice {
    /// Whether the consumer must re-sync from the database.
    pub fn needs_resync(&self) -> bool {
        !matches!(self, BusNotice::Event { .. })
    }
}

/// Counters for `/healthz` and tests.
///
/// ```
/// let stats = heartline_server::bus::BusStats::default();
/// assert!(!stats.connected && stats.published == 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    /// Events Redis accepted (`PUBLISH` answered), including heartbeats.
    pub published: u64,
    /// Events dropped from a full publish queue (oldest first).
    pub dropped: u64,
    /// Events waiting to be published.
    pub queued: usize,
    /// Events received from other nodes: delivered as notices, or dropped
    /// and counted in `missed` too.
    pub received: u64,
    /// This node's own events that came back (not delivered).
    pub own: u64,
    /// Payloads ignored as too large or not an [`Envelope`].
    pub malformed: u64,
    /// Events from other nodes dropped because the consumer was slow.
    pub missed: u64,
    /// Times the publisher link was re-established.
    pub reconnects: u64,
    /// Times the subscription was re-established ([`BusNotice::Resubscribed`]).
    pub resubscribes: u64,
    /// The publisher link is up.
    pub publisher_connected: bool,
    /// The subscription is up.
    pub subscribed: bool,
    /// Both are up.
    pub connected: bool,
}

/// The bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL is not a Redis URL.
    #[error("invalid bus URL {url}: {source}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused or failed a step of the start.
    #[error("cannot reach Redis at {url} ({step}): {source}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What failed: connecting the publisher or subscribing.
        step: &'static str,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("cannot reach Redis at {url} ({step}): no answer within {after:?}")]
    Timeout {
        /// The URL, without its password.
        url: String,
        /// What timed out.
        step: &'static str,
        /// The deadline.
        after: Duration,
    },
}

/// How a [`Bus`] behaves. [`BusConfig::new`] gives the defaults.
///
/// ```
/// use std::time::Duration;
/// use heartline_server::bus::BusConfig;
/// let mut config = BusConfig::new("redis://127.0.0.1:6379", 42);
/// config.channel_prefix = "staging".into();
/// config.heartbeat = Duration::from_millis(500);
/// assert_eq!(config.channel(), "staging:bus");
/// ```
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// This process's id.
    pub node: NodeId,
    /// Processes with the same prefix share rooms. Default `heartline`.
    pub channel_prefix: String,
    /// How often [`BusEvent::Alive`] is sent and the subscription pinged.
    /// Default 2 s.
    pub heartbeat: Duration,
    /// Deadline of a connect, a subscribe, a ping or a publish. Default 2 s.
    pub link_timeout: Duration,
    /// Longest wait between reconnect attempts. Default 2 s.
    pub reconnect_max: Duration,
    /// Most events waiting to be published. Default 4,096.
    pub queue: usize,
    /// Capacity of the notices channel. Default 4,096.
    pub notices: usize,
    /// Largest payload parsed, in bytes. Default 1 MiB.
    pub max_payload: usize,
}

impl BusConfig {
    /// The defaults for `url` and `node`.
    pub fn new(url: &str, node: NodeId) -> Self {
        BusConfig {
            url: url.to_string(),
            node,
            channel_prefix: "heartline".to_string(),
            heartbeat: Duration::from_secs(2),
            link_timeout: Duration::from_secs(2),
            reconnect_max: Duration::from_secs(2),
            queue: 4096,
            notices: 4096,
            max_payload: 1 << 20,
        }
    }

    /// The Redis channel: `{channel_prefix}:bus`.
    pub fn channel(&self) -> String {
        format!("{}:bus", self.channel_prefix)
    }
}

/// A connection to the bus; cheap to clone. The background tasks stop when
/// the last clone is dropped (or at [`Bus::close`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), heartline_server::bus::BusError> {
/// use heartline_server::bus::{Bus, BusEvent};
/// let (bus, _notices) = Bus::connect("redis://127.0.0.1:6379", 1, "heartline").await?;
/// bus.publish(BusEvent::Alive);
/// println!("{:?}", bus.stats());
/// bus.close(std::time::Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Bus {
    handle: Arc<Handle>,
}

/// Stops the tasks when the last [`Bus`] goes.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// What the handle and the tasks share.
#[derive(Debug)]
struct Shared {
    config: BusConfig,
    channel: String,
    /// The URL without its password, for logs and errors.
    url: String,
    queue: Mutex<VecDeque<String>>,
    /// A batch taken from the queue and not yet published.
    in_flight: AtomicU64,
    wake: Notify,
    counters: Counters,
    publisher_up: AtomicBool,
    subscribed: AtomicBool,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    own: AtomicU64,
    malformed: AtomicU64,
    missed: AtomicU64,
    reconnects: AtomicU64,
    resubscribes: AtomicU64,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a payload, dropping the oldest past the capacity.
    fn enqueue(&self, payload: String) {
        let mut queue = self.queue();
        queue.push_back(payload);
        self.trim(&mut queue);
        drop(queue);
        self.wake.notify_one();
    }

    /// Drops the oldest payloads past the capacity.
    fn trim(&self, queue: &mut VecDeque<String>) {
        let cap = self.config.queue.max(1);
        let mut dropped = 0;
        while queue.len() > cap {
            queue.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    fn encode(&self, event: &BusEvent) -> String {
        Envelope {
            node: self.config.node,
            event: event.clone(),
        }
        .to_json()
    }
}

impl Bus {
    /// Connects to Redis at `url` as `node`, on the channel of
    /// `channel_prefix`, with the other settings at their defaults (see
    /// [`Bus::connect_with`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), heartline_server::bus::BusError> {
    /// let (bus, notices) = heartline_server::bus::Bus::connect(
    ///     "redis://127.0.0.1:6379",
    ///     heartline_server::bus::random_node_id(),
    ///     "heartline",
    /// ).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        url: &str,
        node: NodeId,
        channel_prefix: &str,
    ) -> Result<(Bus, mpsc::Receiver<BusNotice>), BusError> {
        let mut config = BusConfig::new(url, node);
        config.channel_prefix = channel_prefix.to_string();
        Bus::connect_with(config).await
    }

    /// Connects the publisher and subscribes, then starts the background
    /// tasks. Fails (within about twice [`BusConfig::link_timeout`]) if
    /// Redis cannot be reached now; once started, the bus reconnects on its
    /// own forever. Needs a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), heartline_server::bus::BusError> {
    /// use heartline_server::bus::{Bus, BusConfig};
    /// let mut config = BusConfig::new("redis://127.0.0.1:6379", 1);
    /// config.queue = 100;
    /// let (bus, notices) = Bus::connect_with(config).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(
        config: BusConfig,
    ) -> Result<(Bus, mpsc::Receiver<BusNotice>), BusError> {
        let url = link::redact(&config.url);
        let client =
            redis::Client::open(config.url.as_str()).map_err(|source| BusError::InvalidUrl {
                url: url.clone(),
                source,
            })?;
        let publisher = link::connect_publisher(&client, &url, config.link_timeout).await?;
        let channel = config.channel();
        let pubsub = link::subscribe(&client, &url, &channel, config.link_timeout).await?;
        let (tx, rx) = mpsc::channel(config.notices.max(1));
        let shared = Arc::new(Shared {
            channel,
            url,
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicU64::new(0),
            wake: Notify::new(),
            counters: Counters::default(),
            publisher_up: AtomicBool::new(true),
            subscribed: AtomicBool::new(true),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(publisher::run(
            shared.clone(),
            client.clone(),
            publisher,
            stopped.clone(),
        ));
        tokio::spawn(subscriber::run(shared.clone(), client, pubsub, tx, stopped));
        tracing::info!(
            url = %shared.url,
            channel = %shared.channel,
            node = shared.config.node,
            "bus connected"
        );
        Ok((
            Bus {
                handle: Arc::new(Handle { shared, stop }),
            },
            rx,
        ))
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Queues an event for publishing. Never blocks and never awaits Redis:
    /// a background task publishes in order. While Redis is down the queue
    /// keeps the newest events and drops the oldest (counted in
    /// [`BusStats::dropped`]): the database is the source of truth and the
    /// receivers re-sync.
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// use heartline_server::bus::BusEvent;
    /// bus.publish(BusEvent::Typing { room: "lobby".into(), from: "ada".into() });
    /// # }
    /// ```
    pub fn publish(&self, event: BusEvent) {
        let shared = self.shared();
        shared.enqueue(shared.encode(&event));
    }

    /// This process's id.
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// println!("node {}", bus.node());
    /// # }
    /// ```
    pub fn node(&self) -> NodeId {
        self.shared().config.node
    }

    /// The Redis channel (`{prefix}:bus`).
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// assert!(bus.channel().ends_with(":bus"));
    /// # }
    /// ```
    pub fn channel(&self) -> &str {
        &self.shared().channel
    }

    /// The heartbeat period: re-send this node's presence this often.
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// let every = bus.heartbeat();
    /// # }
    /// ```
    pub fn heartbeat(&self) -> Duration {
        self.shared().config.heartbeat
    }

    /// How long another node's presence stays without any event from it
    /// (three heartbeats, so one lost heartbeat is not a departure).
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// assert_eq!(bus.expiry(), bus.heartbeat() * 3);
    /// # }
    /// ```
    pub fn expiry(&self) -> Duration {
        self.heartbeat() * 3
    }

    /// The counters now.
    ///
    /// ```no_run
    /// # fn demo(bus: &heartline_server::bus::Bus) {
    /// let stats = bus.stats();
    /// println!("{} published, {} dropped", stats.published, stats.dropped);
    /// # }
    /// ```
    pub fn stats(&self) -> BusStats {
        let shared = self.shared();
        let c = &shared.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let publisher_connected = shared.publisher_up.load(Ordering::Relaxed);
        let subscribed = shared.subscribed.load(Ordering::Relaxed);
        BusStats {
            published: get(&c.published),
            dropped: get(&c.dropped),
            queued: shared.queue().len(),
            received: get(&c.received),
            own: get(&c.own),
            malformed: get(&c.malformed),
            missed: get(&c.missed),
            reconnects: get(&c.reconnects),
            resubscribes: get(&c.resubscribes),
            publisher_connected,
            subscribed,
            connected: publisher_connected && subscribed,
        }
    }

    /// Shuts down cleanly: publishes [`BusEvent::Gone`], waits up to `grace`
    /// for the queue to be sent, then stops the background tasks (also for
    /// the other clones). Returns whether everything was sent.
    ///
    /// ```no_run
    /// # async fn demo(bus: heartline_server::bus::Bus) {
    /// if !bus.close(std::time::Duration::from_secs(1)).await {
    ///     eprintln!("some bus events were not sent");
    /// }
    /// # }
    /// ```
    pub async fn close(&self, grace: Duration) -> bool {
        self.publish(BusEvent::Gone);
        let shared = self.shared();
        let deadline = tokio::time::Instant::now() + grace;
        // The publisher drains in a few round trips; polling a length for
        // at most `grace` is simpler than another channel.
        let sent = loop {
            if shared.queue().is_empty() && shared.in_flight.load(Ordering::Acquire) == 0 {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.handle.stop.send_replace(true);
        sent
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn chat() -> ChatMessage {
        ChatMessage {
            stream: "lobby".into(),
            epoch: 7,
            seq: 3,
            id: "c1".into(),
            from: "ada".into(),
            text: "hi \"there\" ✓".into(),
            at: 1_700_000_000_000,
        }
    }

    #[test]
    fn every_event_round_trips_as_tagged_json() {
        let names = BTreeMap::from([("ada".to_string(), 2), ("bo".to_string(), 1)]);
        let events = [
            BusEvent::Chat(chat()),
            BusEvent::Typing {
                room: "lobby".into(),
                from: "ada".into(),
            },
            BusEvent::Presence {
                room: "lobby".into(),
                names,
                users: 2,
            },
            BusEvent::Presence {
                room: "empty".into(),
                names: BTreeMap::new(),
                users: 0,
            },
            BusEvent::Alive,
            BusEvent::Gone,
        ];
        let kinds = ["chat", "typing", "presence", "presence", "alive", "gone"];
        for (event, kind) in events.into_iter().zip(kinds) {
            let env = Envelope {
                node: u64::MAX,
                event,
            };
            let json = env.to_json();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["event"]["kind"], kind, "{json}");
            assert_eq!(Envelope::from_json(json.as_bytes()).unwrap(), env);
        }
        let json = Envelope {
            node: 1,
            event: BusEvent::Chat(chat()),
        }
        .to_json();
        assert!(json.contains(r#""kind":"chat","stream":"lobby""#), "{json}");
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"null",
            b"{}",
            b"\xff\xfe",
            br#"{"node":-1,"event":{"kind":"alive"}}"#,
            br#"{"node":1,"event":{"kind":"nope"}}"#,
            br#"{"node":1,"event":{"kind":"typing","room":"r"}}"#,
            br#"{"node":1,"event":{"kind":"presence","room":"r","names":{"a":-1},"users":1}}"#,
        ] {
            assert!(Envelope::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let mut config = BusConfig::new("redis://127.0.0.1:1", 1);
        config.queue = 3;
        let shared = Shared {
            channel: config.channel(),
            url: config.url.clone(),
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicU64::new(0),
            wake: Notify::new(),
            counters: Counters::default(),
            publisher_up: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            config,
        };
        for i in 0..5 {
            shared.enqueue(i.to_string());
        }
        assert_eq!(shared.queue().iter().collect::<Vec<_>>(), ["2", "3", "4"]);
        assert_eq!(shared.counters.dropped.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn connect_fails_clearly_without_redis() {
        let err = Bus::connect("http://nope", 1, "t").await.unwrap_err();
        assert!(matches!(err, BusError::InvalidUrl { .. }), "{err}");
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://:secret@127.0.0.1:{port}");
        let err = Bus::connect(&url, 1, "t").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cannot reach Redis"), "{text}");
        assert!(!text.contains("secret"), "password leaked: {text}");
    }
}
