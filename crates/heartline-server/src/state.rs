//! State shared by every request and connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use heartline_protocol::validate_room;
use tokio::sync::watch;

use crate::bus::{Bus, BusError, BusEvent};
use crate::chat::Hub;
use crate::config::{Config, OriginPolicy};
use crate::directory::{DIRECTORY_INTERVAL, Directory};
use crate::limits::{ConnectionLimiter, RoomCreationLimiter};
use crate::metrics::{Counters, MetricsHub, ServerStats};
use crate::store::{ChatStore, ExpiredHistory, Store, StoreError, UserId};
use crate::sync::StreamSync;

/// Longest pause between two housekeeping sweeps.
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    local_addr: SocketAddr,
    origins: OriginPolicy,
    hub: Arc<Hub>,
    sync: Arc<StreamSync>,
    directory: Arc<Directory>,
    store: Store,
    bus: Option<Bus>,
    metrics: Arc<MetricsHub>,
    counters: Arc<Counters>,
    limiter: ConnectionLimiter,
    pending: ConnectionLimiter,
    room_creations: RoomCreationLimiter,
    online: OnlineUsers,
    poll: crate::poll::Registry,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    started: Instant,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The history store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bus could not be reached.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The flags do not fit together.
    #[error("{0}")]
    Config(String),
}

impl ServerStats for Hub {
    fn rooms(&self) -> u64 {
        self.room_count() as u64
    }
}

impl AppState {
    /// Opens the database, creates the default rooms and loads the stored
    /// ones, and starts the housekeeping sweep (room and user expiry). Needs
    /// a Tokio runtime. `local_addr` is the address actually bound (it names
    /// the server's own origin).
    ///
    /// With `--bus`, connects to it first (and refuses a `--db` that other
    /// processes cannot share).
    pub async fn new(config: Config, local_addr: SocketAddr) -> Result<AppState, StartError> {
        let hub = Arc::new(Hub::new(config.max_rooms));
        let sync = Arc::new(StreamSync::new(hub.clone()));
        let bus = match &config.bus {
            Some(url) => {
                if !crate::store::is_postgres_url(&config.db) {
                    return Err(StartError::Config(
                        "--bus needs a PostgreSQL --db that every process shares \
                         (postgres://…): a SQLite file is this process's alone"
                            .into(),
                    ));
                }
                let node = crate::bus::random_node_id();
                Some(Bus::connect(url, node, &config.bus_prefix).await?)
            }
            None => None,
        };
        let (relay, relay_bus) = (sync.clone(), bus.as_ref().map(|(b, _)| b.clone()));
        let store = Store::open(
            &config.db,
            Arc::new(move |msg| {
                relay.committed(msg);
                if let Some(bus) = &relay_bus {
                    bus.publish(BusEvent::Chat(msg.clone()));
                }
            }),
        )
        .await?;
        sync.attach(store.clone());
        for room in &config.rooms {
            match validate_room(room) {
                Ok(room) => {
                    store.create_room(&room).await?;
                    hub.add_permanent_room(&room);
                }
                Err(e) => tracing::warn!(room, error = %e, "default room ignored"),
            }
        }
        for room in store.room_streams().await? {
            hub.add_existing_room(&room.name);
            sync.observed(&room.name, room.epoch, room.last_seq);
        }
        let directory = Arc::new(Directory::default());
        let counters = Arc::new(Counters::default());
        let metrics = Arc::new(
            MetricsHub::new(counters.clone(), config.metrics_interval())
                .with_load_rate(config.metrics_load_rate),
        );
        let origins = OriginPolicy::new(config.allowed_origins.as_deref(), local_addr);
        let limiter = ConnectionLimiter::new(config.max_connections_per_ip, config.max_connections);
        let pending = ConnectionLimiter::new(config.max_pending_per_ip, usize::MAX);
        let room_creations = RoomCreationLimiter::new(config.room_creations_per_minute);
        let (shutdown, _) = watch::channel(false);
        let bus = bus.map(|(bus, notices)| {
            crate::cluster::spawn(&bus, notices, &hub, &sync, &store, shutdown.subscribe());
            bus
        });
        let state = AppState {
            inner: Arc::new(Inner {
                config,
                local_addr,
                origins,
                hub,
                sync,
                directory,
                store,
                bus,
                metrics,
                counters,
                limiter,
                pending,
                room_creations,
                online: OnlineUsers::default(),
                poll: crate::poll::Registry::default(),
                shutdown,
                next_conn: AtomicU64::new(1),
                started: Instant::now(),
            }),
        };
        state.spawn_housekeeping();
        state.inner.directory.spawn(
            &state.inner.hub,
            DIRECTORY_INTERVAL,
            state.shutdown_signal(),
        );
        Ok(state)
    }

    /// Sweeps every quarter of the shortest expiry (at least every
    /// [`MAX_SWEEP_PERIOD`]) until shutdown or the last handle is dropped.
    fn spawn_housekeeping(&self) {
        let config = self.config();
        let Some(shortest) = [config.room_expiry(), config.user_expiry()]
            .into_iter()
            .flatten()
            .min()
        else {
            return;
        };
        let period = (shortest / 4).clamp(Duration::from_millis(10), MAX_SWEEP_PERIOD);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let mut shutdown = self.shutdown_signal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|down| *down) => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                AppState { inner }.sweep().await;
            }
        });
    }

    /// One housekeeping pass: expires rooms empty and idle for
    /// `--room-expiry-ms` (not the configured ones) and users unseen for
    /// `--user-expiry-ms` who have no stored message and are offline.
    pub async fn sweep(&self) {
        let config = self.config();
        if let Some(idle) = config.room_expiry() {
            let history = if config.keep_expired_history {
                ExpiredHistory::Keep
            } else {
                ExpiredHistory::Delete
            };
            let mut queued = None;
            let expired = self.hub().expire_idle(idle, |names| {
                queued = Some(self.store().expire_rooms(names.to_vec(), history));
            });
            if let Some(done) = queued {
                match done.await {
                    Ok(Ok(())) => tracing::info!(rooms = ?expired, ?history, "rooms expired"),
                    Ok(Err(e)) => tracing::error!(error = %e, "room expiry failed"),
                    Err(_) => tracing::debug!("room expiry: store closed"),
                }
            }
        }
        self.inner.room_creations.prune(std::time::Instant::now());
        if let Some(idle) = config.user_expiry() {
            let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
            let before = crate::now_ms().saturating_sub(idle_ms);
            match self
                .store()
                .expire_users(before, self.inner.online.ids())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(users = n, "idle users expired"),
                Err(e) => tracing::error!(error = %e, "user expiry failed"),
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The `Origin` allow-list.
    pub fn origins(&self) -> &OriginPolicy {
        &self.inner.origins
    }

    /// Rooms and members.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Keeps each room's delivered stream whole (gap fills).
    pub fn sync(&self) -> &Arc<StreamSync> {
        &self.inner.sync
    }

    /// The live room directory's recipients.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// The chat history store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The bus to the other processes of a cluster (`--bus`), if any.
    pub fn bus(&self) -> Option<&Bus> {
        self.inner.bus.as_ref()
    }

    /// Metrics subscribers and sampler.
    pub fn metrics(&self) -> &Arc<MetricsHub> {
        &self.inner.metrics
    }

    /// Frame and connection counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.inner.counters
    }

    /// Limits on upgraded WebSocket connections.
    pub fn limiter(&self) -> &ConnectionLimiter {
        &self.inner.limiter
    }

    /// Limits on TCP connections still speaking HTTP (not upgraded).
    pub fn pending(&self) -> &ConnectionLimiter {
        &self.inner.pending
    }

    /// Per-user room creation limits.
    pub fn room_creations(&self) -> &RoomCreationLimiter {
        &self.inner.room_creations
    }

    /// Users with an open, welcomed connection (never expired).
    pub fn online(&self) -> &OnlineUsers {
        &self.inner.online
    }

    /// The open long-poll sessions.
    pub(crate) fn poll(&self) -> &crate::poll::Registry {
        &self.inner.poll
    }

    /// Long-poll sessions open now (they count as connections too).
    pub fn poll_sessions(&self) -> usize {
        self.inner.poll.len()
    }

    /// Long-poll `recv`s in progress now (most are held, waiting for a frame).
    pub fn poll_recvs(&self) -> usize {
        self.inner.poll.recvs_in_progress()
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Tells every connection to close with 1001 and refuses new ones.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Resolves once shutdown has begun.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Open connections: WebSockets and long-poll sessions.
    pub fn open_connections(&self) -> usize {
        self.inner.limiter.open()
    }

    /// Waits until no connection (socket or poll session) is open, or `grace` has passed.
    /// Returns whether all closed.
    pub async fn wait_connections_closed(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        // Connections end on their own once told to; polling a counter every
        // few ms for at most `grace` is simpler than another channel.
        while self.open_connections() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Users with at least one welcomed connection open.
#[derive(Debug, Default)]
pub struct OnlineUsers {
    counts: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl OnlineUsers {
    /// Marks `user` online until the guard is dropped.
    pub fn enter(&self, user: UserId) -> OnlineGuard {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_insert(0) += 1;
        OnlineGuard {
            counts: self.counts.clone(),
            user,
        }
    }

    /// The users online now.
    pub fn ids(&self) -> Vec<UserId> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

/// Keeps one connection's user online.
#[derive(Debug)]
pub struct OnlineGuard {
    counts: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}
