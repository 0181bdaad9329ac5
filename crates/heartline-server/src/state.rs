//! State shared by every request and connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use heartline_protocol::validate_room;
use tokio::sync::watch;

use crate::chat::Hub;
use crate::config::{Config, OriginPolicy};
use crate::limits::ConnectionLimiter;
use crate::metrics::{Counters, MetricsHub, ServerStats};
use crate::store::{Store, StoreError};

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
    store: Store,
    metrics: Arc<MetricsHub>,
    counters: Arc<Counters>,
    limiter: ConnectionLimiter,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    started: Instant,
}

impl ServerStats for Hub {
    fn rooms(&self) -> u64 {
        self.room_count() as u64
    }
}

impl AppState {
    /// Opens the database, creates the default rooms and loads the stored
    /// ones. `local_addr` is the address actually bound (it names the
    /// server's own origin).
    pub async fn new(config: Config, local_addr: SocketAddr) -> Result<AppState, StoreError> {
        let hub = Arc::new(Hub::new(config.max_rooms));
        let publisher_hub = hub.clone();
        let store = Store::open(
            &config.db,
            Arc::new(move |msg| {
                publisher_hub.publish(msg);
            }),
        )
        .await?;
        for room in &config.rooms {
            match validate_room(room) {
                Ok(room) => {
                    store.create_room(&room).await?;
                    hub.add_existing_room(&room);
                }
                Err(e) => tracing::warn!(room, error = %e, "default room ignored"),
            }
        }
        for room in store.rooms().await? {
            hub.add_existing_room(&room);
        }
        let counters = Arc::new(Counters::default());
        let metrics = Arc::new(MetricsHub::new(counters.clone(), config.metrics_interval()));
        let origins = OriginPolicy::new(config.allowed_origins.as_deref(), local_addr);
        let limiter = ConnectionLimiter::new(config.max_connections_per_ip, config.max_connections);
        let (shutdown, _) = watch::channel(false);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                local_addr,
                origins,
                hub,
                store,
                metrics,
                counters,
                limiter,
                shutdown,
                next_conn: AtomicU64::new(1),
                started: Instant::now(),
            }),
        })
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

    /// The chat history store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Metrics subscribers and sampler.
    pub fn metrics(&self) -> &Arc<MetricsHub> {
        &self.inner.metrics
    }

    /// Frame and connection counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.inner.counters
    }

    /// Connection limits.
    pub fn limiter(&self) -> &ConnectionLimiter {
        &self.inner.limiter
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

    /// Open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.inner.limiter.open()
    }

    /// Waits until no WebSocket connection is open, or `grace` has passed.
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
