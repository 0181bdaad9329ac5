//! The live room directory: a `rooms` frame ([`ServerMessage::Rooms`]) for
//! every welcomed connection, right after its `welcome` and then whenever
//! the [`Hub`] reports a change (a room created or expired, a join or
//! leave, a new message).
//!
//! Broadcasts are throttled per server to one per [`DIRECTORY_INTERVAL`]:
//! the first change goes out at once, changes during the pause are
//! coalesced into one frame at its end (trailing edge), so the last state
//! always reaches everyone. Each broadcast frame is serialized once and its
//! bytes shared by every recipient; no lock is held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use heartline_protocol::{Rooms, ServerMessage};
use tokio::sync::watch;

use crate::chat::Hub;
use crate::peer::{ConnId, Outbound, Peer};

/// Shortest time between two directory broadcasts.
pub const DIRECTORY_INTERVAL: Duration = Duration::from_secs(1);

/// The welcomed connections that receive the directory.
#[derive(Debug, Default)]
pub struct Directory {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    subscribers: HashMap<ConnId, Peer>,
    /// The last broadcast frame: an identical one is not sent again.
    last_sent: Option<Utf8Bytes>,
}

/// The `rooms` frame for the hub's current directory.
pub fn frame(hub: &Hub) -> Utf8Bytes {
    Utf8Bytes::from(
        ServerMessage::Rooms(Rooms {
            rooms: hub.directory(),
        })
        .to_json(),
    )
}

impl Directory {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the current directory for a just-welcomed `peer` and
    /// subscribes it to later changes (until [`Directory::unsubscribe`]).
    pub fn subscribe(&self, hub: &Hub, peer: &Peer) {
        let text = frame(hub);
        let mut inner = self.inner();
        if peer.push(Outbound::Text(text)) {
            inner.subscribers.insert(peer.id, peer.clone());
        }
        // A change the newcomer's snapshot missed must not be skipped as
        // "already sent".
        inner.last_sent = None;
    }

    /// Stops sending to a connection (it closed).
    pub fn unsubscribe(&self, conn: ConnId) {
        self.inner().subscribers.remove(&conn);
    }

    /// How many connections receive the directory.
    pub fn subscriber_count(&self) -> usize {
        self.inner().subscribers.len()
    }

    /// Sends the current directory to every subscriber, unless it is the
    /// frame sent last time. Returns how many got it.
    pub fn broadcast(&self, hub: &Hub) -> usize {
        // Built outside the subscribers' lock (the hub has its own).
        let text = frame(hub);
        let mut inner = self.inner();
        if inner.last_sent.as_ref() == Some(&text) {
            return 0;
        }
        inner.last_sent = Some(text.clone());
        let mut sent = 0;
        inner.subscribers.retain(|_, peer| {
            // A full queue closes the peer: drop it from the list too.
            let ok = peer.push(Outbound::Text(text.clone()));
            sent += usize::from(ok);
            ok
        });
        sent
    }

    /// Runs the throttled broadcaster until shutdown (or until the hub and
    /// the directory are dropped). Needs a Tokio runtime.
    pub fn spawn(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let changes = hub.changes();
        let (hub, directory): (Weak<Hub>, Weak<Directory>) =
            (Arc::downgrade(hub), Arc::downgrade(self));
        tokio::spawn(async move {
            loop {
                // A change made while we slept left a permit: no change is
                // lost, and the final state always goes out.
                tokio::select! {
                    () = changes.notified() => {}
                    _ = shutdown.wait_for(|down| *down) => return,
                }
                let (Some(hub), Some(directory)) = (hub.upgrade(), directory.upgrade()) else {
                    return;
                };
                directory.broadcast(&hub);
                drop((hub, directory));
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = shutdown.wait_for(|down| *down) => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::sync::mpsc;

    fn peer(id: ConnId) -> (Peer, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(8);
        let (ctl, _) = watch::channel(None);
        (Peer::new(id, tx, Arc::new(ctl)), rx)
    }

    fn text(out: Outbound) -> String {
        match out {
            Outbound::Text(t) => t.to_string(),
            Outbound::Batch(_) => panic!("a single frame"),
        }
    }

    #[test]
    fn a_subscriber_gets_a_snapshot_then_only_changed_frames() {
        let hub = Hub::new(10);
        hub.add_existing_room("lobby");
        hub.set_stream("lobby", 5, 0);
        let directory = Directory::default();
        let (p, mut rx) = peer(1);
        directory.subscribe(&hub, &p);
        assert_eq!(
            text(rx.try_recv().unwrap()),
            r#"{"socketType":"rooms","rooms":[{"name":"lobby","epoch":5,"last_seq":0,"online":0}]}"#
        );
        assert_eq!(directory.broadcast(&hub), 1);
        assert_eq!(directory.broadcast(&hub), 0, "nothing changed");
        hub.set_stream("lobby", 5, 1);
        assert_eq!(directory.broadcast(&hub), 1);
        directory.unsubscribe(1);
        assert_eq!(directory.subscriber_count(), 0);
    }
}
