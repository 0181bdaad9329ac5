//! The handle other parts of the server hold to reach one connection: its
//! bounded send queue and a way to ask it to close.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, watch};

/// A connection's id, unique for the life of the process.
pub type ConnId = u64;

/// What the send task writes to the socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One text frame. Broadcasts share one buffer among all receivers.
    Text(Utf8Bytes),
    /// Several text frames that must stay together (history, then `joined`):
    /// one queue slot, so nothing can slip in between.
    Batch(Vec<Utf8Bytes>),
}

/// Why and how a connection is closed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code.
    pub code: u16,
    /// Short reason text (at most 123 bytes on the wire).
    pub reason: String,
    /// Drop the TCP connection without a close frame (the peer is not
    /// reading, so a close frame would never get through).
    pub abrupt: bool,
}

impl CloseReason {
    /// A close frame with this code and reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        // RFC 6455 allows 123 bytes of reason; cut at a char boundary.
        if reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        CloseReason {
            code,
            reason,
            abrupt: false,
        }
    }

    /// The peer is too slow: drop it at once.
    pub fn too_slow() -> Self {
        CloseReason {
            abrupt: true,
            ..CloseReason::new(1008, "too slow: send queue full")
        }
    }
}

/// A cheap, cloneable handle to one connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The connection's id.
    pub id: ConnId,
    tx: mpsc::Sender<Outbound>,
    ctl: Arc<watch::Sender<Option<CloseReason>>>,
}

impl Peer {
    /// A handle over a connection's queue and close control.
    pub fn new(
        id: ConnId,
        tx: mpsc::Sender<Outbound>,
        ctl: Arc<watch::Sender<Option<CloseReason>>>,
    ) -> Self {
        Peer { id, tx, ctl }
    }

    /// Queues a frame without waiting. A full queue means the client does not
    /// keep up: it is closed, so it never holds up the others. Returns whether
    /// the frame was queued.
    pub fn push(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::too_slow());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a direct reply, waiting for room in the queue (which only slows
    /// down this client's own reading).
    pub async fn send(&self, out: Outbound) -> bool {
        self.tx.send(out).await.is_ok()
    }

    /// Asks the connection to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.ctl.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.ctl.borrow().is_some()
    }
}
