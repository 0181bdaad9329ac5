//! One connection for all the tabs of a browser: the messages tabs exchange
//! and the leading tab's bookkeeping, with no browser in sight.
//!
//! The tabs of one origin elect a leader (the browser driver uses the Web
//! Locks API, or a [`TabMessage::Alive`]/[`TabMessage::Claim`] protocol
//! where locks are missing). Only the leader holds the socket; the others
//! ("followers") send and receive through it over a BroadcastChannel,
//! carrying [`TabMessage`]s as JSON text.
//!
//! - A follower's reliable message goes into its own (never started)
//!   [`Connection`](super::Connection)'s outbox, so it is validated, gets its
//!   id and is saved under that tab, then travels to the leader as an
//!   outbox dump ([`TabMessage::Send`]); the leader restores it into its
//!   live outbox, keeping the id. The leader broadcasts every message state
//!   ([`TabMessage::Message`]); the follower settles its copy with
//!   [`Connection::settle_elsewhere`](super::Connection::settle_elsewhere)
//!   when the state is final.
//! - Subscriptions are the union over the tabs ([`ShareHub`]): a standing
//!   subscription reaches the server once, while any tab holds it, and its
//!   `leave` goes out only when the last tab lets go.
//! - Server frames go to every tab; a frame of a stream (`stream` field)
//!   reaches only the tabs that subscribed to that stream. A tab that joins
//!   a stream the connection already follows gets the recent frames of that
//!   stream replayed from the leader's [`ReplayCache`], as a fresh join
//!   would.
//! - When the leader goes, the next one starts its own connection with its
//!   own outbox and stream positions, adopts the saved messages of tabs that
//!   are gone, and the other followers forward their unsettled messages
//!   again: ids are kept, so the leader's outbox and the server's
//!   de-duplication make each count once.

pub mod election;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConnectionStatus, DeliveryState, Inbound, MessageId, Stats, Transport};

/// Identifies one tab (one provider in one page load) among those sharing a
/// connection.
///
/// ```
/// use heartline::core::share::TabId;
/// let tab = TabId::from("t-1a2b");
/// assert_eq!(tab.to_string(), "t-1a2b");
/// assert!(TabId::from("a") < TabId::from("b"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TabId(pub String);

impl From<&str> for TabId {
    fn from(id: &str) -> Self {
        TabId(id.to_owned())
    }
}

impl From<String> for TabId {
    fn from(id: String) -> Self {
        TabId(id)
    }
}

impl TabId {
    /// The id as text.
    ///
    /// ```
    /// assert_eq!(heartline::core::share::TabId::from("t-1").as_str(), "t-1");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TabId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the leader tells every tab about the one connection.
///
/// ```
/// use heartline::core::share::{LinkState, TabId};
/// let state = LinkState { leader: TabId::from("t-1"), ..LinkState::default() };
/// let json = serde_json::to_string(&state).unwrap();
/// assert_eq!(serde_json::from_str::<LinkState>(&json).unwrap(), state);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    /// The tab holding the socket.
    pub leader: TabId,
    /// Whether the leader's page is visible.
    pub leader_visible: bool,
    /// The connection's status, as the leader's core reports it.
    pub status: ConnectionStatus,
    /// The transport of the leader's link (or last attempt).
    pub transport: Transport,
    /// The leader's counters.
    pub stats: Stats,
    /// The largest frame the server accepts, as announced (followers check
    /// their messages against it before forwarding them).
    pub max_frame_bytes: usize,
    /// How many tabs the leader hears from, itself included.
    pub tabs: usize,
}

/// A message between the tabs sharing one connection, carried as JSON text
/// on their BroadcastChannel. Every tab sees every message; those with a
/// `to` are for one tab only.
///
/// ```
/// use heartline::core::share::{TabId, TabMessage};
/// let hello = TabMessage::Hello { tab: TabId::from("t-2"), visible: true };
/// let json = hello.to_json();
/// assert_eq!(json, r#"{"kind":"hello","tab":"t-2","visible":true}"#);
/// assert_eq!(TabMessage::parse(&json), Ok(hello));
/// assert!(TabMessage::parse(r#"{"kind":"nope"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabMessage {
    /// A tab is here (on start, on becoming a follower, when its visibility
    /// changes, and every second as a sign of life); the leader answers
    /// with its [`State`](TabMessage::State).
    Hello {
        /// The tab.
        tab: TabId,
        /// Whether its page is visible.
        visible: bool,
    },
    /// A tab is going away (closed, reloaded, navigated): its
    /// subscriptions end, its unsettled messages pass to the leader.
    Bye {
        /// The tab.
        tab: TabId,
    },
    /// Leader to all: the connection's state.
    State(LinkState),
    /// Follower to leader: reliable messages for the outbox, as an
    /// [outbox dump](super::Connection::export_outbox).
    Send {
        /// The tab that answers for them.
        tab: TabId,
        /// The dump.
        outbox: String,
    },
    /// Follower to leader: a volatile message, written if the link allows.
    Volatile {
        /// The sending tab.
        tab: TabId,
        /// The frame.
        frame: Value,
    },
    /// Follower to leader: withdraw a queued message.
    Cancel {
        /// The tab.
        tab: TabId,
        /// The message.
        id: MessageId,
    },
    /// Follower to leader: the user asked to retry now.
    Retry {
        /// The tab.
        tab: TabId,
    },
    /// Follower to leader: a standing subscription of that tab.
    Standing {
        /// The tab.
        tab: TabId,
        /// The subscription's key.
        key: String,
        /// The frame re-sent on every open.
        value: Value,
        /// The stream it resumes, if any.
        stream: Option<String>,
        /// The frame that ends it on the server, sent when the last tab
        /// holding it lets go.
        leave: Option<Value>,
    },
    /// Follower to leader: the tab let go of a standing subscription.
    Leave {
        /// The tab.
        tab: TabId,
        /// The subscription's key.
        key: String,
    },
    /// Leader to all: a reliable message's new state.
    Message {
        /// The message.
        id: MessageId,
        /// Its state.
        state: DeliveryState,
    },
    /// Leader to all (or to `to`): frames from the server, in order.
    Deliver {
        /// One tab only (a replay for a tab that just joined a stream).
        to: Option<TabId>,
        /// The frames.
        frames: Vec<Value>,
    },
    /// Leader to one tab: take over (the leader is hidden and `to` is
    /// visible).
    Handoff {
        /// The visible tab.
        to: TabId,
    },
    /// Leader to one tab: send your subscriptions and unsettled messages
    /// again (the leader had counted the tab as gone: a hidden tab whose
    /// timers the browser throttled, say).
    Resync {
        /// The tab.
        to: TabId,
    },
    /// Election without Web Locks: the leader is alive.
    Alive {
        /// The leader.
        leader: TabId,
    },
    /// Election without Web Locks: `tab` wants to lead; the smallest id
    /// among the claims of one round wins.
    Claim {
        /// The claimant.
        tab: TabId,
    },
}

impl TabMessage {
    /// The message as JSON text. A message of strings, numbers and JSON
    /// values always serializes.
    ///
    /// ```
    /// use heartline::core::share::{TabId, TabMessage};
    /// assert_eq!(TabMessage::Bye { tab: TabId::from("t") }.to_json(), r#"{"kind":"bye","tab":"t"}"#);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a message of another tab; anything else is an error (another
    /// version of the app, say), never a panic.
    ///
    /// ```
    /// use heartline::core::share::TabMessage;
    /// assert!(TabMessage::parse("not json").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<TabMessage, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The tab a message is for, when it is for one tab only.
    ///
    /// ```
    /// use heartline::core::share::{TabId, TabMessage};
    /// let handoff = TabMessage::Handoff { to: TabId::from("t-2") };
    /// assert_eq!(handoff.recipient(), Some(&TabId::from("t-2")));
    /// ```
    pub fn recipient(&self) -> Option<&TabId> {
        match self {
            TabMessage::Deliver { to, .. } => to.as_ref(),
            TabMessage::Handoff { to } | TabMessage::Resync { to } => Some(to),
            _ => None,
        }
    }
}

/// What happened to a standing subscription in the union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// No tab held it: subscribe on the connection.
    First,
    /// Other tabs hold it already: the connection is subscribed; replay the
    /// stream's recent frames to the newcomer.
    Again,
}

/// A standing subscription and the tabs holding it.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    stream: Option<String>,
    leave: Option<Value>,
    tabs: BTreeSet<TabId>,
}

/// A standing subscription no tab holds any more: the leader removes it
/// from the connection, forgets its stream and sends its `leave`.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// The subscription's key.
    pub key: String,
    /// The stream it resumed.
    pub stream: Option<String>,
    /// The frame that ends it on the server.
    pub leave: Option<Value>,
}

/// The leader's bookkeeping: which tab holds which standing subscription
/// (the connection subscribes to their union), which tab answers for which
/// message, and which tabs a server frame is for.
///
/// ```
/// use heartline::core::share::{Joined, ShareHub, TabId};
/// let (a, b) = (TabId::from("a"), TabId::from("b"));
/// let mut hub = ShareHub::default();
/// assert_eq!(hub.hold(&a, "room:lobby", Some("lobby"), None), Joined::First);
/// assert_eq!(hub.hold(&b, "room:lobby", Some("lobby"), None), Joined::Again);
/// assert!(hub.release(&a, "room:lobby").is_none()); // b still holds it
/// assert!(hub.release(&b, "room:lobby").is_some()); // the last one: leave
/// ```
#[derive(Debug, Clone, Default)]
pub struct ShareHub {
    standing: BTreeMap<String, Held>,
    owners: HashMap<MessageId, TabId>,
}

impl ShareHub {
    /// `tab` holds the standing subscription `key` (resuming `stream`).
    ///
    /// ```
    /// use heartline::core::share::{Joined, ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// let a = TabId::from("a");
    /// assert_eq!(hub.hold(&a, "m", None, None), Joined::First);
    /// assert_eq!(hub.hold(&a, "m", None, None), Joined::Again); // a replaced value
    /// ```
    pub fn hold(
        &mut self,
        tab: &TabId,
        key: &str,
        stream: Option<&str>,
        leave: Option<Value>,
    ) -> Joined {
        match self.standing.get_mut(key) {
            Some(held) => {
                held.tabs.insert(tab.clone());
                held.stream = stream.map(str::to_owned);
                held.leave = leave;
                Joined::Again
            }
            None => {
                self.standing.insert(
                    key.to_owned(),
                    Held {
                        stream: stream.map(str::to_owned),
                        leave,
                        tabs: BTreeSet::from([tab.clone()]),
                    },
                );
                Joined::First
            }
        }
    }

    /// `tab` lets go of `key`; `Some` when no tab holds it any more
    /// (remove it from the connection and send its `leave`).
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// assert!(hub.release(&TabId::from("a"), "never held").is_none());
    /// ```
    pub fn release(&mut self, tab: &TabId, key: &str) -> Option<Released> {
        let held = self.standing.get_mut(key)?;
        held.tabs.remove(tab);
        if !held.tabs.is_empty() {
            return None;
        }
        let held = self.standing.remove(key)?;
        Some(Released {
            key: key.to_owned(),
            stream: held.stream,
            leave: held.leave,
        })
    }

    /// `tab` is gone: the keys no tab holds any more, for the leader to
    /// remove and leave, with their streams.
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let (a, b) = (TabId::from("a"), TabId::from("b"));
    /// let mut hub = ShareHub::default();
    /// hub.hold(&a, "room:x", Some("x"), None);
    /// hub.hold(&a, "room:y", Some("y"), None);
    /// hub.hold(&b, "room:y", Some("y"), None);
    /// let released = hub.drop_tab(&a);
    /// assert_eq!(released.len(), 1);
    /// assert_eq!(released[0].key, "room:x");
    /// ```
    pub fn drop_tab(&mut self, tab: &TabId) -> Vec<Released> {
        let mut released = Vec::new();
        self.standing.retain(|key, held| {
            held.tabs.remove(tab);
            if held.tabs.is_empty() {
                released.push(Released {
                    key: key.clone(),
                    stream: held.stream.clone(),
                    leave: held.leave.clone(),
                });
                false
            } else {
                true
            }
        });
        released
    }

    /// Whether `tab` holds a subscription that resumes `stream`.
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// hub.hold(&TabId::from("a"), "room:x", Some("x"), None);
    /// assert!(hub.follows(&TabId::from("a"), "x"));
    /// assert!(!hub.follows(&TabId::from("b"), "x"));
    /// ```
    pub fn follows(&self, tab: &TabId, stream: &str) -> bool {
        self.standing
            .values()
            .any(|held| held.stream.as_deref() == Some(stream) && held.tabs.contains(tab))
    }

    /// Whether any tab follows `stream`.
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// hub.hold(&TabId::from("a"), "room:x", Some("x"), None);
    /// assert!(hub.anyone_follows("x") && !hub.anyone_follows("y"));
    /// ```
    pub fn anyone_follows(&self, stream: &str) -> bool {
        self.standing
            .values()
            .any(|held| held.stream.as_deref() == Some(stream))
    }

    /// The tabs the hub knows of through their subscriptions or messages.
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// hub.hold(&TabId::from("a"), "k", None, None);
    /// assert_eq!(hub.tabs().len(), 1);
    /// ```
    pub fn tabs(&self) -> BTreeSet<TabId> {
        let mut tabs: BTreeSet<TabId> = self
            .standing
            .values()
            .flat_map(|held| held.tabs.iter().cloned())
            .collect();
        tabs.extend(self.owners.values().cloned());
        tabs
    }

    /// `tab` answers for message `id` (it keeps and saves it until it is
    /// settled).
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// use heartline::core::MessageId;
    /// let mut hub = ShareHub::default();
    /// hub.own(MessageId::from("m-1"), TabId::from("a"));
    /// assert_eq!(hub.owner(&MessageId::from("m-1")), Some(&TabId::from("a")));
    /// ```
    pub fn own(&mut self, id: MessageId, tab: TabId) {
        self.owners.insert(id, tab);
    }

    /// Who answers for `id`; the leader itself for ids it never heard of.
    ///
    /// ```
    /// use heartline::core::share::ShareHub;
    /// assert_eq!(ShareHub::default().owner(&"x".into()), None);
    /// ```
    pub fn owner(&self, id: &MessageId) -> Option<&TabId> {
        self.owners.get(id)
    }

    /// A message ended: nobody answers for it any more.
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// hub.own("m".into(), TabId::from("a"));
    /// hub.settle(&"m".into());
    /// assert_eq!(hub.owner(&"m".into()), None);
    /// ```
    pub fn settle(&mut self, id: &MessageId) {
        self.owners.remove(id);
    }

    /// Moves every message `from` answers for to `to` (a tab that is gone
    /// passes its messages to the leader).
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let (a, b) = (TabId::from("a"), TabId::from("b"));
    /// let mut hub = ShareHub::default();
    /// hub.own("m".into(), a.clone());
    /// assert_eq!(hub.reassign(&a, &b), 1);
    /// assert_eq!(hub.owner(&"m".into()), Some(&b));
    /// ```
    pub fn reassign(&mut self, from: &TabId, to: &TabId) -> usize {
        let mut moved = 0;
        for owner in self.owners.values_mut() {
            if owner == from {
                *owner = to.clone();
                moved += 1;
            }
        }
        moved
    }

    /// Forgets everything (the tab stops leading).
    ///
    /// ```
    /// use heartline::core::share::{ShareHub, TabId};
    /// let mut hub = ShareHub::default();
    /// hub.hold(&TabId::from("a"), "k", None, None);
    /// hub.clear();
    /// assert!(hub.tabs().is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.standing.clear();
        self.owners.clear();
    }
}

/// Whether a server frame is for a tab that follows `streams`: frames of a
/// stream (a `stream` field) only for its followers, every other frame for
/// all.
///
/// ```
/// use heartline::core::Inbound;
/// use heartline::core::share::is_for;
/// let chat = Inbound::parse(r#"{"socketType":"chat.message","stream":"x","seq":1}"#).unwrap();
/// let joined = Inbound::parse(r#"{"socketType":"joined","stream":"x","last_seq":0}"#).unwrap();
/// let welcome = Inbound::parse(r#"{"socketType":"welcome"}"#).unwrap();
/// assert!(is_for(&chat, |s| s == "x") && !is_for(&chat, |s| s == "y"));
/// assert!(!is_for(&joined, |s| s == "y"));
/// assert!(is_for(&welcome, |_| false));
/// ```
pub fn is_for(frame: &Inbound, follows: impl Fn(&str) -> bool) -> bool {
    match frame.str_field("stream") {
        Some(stream) => follows(stream),
        None => true,
    }
}

/// The recent frames of each stream and the last frame of each kind, kept
/// by the leader so that a tab joining a stream the connection already
/// follows, or a tab that just opened, sees what a fresh join or a fresh
/// connection would have shown it.
///
/// A frame with a `stream` and a `seq` is kept among the last `per_stream`
/// of its stream. Any other frame is kept as the last of its `socketType`
/// and scope (its `stream` or `room` field): `welcome`, `rooms`, `joined`
/// and `presence` of each room, the last metrics sample.
///
/// ```
/// use heartline::core::Inbound;
/// use heartline::core::share::ReplayCache;
/// let mut cache = ReplayCache::new(2);
/// for text in [
///     r#"{"socketType":"welcome","name":"ada"}"#,
///     r#"{"socketType":"joined","stream":"x","last_seq":3}"#,
///     r#"{"socketType":"chat.message","stream":"x","seq":1}"#,
///     r#"{"socketType":"chat.message","stream":"x","seq":2}"#,
///     r#"{"socketType":"chat.message","stream":"x","seq":3}"#,
///     r#"{"socketType":"presence","room":"x","users":["ada"]}"#,
/// ] {
///     cache.remember(&Inbound::parse(text).unwrap());
/// }
/// let seqs: Vec<u64> = cache.stream("x").iter().filter_map(|f| f["seq"].as_u64()).collect();
/// assert_eq!(seqs, vec![2, 3]);
/// assert_eq!(cache.stream("x").len(), 4); // joined, presence, then the messages
/// assert_eq!(cache.unscoped().len(), 1); // welcome
/// ```
#[derive(Debug, Clone)]
pub struct ReplayCache {
    per_stream: usize,
    streams: HashMap<String, VecDeque<Value>>,
    /// (socketType, scope) → the last frame; `BTreeMap` for a stable order.
    last: BTreeMap<(String, String), Value>,
}

impl ReplayCache {
    /// A cache keeping the last `per_stream` frames of each stream.
    ///
    /// ```
    /// assert!(heartline::core::share::ReplayCache::new(50).stream("x").is_empty());
    /// ```
    pub fn new(per_stream: usize) -> Self {
        ReplayCache {
            per_stream,
            streams: HashMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Keeps `frame` (see the type's docs).
    ///
    /// ```
    /// use heartline::core::Inbound;
    /// use heartline::core::share::ReplayCache;
    /// let mut cache = ReplayCache::new(1);
    /// cache.remember(&Inbound::parse(r#"{"socketType":"rooms","rooms":[]}"#).unwrap());
    /// cache.remember(&Inbound::parse(r#"{"socketType":"rooms","rooms":["x"]}"#).unwrap());
    /// assert_eq!(cache.unscoped().len(), 1);
    /// ```
    pub fn remember(&mut self, frame: &Inbound) {
        if let Some(pos) = &frame.stream {
            let kept = self.streams.entry(pos.stream.to_string()).or_default();
            kept.push_back((*frame.value).clone());
            while kept.len() > self.per_stream {
                kept.pop_front();
            }
            return;
        }
        let scope = frame
            .str_field("stream")
            .or_else(|| frame.str_field("room"))
            .unwrap_or_default()
            .to_owned();
        self.last.insert(
            (frame.socket_type.to_string(), scope),
            (*frame.value).clone(),
        );
    }

    /// What a tab joining `stream` is shown: the last frame of each kind
    /// scoped to it, then its recent messages in order.
    ///
    /// ```
    /// assert!(heartline::core::share::ReplayCache::new(5).stream("nope").is_empty());
    /// ```
    pub fn stream(&self, stream: &str) -> Vec<Value> {
        let mut frames: Vec<Value> = self
            .last
            .iter()
            .filter(|((_, scope), _)| scope == stream)
            .map(|(_, frame)| frame.clone())
            .collect();
        if let Some(kept) = self.streams.get(stream) {
            frames.extend(kept.iter().cloned());
        }
        frames
    }

    /// What a tab that just opened is shown: the last frame of each kind
    /// with no scope (a greeting's answer, a directory, a sample).
    ///
    /// ```
    /// assert!(heartline::core::share::ReplayCache::new(5).unscoped().is_empty());
    /// ```
    pub fn unscoped(&self) -> Vec<Value> {
        self.last
            .iter()
            .filter(|((_, scope), _)| scope.is_empty())
            .map(|(_, frame)| frame.clone())
            .collect()
    }

    /// Forgets a stream nobody follows any more.
    ///
    /// ```
    /// use heartline::core::Inbound;
    /// use heartline::core::share::ReplayCache;
    /// let mut cache = ReplayCache::new(5);
    /// cache.remember(&Inbound::parse(r#"{"socketType":"chat.message","stream":"x","seq":1}"#).unwrap());
    /// cache.forget("x");
    /// assert!(cache.stream("x").is_empty());
    /// ```
    pub fn forget(&mut self, stream: &str) {
        self.streams.remove(stream);
        self.last.retain(|(_, scope), _| scope != stream);
    }

    /// Forgets everything (a new connection, or no longer leading).
    ///
    /// ```
    /// let mut cache = heartline::core::share::ReplayCache::new(5);
    /// cache.clear();
    /// ```
    pub fn clear(&mut self) {
        self.streams.clear();
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MessageFailure;

    #[test]
    fn every_tab_message_round_trips() {
        let tab = TabId::from("t-1");
        let messages = vec![
            TabMessage::Hello {
                tab: tab.clone(),
                visible: false,
            },
            TabMessage::Bye { tab: tab.clone() },
            TabMessage::State(LinkState {
                leader: tab.clone(),
                leader_visible: true,
                status: ConnectionStatus::Reconnecting {
                    attempt: 2,
                    at: 1_700_000_000_000,
                },
                transport: Transport::LongPoll,
                stats: Stats {
                    acked: 3,
                    last_rtt: Some(12),
                    ..Stats::default()
                },
                max_frame_bytes: 65_536,
                tabs: 3,
            }),
            TabMessage::State(LinkState {
                status: ConnectionStatus::Failed(crate::core::FailureReason::ClosedByServer {
                    code: 4003,
                    reason: "bye".into(),
                }),
                ..LinkState::default()
            }),
            TabMessage::Send {
                tab: tab.clone(),
                outbox: r#"{"version":1,"messages":[]}"#.into(),
            },
            TabMessage::Volatile {
                tab: tab.clone(),
                frame: serde_json::json!({"socketType":"typing"}),
            },
            TabMessage::Cancel {
                tab: tab.clone(),
                id: "m-1".into(),
            },
            TabMessage::Standing {
                tab: tab.clone(),
                key: "room:x".into(),
                value: serde_json::json!({"socketType":"join","room":"x"}),
                stream: Some("x".into()),
                leave: Some(serde_json::json!({"socketType":"leave","room":"x"})),
            },
            TabMessage::Leave {
                tab: tab.clone(),
                key: "room:x".into(),
            },
            TabMessage::Message {
                id: "m-1".into(),
                state: DeliveryState::Failed(MessageFailure::Refused {
                    code: "invalid_field".into(),
                    message: "empty".into(),
                }),
            },
            TabMessage::Deliver {
                to: Some(tab.clone()),
                frames: vec![serde_json::json!({"socketType":"welcome"})],
            },
            TabMessage::Handoff { to: tab.clone() },
            TabMessage::Retry { tab: tab.clone() },
            TabMessage::Resync { to: tab.clone() },
            TabMessage::Alive {
                leader: tab.clone(),
            },
            TabMessage::Claim { tab },
        ];
        for message in messages {
            assert_eq!(TabMessage::parse(&message.to_json()), Ok(message));
        }
    }

    #[test]
    fn the_union_leaves_only_with_the_last_tab() {
        let (a, b, c) = (TabId::from("a"), TabId::from("b"), TabId::from("c"));
        let mut hub = ShareHub::default();
        let leave_x = serde_json::json!({"socketType":"leave","room":"x"});
        assert_eq!(
            hub.hold(&a, "room:x", Some("x"), Some(leave_x.clone())),
            Joined::First
        );
        assert_eq!(
            hub.hold(&b, "room:x", Some("x"), Some(leave_x.clone())),
            Joined::Again
        );
        assert_eq!(hub.hold(&c, "room:y", Some("y"), None), Joined::First);
        assert!(hub.follows(&a, "x") && !hub.follows(&a, "y"));
        assert!(hub.release(&a, "room:x").is_none());
        assert!(hub.anyone_follows("x"));
        assert_eq!(
            hub.drop_tab(&b),
            vec![Released {
                key: "room:x".into(),
                stream: Some("x".into()),
                leave: Some(leave_x),
            }]
        );
        assert!(!hub.anyone_follows("x"));
        assert!(hub.release(&c, "room:y").is_some());
        assert!(hub.tabs().is_empty());
    }

    #[test]
    fn unknown_or_foreign_tab_messages_are_errors_not_panics() {
        for text in [
            "",
            "null",
            "[]",
            r#"{"kind":"send"}"#,
            r#"{"kind":"hello","tab":5}"#,
            r#"{"kind":"state"}"#,
        ] {
            assert!(TabMessage::parse(text).is_err(), "{text}");
        }
    }
}
