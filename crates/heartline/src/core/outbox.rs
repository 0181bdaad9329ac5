//! Reliable messages kept until the server acknowledges them.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Millis, SocketId};

/// The client id of a reliable message, put in its `id` field.
///
/// ```
/// use heartline::core::MessageId;
/// let id = MessageId::from("c-1");
/// assert_eq!(id.as_str(), "c-1");
/// assert_eq!(id.to_string(), "c-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// The id as text.
    ///
    /// ```
    /// assert_eq!(heartline::core::MessageId::from("x").as_str(), "x");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(id: &str) -> Self {
        MessageId(id.to_owned())
    }
}

impl From<String> for MessageId {
    fn from(id: String) -> Self {
        MessageId(id)
    }
}

/// Where a reliable message is, as reported by `Action::MessageState`.
///
/// ```
/// use heartline::core::{DeliveryState, MessageFailure};
/// assert!(DeliveryState::Acked.is_final());
/// assert!(DeliveryState::Failed(MessageFailure::Expired).is_final());
/// assert!(!DeliveryState::Sent.is_final());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Waiting in the outbox for an open link.
    Queued,
    /// Written on the live socket; waiting for its ack.
    Sent,
    /// The server acknowledged it; it left the outbox.
    Acked,
    /// It left the outbox without an ack.
    Failed(MessageFailure),
}

impl DeliveryState {
    /// True for `Acked` and `Failed`: nothing more will happen to it.
    ///
    /// ```
    /// assert!(!heartline::core::DeliveryState::Queued.is_final());
    /// ```
    pub fn is_final(&self) -> bool {
        matches!(self, DeliveryState::Acked | DeliveryState::Failed(_))
    }
}

/// Why a reliable message failed.
///
/// ```
/// use heartline::core::MessageFailure;
/// let refused = MessageFailure::Refused { code: "invalid_field".into(), message: "empty".into() };
/// assert_eq!(refused.to_string(), "refused by the server: empty (invalid_field)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageFailure {
    /// The server answered with an `error` naming its id; never retried.
    Refused {
        /// The server's error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// Its time-to-live passed before it could be (re-)sent.
    Expired,
    /// The app cancelled it.
    Cancelled,
}

impl fmt::Display for MessageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageFailure::Refused { code, message } => {
                write!(f, "refused by the server: {message} ({code})")
            }
            MessageFailure::Expired => f.write_str("expired before it could be sent"),
            MessageFailure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// One reliable message.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: MessageId,
    /// The frame as written, `id` included.
    pub(crate) frame: String,
    pub(crate) expires_at: Option<Millis>,
    /// The socket it was last written on; `None` while queued.
    pub(crate) sent_on: Option<SocketId>,
}

/// The export format: versioned so a later release can read an older dump.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Dump {
    pub(crate) version: u32,
    pub(crate) messages: Vec<DumpEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DumpEntry {
    pub(crate) id: MessageId,
    pub(crate) frame: String,
    #[serde(default, rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<Millis>,
}

pub(crate) const DUMP_VERSION: u32 = 1;

/// The ordered outbox. Order is send order; re-sends keep it.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: VecDeque<Entry>,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.entries.iter().any(|e| &e.id == id)
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
    }

    pub(crate) fn remove(&mut self, id: &MessageId) -> Option<Entry> {
        let pos = self.entries.iter().position(|e| &e.id == id)?;
        self.entries.remove(pos)
    }

    pub(crate) fn get(&self, id: &MessageId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Marks every message as not written, so the next open re-sends all.
    /// Returns the ids that were in flight.
    pub(crate) fn requeue_all(&mut self) -> Vec<MessageId> {
        self.entries
            .iter_mut()
            .filter_map(|e| e.sent_on.take().map(|_| e.id.clone()))
            .collect()
    }

    /// Puts one message back in the queue (the server did not handle it);
    /// false when it is not in the outbox.
    pub(crate) fn requeue(&mut self, id: &MessageId) -> bool {
        match self.entries.iter_mut().find(|e| &e.id == id) {
            Some(entry) => {
                entry.sent_on = None;
                true
            }
            None => false,
        }
    }

    /// True when a message waits to be written on `socket`.
    pub(crate) fn has_unsent(&self, socket: SocketId) -> bool {
        self.entries.iter().any(|e| e.sent_on != Some(socket))
    }

    /// The first message not yet written on `socket`.
    pub(crate) fn next_unsent(&mut self, socket: SocketId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.sent_on != Some(socket))
    }

    /// Removes messages past their time-to-live that are not in flight on
    /// `live` (one in flight may already be handled by the server; it expires
    /// only if the link drops before its ack).
    pub(crate) fn take_expired(&mut self, now: Millis, live: Option<SocketId>) -> Vec<MessageId> {
        let mut expired = Vec::new();
        self.entries.retain(|e| {
            let in_flight = live.is_some() && e.sent_on == live;
            let dead = e.expires_at.is_some_and(|at| at <= now) && !in_flight;
            if dead {
                expired.push(e.id.clone());
            }
            !dead
        });
        expired
    }

    /// The earliest expiry among messages that can expire now.
    pub(crate) fn next_expiry(&self, live: Option<SocketId>) -> Option<Millis> {
        self.entries
            .iter()
            .filter(|e| live.is_none() || e.sent_on != live)
            .filter_map(|e| e.expires_at)
            .min()
    }

    pub(crate) fn counts(&self, live: Option<SocketId>) -> (usize, usize) {
        let in_flight = self
            .entries
            .iter()
            .filter(|e| live.is_some() && e.sent_on == live)
            .count();
        (self.entries.len() - in_flight, in_flight)
    }

    pub(crate) fn export(&self) -> Dump {
        self.export_where(|_| true)
    }

    /// The entries whose id `keep` accepts, in order.
    pub(crate) fn export_where(&self, keep: impl Fn(&MessageId) -> bool) -> Dump {
        Dump {
            version: DUMP_VERSION,
            messages: self
                .entries
                .iter()
                .filter(|e| keep(&e.id))
                .map(|e| DumpEntry {
                    id: e.id.clone(),
                    frame: e.frame.clone(),
                    expires_at: e.expires_at,
                })
                .collect(),
        }
    }
}
