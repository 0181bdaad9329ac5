//! Keeping each room's delivered stream whole: messages reach the hub from
//! this process's commits (and, in a cluster, from the bus), maybe out of
//! order or with holes; [`StreamSync`] hands them to [`Hub::publish`] and,
//! when the hub reports a gap, fills it from the store, which is the source
//! of truth.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use heartline_protocol::ChatMessage;
use tokio::runtime::Handle;

use crate::chat::{Hub, Offer};
use crate::store::{ChatStore, Store};

/// Messages read per round of a fill.
pub const FILL_BATCH: usize = 500;

/// A join whose history ran ahead of the room waits this long for the
/// messages in between to arrive by themselves before it fills them.
pub const JOIN_GRACE: Duration = Duration::from_millis(200);

/// A gap first waits this long: with several writers, the message missing
/// is usually only a little behind (committed, its publish not yet run),
/// and comes by itself without a database read.
pub const FILL_GRACE: Duration = Duration::from_millis(20);

/// Rounds of a fill that may fail (store unreachable) before it gives up;
/// the next gap or re-sync starts a new one.
const MAX_FILL_FAILURES: u32 = 5;

/// Routes committed messages into the hub and fills its gaps.
///
/// ```no_run
/// # async fn demo() -> Result<(), heartline_server::store::StoreError> {
/// use std::sync::Arc;
/// use heartline_server::{chat::Hub, store::Store, sync::StreamSync};
/// let sync = Arc::new(StreamSync::new(Arc::new(Hub::new(10))));
/// let relay = sync.clone();
/// let store = Store::open(":memory:", Arc::new(move |m| relay.committed(m))).await?;
/// sync.attach(store);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StreamSync {
    hub: Arc<Hub>,
    store: OnceLock<Store>,
    runtime: Handle,
}

impl StreamSync {
    /// Needs a Tokio runtime (fills run on it; the SQLite store publishes
    /// from its own thread).
    pub fn new(hub: Arc<Hub>) -> StreamSync {
        StreamSync {
            hub,
            store: OnceLock::new(),
            runtime: Handle::current(),
        }
    }

    /// The store that fills read from (set once, after it opened: it needs
    /// this object's [`StreamSync::committed`] as its publisher).
    pub fn attach(&self, store: Store) {
        let _ = self.store.set(store);
    }

    /// A message was committed (here, or by another process).
    pub fn committed(&self, msg: &ChatMessage) {
        if let Offer::Gap { after } = self.hub.publish(msg) {
            self.spawn_fill(&msg.stream, after);
        }
    }

    /// The store reports `room` at (`epoch`, `last_seq`): fills what the
    /// room's members miss, if anything.
    pub fn observed(&self, room: &str, epoch: u64, last_seq: u64) {
        if let Some(after) = self.hub.set_stream(room, epoch, last_seq) {
            self.spawn_fill(room, after);
        }
    }

    /// A client joined `room` with history that may run ahead of what the
    /// room delivered: after [`JOIN_GRACE`], fills what is still missing.
    pub fn joined(self: &Arc<Self>, room: &str) {
        let (sync, room) = (self.clone(), room.to_string());
        self.runtime.spawn(async move {
            tokio::time::sleep(JOIN_GRACE).await;
            if let Some(after) = sync.hub.lagging(&room) {
                sync.fill(room, after).await;
            }
        });
    }

    fn spawn_fill(&self, room: &str, after: u64) {
        let Some(store) = self.store.get().cloned() else {
            // Not attached yet: only while opening; nothing is missed, the
            // start-up load reads every stream.
            self.hub.fill_done(room);
            return;
        };
        let (hub, room) = (self.hub.clone(), room.to_string());
        self.runtime
            .spawn(async move { fill(&hub, &store, room, after).await });
    }

    async fn fill(&self, room: String, after: u64) {
        match self.store.get() {
            Some(store) => fill(&self.hub, store, room, after).await,
            None => {
                self.hub.fill_done(&room);
            }
        }
    }
}

/// Publishes the stored messages of `room` after `after` until the hub no
/// longer lags, then ends the fill.
async fn fill(hub: &Hub, store: &Store, room: String, mut after: u64) {
    tokio::time::sleep(FILL_GRACE).await;
    if !hub.lags(&room) {
        hub.fill_done(&room);
        return;
    }
    let mut failures = 0;
    loop {
        match store.messages_after(&room, after, FILL_BATCH).await {
            Ok(history) => {
                failures = 0;
                if history.messages.is_empty() {
                    // The store has nothing after `after`: what the hub
                    // waits for is not there (the room was deleted and made
                    // again, say). Move on rather than wait forever.
                    tracing::warn!(room, after, "fill found nothing; skipping the gap");
                    hub.skip_gap(&room);
                } else {
                    tracing::debug!(room, after, n = history.messages.len(), "filling a gap");
                    for msg in &history.messages {
                        hub.publish(msg);
                    }
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(room, error = %e, failures, "fill failed");
                if failures >= MAX_FILL_FAILURES {
                    hub.fill_done(&room);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100) * failures).await;
                continue;
            }
        }
        match hub.fill_done(&room) {
            Some(next) => after = next,
            None => return,
        }
    }
}
