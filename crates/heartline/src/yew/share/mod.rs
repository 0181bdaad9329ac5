//! One connection per browser, not per tab: the tabs of one origin that
//! share a [`ShareOptions::name`] elect a leader, and only the leader's
//! driver opens a link. The others send and receive through it over a
//! BroadcastChannel (see [`crate::core::share`] for the protocol and the
//! bookkeeping).
//!
//! - **Election**: the Web Locks API where the browser has it (the tab
//!   holding the lock leads; the browser hands it to the next tab the moment
//!   the holder closes or crashes), else a BroadcastChannel protocol (the
//!   leader says it is alive every 500 ms; after 1.5 s of silence the tabs
//!   claim, and the smallest id wins).
//! - **Hidden tabs**: a hidden leader hands over to a visible tab when one
//!   exists (with locks, the visible tab steals the lock).
//! - **Nothing lost**: every tab keeps its unsettled messages in its own
//!   (never started) core and saves them under its own storage key; a new
//!   leader adopts the saved messages of tabs that are gone, and the other
//!   tabs forward theirs again. Ids are kept, so each message counts once.

mod channel;
mod lock;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use yew::AttrValue;

use crate::core::share::{Joined, LinkState, ReplayCache, ShareHub, TabId, TabMessage, is_for};
use crate::core::{
    ConnectionStatus, DeliveryState, Event as CoreEvent, Inbound, MessageId, Millis, SendError,
};

use crate::core::share::election;
pub(crate) use channel::Channel;
pub(crate) use election::Election as BroadcastElection;
pub(crate) use lock::LeaderLock;

use super::driver::{Driver, Notice, now};

/// How long a visible tab may stay silent (it says hello every second)
/// before the leader counts it as gone and adopts its saved messages.
const GONE_AFTER: Millis = 3_000;
/// The same for a tab last heard hidden: browsers throttle a hidden page's
/// timers to one wake-up a second, and after some minutes to one a minute.
const GONE_AFTER_HIDDEN: Millis = 150_000;
/// How often a tab ticks: the election's pace; hellos, state broadcasts and
/// sweeps run every fourth tick.
const TICK_MS: u32 = 250;
/// At most one hand-over to a visible tab in this long.
const HANDOFF_EVERY: Millis = 2_000;
/// Recent frames kept per stream for tabs that join it later.
const REPLAY_PER_STREAM: usize = 100;

/// How tabs elect their leader.
///
/// ```
/// use heartline::yew::Election;
/// assert_eq!(Election::default(), Election::Auto);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Election {
    /// The Web Locks API where available, else the BroadcastChannel
    /// protocol.
    #[default]
    Auto,
    /// Only the BroadcastChannel protocol (for browsers without locks, and
    /// to test that path).
    BroadcastOnly,
}

/// Sharing one connection between the tabs of a browser: every provider
/// with the same `name` on one origin uses the one connection of the tab
/// that leads.
///
/// ```
/// use heartline::yew::{Election, ShareOptions};
/// let share = ShareOptions::new("heartline");
/// assert_eq!(share.name, "heartline");
/// assert_eq!(share.election, Election::Auto);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareOptions {
    /// Names the group of tabs (and the lock and channel they use).
    pub name: AttrValue,
    /// How the leader is chosen.
    pub election: Election,
}

impl ShareOptions {
    /// Sharing under `name`, electing with [`Election::Auto`].
    ///
    /// ```
    /// let share = heartline::yew::ShareOptions::new("app");
    /// assert_eq!(share.name, "app");
    /// ```
    pub fn new(name: impl Into<AttrValue>) -> Self {
        ShareOptions {
            name: name.into(),
            election: Election::Auto,
        }
    }
}

/// Which tab leads a shared connection, as this tab sees it.
///
/// ```
/// use heartline::yew::ShareInfo;
/// let info = ShareInfo { tab: "t-1".into(), leader: Some("t-1".into()), tabs: 2, locks: true };
/// assert!(info.leading());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareInfo {
    /// This tab's id.
    pub tab: String,
    /// The leading tab's id, once known.
    pub leader: Option<String>,
    /// How many tabs share the connection (as the leader counts them).
    pub tabs: usize,
    /// Whether the election uses Web Locks (else the BroadcastChannel
    /// protocol).
    pub locks: bool,
}

impl ShareInfo {
    /// Whether this tab holds the connection.
    ///
    /// ```
    /// assert!(!heartline::yew::ShareInfo::default().leading());
    /// ```
    pub fn leading(&self) -> bool {
        self.leader.as_deref() == Some(self.tab.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Follower,
    Leader,
}

/// A standing subscription of this tab.
#[derive(Debug, Clone)]
pub(crate) struct OwnStanding {
    value: Value,
    stream: Option<String>,
    leave: Option<Value>,
}

/// The driver's sharing state. Never rendered: the provider hears of it
/// through [`Notice::Share`] and the mirrored status.
pub(crate) struct Shared {
    pub(crate) me: TabId,
    name: String,
    role: Role,
    channel: Channel,
    /// The lock request (with Web Locks).
    lock: Option<LeaderLock>,
    /// The BroadcastChannel election (without).
    election: Option<BroadcastElection>,
    ticker: Option<gloo_timers::callback::Interval>,
    ticks: u64,
    /// The leader's bookkeeping (empty while following).
    hub: ShareHub,
    cache: ReplayCache,
    /// The last state the leader sent (followers).
    link: Option<LinkState>,
    /// When each other tab was last heard from, and whether it was visible.
    heard: HashMap<TabId, (Millis, bool)>,
    /// Tabs that said goodbye.
    departed: BTreeSet<TabId>,
    /// Tabs the leader already showed its unscoped frames (the greeting's
    /// answer, the directory): once per tab and leadership.
    greeted: BTreeSet<TabId>,
    /// Tabs the leader counted as gone: if one speaks again, it resyncs.
    forgotten: BTreeSet<TabId>,
    visible: bool,
    started_at: Millis,
    /// The leader last seen (so a change re-sends what the new one needs).
    last_leader: Option<TabId>,
    /// Frames delivered in this pump, broadcast at its end in one message.
    batch: Vec<Value>,
    last_handoff: Millis,
    /// The provider's storage key, under which each tab saves its messages
    /// (`<key>#tab:<id>`).
    persist_key: Option<String>,
}

fn page_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .map(|d| d.visibility_state() != web_sys::VisibilityState::Hidden)
        .unwrap_or(true)
}

fn random_tab_id() -> TabId {
    let n = (js_sys::Math::random() * 1e12) as u64;
    TabId(format!("t{n:x}"))
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// The storage key of `tab`'s saved messages.
pub(crate) fn tab_key(persist_key: &str, tab: &TabId) -> String {
    format!("{persist_key}#tab:{tab}")
}

impl Driver {
    fn shared<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> Option<R> {
        self.share.borrow_mut().as_mut().map(f)
    }

    /// Whether this driver shares a connection and does not lead it.
    pub(crate) fn following(&self) -> bool {
        self.shared(|s| s.role == Role::Follower).unwrap_or(false)
    }

    fn leading_shared(&self) -> bool {
        self.shared(|s| s.role == Role::Leader).unwrap_or(false)
    }

    /// Starts sharing: opens the channel, asks for the lock (or starts the
    /// election) and says hello. Returns `false` where the browser has no
    /// BroadcastChannel: the driver then connects on its own.
    pub(crate) fn start_sharing(&self, options: &crate::yew::ShareOptions) -> bool {
        let name = format!("heartline.share:{}", options.name);
        let Some(channel) = Channel::open(&name, self.weak_self.clone()) else {
            return false;
        };
        let use_locks = options.election == Election::Auto && lock::supported();
        let me = random_tab_id();
        let visible = page_visible();
        let at = now();
        *self.share.borrow_mut() = Some(Shared {
            me: me.clone(),
            name: name.clone(),
            role: Role::Follower,
            channel,
            lock: None,
            election: (!use_locks).then(|| BroadcastElection::new(at)),
            ticker: None,
            ticks: 0,
            hub: ShareHub::default(),
            cache: ReplayCache::new(REPLAY_PER_STREAM),
            link: None,
            heard: HashMap::new(),
            departed: BTreeSet::new(),
            greeted: BTreeSet::new(),
            forgotten: BTreeSet::new(),
            visible,
            started_at: at,
            last_leader: None,
            batch: Vec::new(),
            last_handoff: 0,
            persist_key: self.persist_key.borrow().clone(),
        });
        let weak = self.weak_self.clone();
        let ticker = gloo_timers::callback::Interval::new(TICK_MS, move || {
            if let Some(driver) = weak.upgrade() {
                driver.share_tick();
            }
        });
        self.shared(|s| s.ticker = Some(ticker));
        if use_locks {
            let lock = LeaderLock::request(&name, false, self.weak_self.clone());
            self.shared(|s| s.lock = lock);
        }
        self.post(TabMessage::Hello { tab: me, visible });
        self.emit_share();
        true
    }

    /// The user asked to retry: a follower asks the leader. `false` when
    /// this tab holds its own connection (the caller retries it).
    pub(crate) fn forward_retry(&self) -> bool {
        if !self.following() {
            return false;
        }
        if let Some(tab) = self.shared(|s| s.me.clone()) {
            self.post(TabMessage::Retry { tab });
        }
        true
    }

    /// The app closes the connection on purpose. A leading tab closes the
    /// one connection (every tab shows it closed; a retry from any tab
    /// starts it again); a follower only detaches itself.
    pub(crate) fn close(&self) {
        if self.following() {
            self.stop_sharing();
            self.emit(Notice::Status(ConnectionStatus::Closed));
            return;
        }
        self.feed(CoreEvent::Stop);
    }

    /// The page is going away (`pagehide`): a leader also closes its link at
    /// once, so the next leader's connection never overlaps it.
    pub(crate) fn page_leaving(&self) {
        let leading = self.leading_shared();
        self.stop_sharing();
        if leading {
            self.release_link();
        }
    }

    /// Stops sharing (the provider unmounts or the page goes): says goodbye
    /// and lets go of the lock.
    pub(crate) fn stop_sharing(&self) {
        let me = self.shared(|s| s.me.clone());
        if let Some(me) = me {
            self.post(TabMessage::Bye { tab: me });
        }
        let shared = self.share.borrow_mut().take();
        drop(shared);
    }

    fn post(&self, message: TabMessage) {
        let share = self.share.borrow();
        if let Some(shared) = share.as_ref() {
            shared.channel.post(&message);
        }
    }

    pub(crate) fn share_info(&self) -> Option<crate::yew::ShareInfo> {
        let share = self.share.borrow();
        let s = share.as_ref()?;
        let leader = match s.role {
            Role::Leader => Some(s.me.clone()),
            Role::Follower => s.link.as_ref().map(|l| l.leader.clone()),
        };
        let tabs = match s.role {
            Role::Leader => 1 + live_tabs(s, now()).len(),
            Role::Follower => s.link.as_ref().map_or(0, |l| l.tabs),
        };
        Some(crate::yew::ShareInfo {
            tab: s.me.to_string(),
            leader: leader.map(|l| l.to_string()),
            tabs,
            locks: s.election.is_none(),
        })
    }

    fn emit_share(&self) {
        if let Some(info) = self.share_info() {
            self.emit(Notice::Share(info));
        }
    }

    // --- leadership ---------------------------------------------------------

    pub(crate) fn share_lock_granted(&self) {
        self.become_leader();
    }

    pub(crate) fn share_lock_lost(&self) {
        if self.leading_shared() {
            self.step_down();
            let name = self.shared(|s| s.name.clone());
            if let Some(name) = name {
                let lock = LeaderLock::request(&name, false, self.weak_self.clone());
                self.shared(|s| s.lock = lock);
            }
        }
    }

    fn become_leader(&self) {
        let own_standing = self.own_standing.borrow().clone();
        let Some(me) = self.shared(|s| {
            s.role = Role::Leader;
            s.hub.clear();
            s.cache.clear();
            s.greeted.clear();
            s.forgotten.clear();
            let me = s.me.clone();
            for (key, own) in &own_standing {
                s.hub
                    .hold(&me, key, own.stream.as_deref(), own.leave.clone());
            }
            s.link = None;
            s.last_leader = Some(me.clone());
            me
        }) else {
            return;
        };
        // Every saved outbox is ours now: the tab that led before is gone or
        // stepped down, tabs that said goodbye are gone, a page reloaded
        // left its old key behind. A tab still alive forwards its own again
        // when it hears of us and takes them back; the ids make every
        // message count once.
        for tab in self.saved_tabs() {
            if tab != me {
                self.adopt_tab(&tab);
            }
        }
        self.adopt_unshared();
        // The page's network state applies from here on.
        if web_socket_supported() {
            self.feed(CoreEvent::Start);
        } else {
            self.feed(CoreEvent::Unsupported);
        }
        if !navigator_online() {
            self.feed(CoreEvent::Offline);
        }
        self.broadcast_state();
        self.emit_share();
    }

    /// Stops leading: closes the link and starts a fresh, idle core with
    /// this tab's own messages, subscriptions and stream positions.
    pub(crate) fn step_down(&self) {
        let Some(me) = self.shared(|s| {
            s.role = Role::Follower;
            s.last_leader = None;
            s.link = None;
            s.me.clone()
        }) else {
            return;
        };
        let (own_outbox, standing, positions) = {
            let core = self.core.borrow();
            let share = self.share.borrow();
            let hub = share.as_ref().map(|s| &s.hub);
            let own = core.export_outbox_where(|id| {
                hub.and_then(|h| h.owner(id))
                    .is_none_or(|owner| *owner == me)
            });
            let standing = self.own_standing.borrow().clone();
            let positions: Vec<(String, Option<u64>, Option<u64>)> = standing
                .values()
                .filter_map(|own| own.stream.clone())
                .map(|stream| {
                    let seq = core.last_seq(&stream);
                    let epoch = core.stream_epoch(&stream);
                    (stream, seq, epoch)
                })
                .collect();
            (own, standing, positions)
        };
        self.release_link();
        let mut fresh = self.fresh_core();
        for (key, own) in &standing {
            let _ = fresh.add_standing(key.clone(), own.value.clone(), own.stream.clone());
        }
        for (stream, seq, epoch) in positions {
            fresh.set_last_seq(&stream, seq);
            fresh.set_stream_epoch(&stream, epoch);
        }
        let _ = fresh.restore_outbox(now(), &own_outbox);
        let _ = fresh.drain_actions();
        *self.core.borrow_mut() = fresh;
        self.shared(|s| {
            s.hub.clear();
            s.cache.clear();
        });
        let visible = page_visible();
        self.post(TabMessage::Hello { tab: me, visible });
        self.emit(Notice::Status(ConnectionStatus::Connecting { attempt: 1 }));
        self.emit(Notice::OutboxChanged);
        self.emit_share();
    }

    // --- the tick -----------------------------------------------------------

    fn share_tick(&self) {
        let at = now();
        let Some((role, tick, me, visible)) = self.shared(|s| {
            s.ticks += 1;
            (s.role, s.ticks, s.me.clone(), s.visible)
        }) else {
            return;
        };
        let every_second = tick % 4 == 0;
        match role {
            Role::Leader => {
                let alive = self.shared(|s| {
                    s.election
                        .as_mut()
                        .is_some_and(|e| e.leader_should_announce(at))
                });
                if alive == Some(true) {
                    self.post(TabMessage::Alive { leader: me });
                }
                if every_second {
                    self.sweep(at);
                    self.broadcast_state();
                    self.maybe_hand_over(at);
                }
            }
            Role::Follower => {
                let claim = self.shared(|s| {
                    let me = s.me.clone();
                    s.election.as_mut().map(|e| e.tick(at, &me))
                });
                match claim.flatten().flatten() {
                    Some(election::Step::Claim) => self.post(TabMessage::Claim { tab: me.clone() }),
                    Some(election::Step::Lead) => {
                        self.become_leader();
                        return;
                    }
                    None => {}
                }
                if every_second {
                    self.post(TabMessage::Hello { tab: me, visible });
                }
            }
        }
    }

    /// The page's visibility changed.
    pub(crate) fn share_visibility(&self, visible: bool) {
        let Some(me) = self.shared(|s| {
            s.visible = visible;
            s.me.clone()
        }) else {
            return;
        };
        self.post(TabMessage::Hello { tab: me, visible });
        if self.leading_shared() {
            self.broadcast_state();
            self.maybe_hand_over(now());
        }
    }

    /// A hidden leader hands over to the visible tab heard from last.
    fn maybe_hand_over(&self, at: Millis) {
        let target = self.shared(|s| {
            if s.visible || at.saturating_sub(s.last_handoff) < HANDOFF_EVERY {
                return None;
            }
            let target = s
                .heard
                .iter()
                .filter(|(tab, (heard, visible))| {
                    *visible && at.saturating_sub(*heard) < GONE_AFTER && !s.departed.contains(*tab)
                })
                .max_by_key(|(_, (heard, _))| *heard)
                .map(|(tab, _)| tab.clone())?;
            s.last_handoff = at;
            Some((target, s.election.is_some()))
        });
        let Some(Some((target, without_locks))) = target else {
            return;
        };
        self.post(TabMessage::Handoff { to: target });
        if without_locks {
            // Without locks the hand-over is the word itself.
            self.step_down();
        }
    }

    /// The leader adopts the saved messages of tabs it no longer hears, and
    /// ends their subscriptions.
    fn sweep(&self, at: Millis) {
        let Some((me, gone, persist_key)) = self.shared(|s| {
            let gone: Vec<TabId> = s
                .hub
                .tabs()
                .into_iter()
                .filter(|tab| *tab != s.me && !is_live(s, tab, at))
                .collect();
            (s.me.clone(), gone, s.persist_key.clone())
        }) else {
            return;
        };
        for tab in &gone {
            self.forget_tab(tab);
        }
        if persist_key.is_none() {
            return;
        }
        for tab in self.saved_tabs() {
            let adopt = tab != me
                && self
                    .shared(|s| {
                        let never_heard = !s.heard.contains_key(&tab);
                        s.departed.contains(&tab)
                            || (never_heard && at.saturating_sub(s.started_at) >= GONE_AFTER)
                            || (!never_heard && !is_live(s, &tab, at))
                    })
                    .unwrap_or(false);
            if adopt {
                self.adopt_tab(&tab);
            }
        }
    }

    /// The tabs that have messages saved under the provider's key.
    fn saved_tabs(&self) -> Vec<TabId> {
        let Some(persist_key) = self.shared(|s| s.persist_key.clone()).flatten() else {
            return Vec::new();
        };
        let prefix = format!("{persist_key}#tab:");
        let Some(storage) = local_storage() else {
            return Vec::new();
        };
        (0..storage.length().unwrap_or(0))
            .filter_map(|i| storage.key(i).ok().flatten())
            .filter_map(|key| key.strip_prefix(&prefix).map(|tab| TabId(tab.to_owned())))
            .collect()
    }

    /// A tab is gone: its subscriptions end and its messages are ours.
    fn forget_tab(&self, tab: &TabId) {
        let released = self.shared(|s| {
            let me = s.me.clone();
            s.hub.reassign(tab, &me);
            s.heard.remove(tab);
            if !s.departed.contains(tab) {
                s.forgotten.insert(tab.clone());
            }
            s.hub.drop_tab(tab)
        });
        for released in released.unwrap_or_default() {
            self.leave_on_connection(&released.key, released.stream, released.leave);
        }
        self.emit(Notice::OutboxChanged);
    }

    /// Moves `tab`'s saved messages into our outbox and removes its key.
    fn adopt_tab(&self, tab: &TabId) {
        let key = self
            .shared(|s| s.persist_key.as_ref().map(|k| tab_key(k, tab)))
            .flatten();
        if let Some(key) = key {
            self.adopt_key(&key);
        }
        let me = self.shared(|s| s.me.clone());
        if let Some(me) = me {
            self.shared(|s| s.hub.reassign(tab, &me));
        }
    }

    /// Messages saved before sharing was on (or by a page that did not share).
    fn adopt_unshared(&self) {
        let key = self.shared(|s| s.persist_key.clone()).flatten();
        if let Some(key) = key {
            self.adopt_key(&key);
        }
    }

    fn adopt_key(&self, key: &str) {
        let Some(storage) = local_storage() else {
            return;
        };
        let Some(json) = storage.get_item(key).ok().flatten() else {
            return;
        };
        match self.core.borrow_mut().restore_outbox(now(), &json) {
            Ok(_) => {}
            Err(error) => web_sys::console::warn_1(
                &format!("heartline: could not adopt the messages saved under {key}: {error}")
                    .into(),
            ),
        }
        let _ = storage.remove_item(key);
        self.flush_core();
        self.emit(Notice::OutboxChanged);
    }

    fn broadcast_state(&self) {
        let Some(state) = self.shared(|s| (s.me.clone(), s.visible, live_tabs(s, now()).len()))
        else {
            return;
        };
        let (leader, leader_visible, others) = state;
        let (status, stats, max_frame_bytes) = {
            let core = self.core.borrow();
            (core.status(), core.stats(), core.max_frame_bytes())
        };
        self.post(TabMessage::State(LinkState {
            leader,
            leader_visible,
            status,
            transport: self.transport.get(),
            stats,
            max_frame_bytes,
            tabs: others + 1,
        }));
    }

    // --- what the leader's core does --------------------------------------

    /// A frame the leader's core delivers: kept for late joiners, broadcast
    /// at the end of the pump, and dispatched here only if this tab follows
    /// its stream.
    pub(crate) fn share_deliver(&self, inbound: &Inbound) -> bool {
        let mine = self.shared(|s| {
            s.cache.remember(inbound);
            s.batch.push((*inbound.value).clone());
            let me = s.me.clone();
            is_for(inbound, |stream| s.hub.follows(&me, stream))
        });
        mine.unwrap_or(true)
    }

    /// A message state of the leader's core: other tabs' messages are
    /// theirs to show.
    pub(crate) fn share_message_state(&self, id: &MessageId, state: &DeliveryState) {
        let foreign = self.shared(|s| {
            let foreign = s.hub.owner(id).is_some_and(|owner| *owner != s.me);
            if state.is_final() {
                s.hub.settle(id);
            }
            foreign
        });
        if foreign == Some(true) {
            self.post(TabMessage::Message {
                id: id.clone(),
                state: state.clone(),
            });
        }
    }

    /// The end of a pump: one broadcast for the frames it delivered.
    pub(crate) fn share_flush(&self) {
        let frames = self.shared(|s| std::mem::take(&mut s.batch));
        if let Some(frames) = frames
            && !frames.is_empty()
        {
            self.post(TabMessage::Deliver { to: None, frames });
        }
    }

    pub(crate) fn share_status_changed(&self) {
        if self.leading_shared() {
            self.broadcast_state();
        }
    }

    // --- the app's calls in a follower -------------------------------------

    /// After the idle core queued a message: forward it to the leader.
    pub(crate) fn forward_send(&self, id: &MessageId) {
        let dump = self.core.borrow().export_outbox_where(|m| m == id);
        if let Some(tab) = self.shared(|s| s.me.clone()) {
            self.post(TabMessage::Send { tab, outbox: dump });
        }
    }

    pub(crate) fn forward_volatile(&self, value: Value) -> Result<(), SendError> {
        let open = self
            .shared(|s| s.link.as_ref().is_some_and(|l| l.status.is_open()))
            .unwrap_or(false);
        if !open {
            return Err(SendError::NotOpen);
        }
        match &value {
            Value::Object(object) => {
                if !object.get("socketType").is_some_and(Value::is_string) {
                    return Err(SendError::MissingSocketType);
                }
            }
            _ => return Err(SendError::NotAnObject),
        }
        if let Some(tab) = self.shared(|s| s.me.clone()) {
            self.post(TabMessage::Volatile { tab, frame: value });
        }
        Ok(())
    }

    pub(crate) fn forward_cancel(&self, id: &MessageId) {
        if let Some(tab) = self.shared(|s| s.me.clone()) {
            self.post(TabMessage::Cancel {
                tab,
                id: id.clone(),
            });
        }
    }

    /// Whether the leader's link is open (a follower's messages forwarded
    /// now are as good as written).
    pub(crate) fn shared_link_open(&self) -> bool {
        self.shared(|s| s.link.as_ref().is_some_and(|l| l.status.is_open()))
            .unwrap_or(false)
    }

    /// A standing subscription of this tab, shared or not yet.
    pub(crate) fn share_add_standing(
        &self,
        key: &str,
        value: &Value,
        stream: Option<&str>,
        leave: Option<Value>,
    ) -> Option<Joined> {
        // Kept whether or not the connection is shared yet: the provider
        // starts sharing after its children subscribed.
        self.own_standing.borrow_mut().insert(
            key.to_owned(),
            OwnStanding {
                value: value.clone(),
                stream: stream.map(str::to_owned),
                leave: leave.clone(),
            },
        );
        let joined = self.shared(|s| match s.role {
            Role::Leader => {
                let me = s.me.clone();
                Some(s.hub.hold(&me, key, stream, leave.clone()))
            }
            Role::Follower => None,
        })?;
        if joined.is_none() {
            let tab = self.shared(|s| s.me.clone())?;
            self.post(TabMessage::Standing {
                tab,
                key: key.to_owned(),
                value: value.clone(),
                stream: stream.map(str::to_owned),
                leave,
            });
        }
        joined
    }

    /// This tab lets go of a standing subscription. Returns whether the
    /// connection should leave it (no tab holds it any more).
    pub(crate) fn share_leave_standing(&self, key: &str) -> Option<bool> {
        self.own_standing.borrow_mut().remove(key);
        let outcome = self.shared(|s| {
            let me = s.me.clone();
            match s.role {
                Role::Leader => Some(s.hub.release(&me, key).is_some()),
                Role::Follower => None,
            }
        })?;
        if outcome.is_none()
            && let Some(tab) = self.shared(|s| s.me.clone())
        {
            self.post(TabMessage::Leave {
                tab,
                key: key.to_owned(),
            });
        }
        Some(outcome.unwrap_or(false))
    }

    /// The recent frames of `stream`, for this tab joining it after others.
    pub(crate) fn share_replay_here(&self, stream: &str) {
        let frames = self.shared(|s| s.cache.stream(stream)).unwrap_or_default();
        for frame in frames {
            if let Ok(inbound) = Inbound::from_value(frame, 0) {
                self.registry.dispatch(&inbound);
            }
        }
    }

    /// Ends a standing subscription on the connection: removed, its stream
    /// forgotten, its `leave` sent while open.
    pub(crate) fn leave_on_connection(
        &self,
        key: &str,
        stream: Option<String>,
        leave: Option<Value>,
    ) {
        self.core.borrow_mut().remove_standing(key);
        if let Some(stream) = &stream {
            self.core.borrow_mut().forget_stream(stream);
            self.shared(|s| s.cache.forget(stream));
        }
        if let Some(leave) = leave
            && self.core.borrow().status().is_open()
        {
            let _ = self.core.borrow_mut().send_volatile_at(now(), leave);
        }
        self.flush_core();
    }

    /// Messages this tab answers for (saved under its storage key).
    pub(crate) fn own_outbox(&self) -> Option<String> {
        let share = self.share.borrow();
        let s = share.as_ref()?;
        let core = self.core.borrow();
        let me = &s.me;
        Some(core.export_outbox_where(|id| s.hub.owner(id).is_none_or(|owner| owner == me)))
    }

    pub(crate) fn own_outbox_is_empty(&self) -> Option<bool> {
        let share = self.share.borrow();
        let s = share.as_ref()?;
        let core = self.core.borrow();
        Some(
            core.outbox_ids()
                .iter()
                .all(|id| s.hub.owner(id).is_some_and(|owner| *owner != s.me)),
        )
    }

    /// Where this tab saves its messages.
    pub(crate) fn own_storage_key(&self, persist_key: &str) -> Option<String> {
        self.shared(|s| tab_key(persist_key, &s.me))
    }

    pub(crate) fn shared_status(&self) -> Option<ConnectionStatus> {
        let share = self.share.borrow();
        let s = share.as_ref()?;
        match s.role {
            Role::Leader => None,
            Role::Follower => Some(
                s.link
                    .as_ref()
                    .map_or(ConnectionStatus::Connecting { attempt: 1 }, |l| {
                        l.status.clone()
                    }),
            ),
        }
    }

    pub(crate) fn shared_link(&self) -> Option<LinkState> {
        let share = self.share.borrow();
        let s = share.as_ref()?;
        match s.role {
            Role::Leader => None,
            Role::Follower => s.link.clone(),
        }
    }

    // --- messages from other tabs -----------------------------------------

    pub(crate) fn share_receive(&self, message: TabMessage) {
        let at = now();
        let Some((me, role)) = self.shared(|s| (s.me.clone(), s.role)) else {
            return;
        };
        if let Some(to) = message.recipient()
            && *to != me
        {
            return;
        }
        self.note_heard(&message, at);
        match role {
            Role::Leader => self.leader_receive(message, &me, at),
            Role::Follower => self.follower_receive(message, &me, at),
        }
        self.pump();
    }

    fn note_heard(&self, message: &TabMessage, at: Millis) {
        self.shared(|s| {
            let (tab, visible) = match message {
                TabMessage::Hello { tab, visible } => (tab, Some(*visible)),
                TabMessage::State(state) => (&state.leader, Some(state.leader_visible)),
                TabMessage::Send { tab, .. }
                | TabMessage::Volatile { tab, .. }
                | TabMessage::Cancel { tab, .. }
                | TabMessage::Standing { tab, .. }
                | TabMessage::Leave { tab, .. }
                | TabMessage::Retry { tab }
                | TabMessage::Claim { tab } => (tab, None),
                TabMessage::Alive { leader } => (leader, None),
                TabMessage::Bye { tab } => {
                    s.departed.insert(tab.clone());
                    s.heard.remove(tab);
                    return;
                }
                TabMessage::Message { .. }
                | TabMessage::Deliver { .. }
                | TabMessage::Handoff { .. }
                | TabMessage::Resync { .. } => return,
            };
            if *tab == s.me {
                return;
            }
            let entry = s.heard.entry(tab.clone()).or_insert((at, true));
            entry.0 = at;
            if let Some(visible) = visible {
                entry.1 = visible;
            }
        });
    }

    fn leader_receive(&self, message: TabMessage, me: &TabId, at: Millis) {
        match message {
            TabMessage::Hello { tab, .. } => {
                let back = self.shared(|s| s.forgotten.remove(&tab));
                if back == Some(true) {
                    self.post(TabMessage::Resync { to: tab.clone() });
                }
                let first = self.shared(|s| s.greeted.insert(tab.clone()));
                if first == Some(true) {
                    let frames = self.shared(|s| s.cache.unscoped()).unwrap_or_default();
                    if !frames.is_empty() {
                        self.post(TabMessage::Deliver {
                            to: Some(tab),
                            frames,
                        });
                    }
                }
                self.broadcast_state();
                self.emit_share();
                self.maybe_hand_over(at);
            }
            TabMessage::Bye { tab } => {
                self.forget_tab(&tab);
                self.adopt_tab(&tab);
                self.broadcast_state();
                self.emit_share();
            }
            TabMessage::Send { tab, outbox } => {
                let restored = self.core.borrow_mut().restore_outbox(at, &outbox);
                match restored {
                    Ok(_) => {
                        // Every message of the dump is the sender's, also one
                        // this leader already had (adopted from storage): the
                        // sender shows and saves it, so it must hear how it ends.
                        let ids = dump_ids(&outbox);
                        let core = self.core.borrow();
                        let present: Vec<MessageId> = ids
                            .into_iter()
                            .filter(|id| core.delivery_state(id).is_some())
                            .collect();
                        drop(core);
                        self.shared(|s| {
                            for id in present {
                                s.hub.own(id, tab.clone());
                            }
                        });
                        self.emit(Notice::OutboxChanged);
                    }
                    Err(error) => web_sys::console::warn_1(
                        &format!("heartline: a tab's messages were refused: {error}").into(),
                    ),
                }
                self.flush_core();
            }
            TabMessage::Retry { .. } => {
                let closed = matches!(self.core.borrow().status(), ConnectionStatus::Closed);
                self.feed(if closed {
                    CoreEvent::Start
                } else {
                    CoreEvent::RetryNow
                });
            }
            TabMessage::Volatile { frame, .. } => {
                let _ = self.core.borrow_mut().send_volatile_at(at, frame);
                self.flush_core();
            }
            TabMessage::Cancel { id, .. } => {
                let _ = self.core.borrow_mut().cancel(&id);
                self.flush_core();
            }
            TabMessage::Standing {
                tab,
                key,
                value,
                stream,
                leave,
            } => {
                let joined = self.shared(|s| s.hub.hold(&tab, &key, stream.as_deref(), leave));
                match joined {
                    Some(Joined::First) => {
                        let _ = self.core.borrow_mut().add_standing(key, value, stream);
                        self.flush_core();
                    }
                    Some(Joined::Again) => {
                        if let Some(stream) = stream {
                            let frames =
                                self.shared(|s| s.cache.stream(&stream)).unwrap_or_default();
                            self.post(TabMessage::Deliver {
                                to: Some(tab),
                                frames,
                            });
                        }
                    }
                    None => {}
                }
            }
            TabMessage::Leave { tab, key } => {
                let released = self.shared(|s| s.hub.release(&tab, &key)).flatten();
                if let Some(released) = released {
                    self.leave_on_connection(&released.key, released.stream, released.leave);
                }
            }
            TabMessage::State(state) => {
                // Two leaders: only without locks (with locks the other one
                // is about to hear it lost its lock). The larger id yields.
                if state.leader != *me && self.without_locks() && *me > state.leader {
                    self.step_down();
                }
            }
            TabMessage::Alive { leader } => {
                if leader != *me && self.without_locks() && *me > leader {
                    self.step_down();
                }
            }
            TabMessage::Claim { .. } => {
                // Someone thinks nobody leads: say otherwise at once.
                if self.without_locks() {
                    self.post(TabMessage::Alive { leader: me.clone() });
                }
            }
            TabMessage::Message { .. }
            | TabMessage::Deliver { .. }
            | TabMessage::Handoff { .. }
            | TabMessage::Resync { .. } => {}
        }
    }

    fn without_locks(&self) -> bool {
        self.shared(|s| s.election.is_some()).unwrap_or(false)
    }

    fn follower_receive(&self, message: TabMessage, me: &TabId, at: Millis) {
        match message {
            TabMessage::State(state) => {
                let changed_leader = self
                    .shared(|s| {
                        if let Some(election) = s.election.as_mut() {
                            election.heard_leader(at);
                        }
                        let changed = s.last_leader.as_ref() != Some(&state.leader);
                        s.last_leader = Some(state.leader.clone());
                        let status_changed =
                            s.link.as_ref().map(|l| &l.status) != Some(&state.status);
                        let tabs_changed = s.link.as_ref().map(|l| l.tabs) != Some(state.tabs);
                        s.link = Some(state.clone());
                        (changed, status_changed, tabs_changed)
                    })
                    .unwrap_or((false, false, false));
                let (leader_changed, status_changed, tabs_changed) = changed_leader;
                if status_changed || leader_changed {
                    self.emit(Notice::Status(state.status.clone()));
                }
                if leader_changed {
                    self.resend_to_leader(me);
                }
                if leader_changed || tabs_changed {
                    self.emit_share();
                }
            }
            TabMessage::Alive { .. } => {
                self.shared(|s| {
                    if let Some(election) = s.election.as_mut() {
                        election.heard_leader(at);
                    }
                });
            }
            TabMessage::Claim { tab } => {
                let answer = self.shared(|s| {
                    s.election
                        .as_mut()
                        .is_some_and(|election| election.heard_claim(at, tab))
                });
                if answer == Some(true) {
                    self.post(TabMessage::Claim { tab: me.clone() });
                }
            }
            TabMessage::Message { id, state } => {
                let mine = self.core.borrow().delivery_state(&id).is_some();
                if !mine {
                    return;
                }
                if state.is_final() {
                    self.core.borrow_mut().settle_elsewhere(&id, state);
                    self.flush_core();
                } else {
                    self.emit(Notice::Message(id, state));
                }
            }
            TabMessage::Deliver { frames, .. } => {
                for frame in frames {
                    let Ok(inbound) = Inbound::from_value(frame, 0) else {
                        continue;
                    };
                    let follows = |stream: &str| {
                        self.own_standing
                            .borrow()
                            .values()
                            .any(|own| own.stream.as_deref() == Some(stream))
                    };
                    if !is_for(&inbound, follows) {
                        continue;
                    }
                    if let Some(pos) = &inbound.stream {
                        // Where this tab would resume, should it lead.
                        let mut core = self.core.borrow_mut();
                        if pos.epoch.is_some() {
                            core.set_stream_epoch(&pos.stream, pos.epoch);
                        }
                        if core.last_seq(&pos.stream).is_none_or(|seq| seq < pos.seq) {
                            core.set_last_seq(&pos.stream, Some(pos.seq));
                        }
                    }
                    self.registry.dispatch(&inbound);
                }
            }
            TabMessage::Handoff { .. } => {
                if !page_visible() {
                    return;
                }
                let (name, without_locks) =
                    match self.shared(|s| (s.name.clone(), s.election.is_some())) {
                        Some(found) => found,
                        None => return,
                    };
                if without_locks {
                    self.become_leader();
                } else {
                    // Drop the queued request first: it must not be granted
                    // later on top of the stolen one.
                    self.shared(|s| s.lock = None);
                    let lock = LeaderLock::request(&name, true, self.weak_self.clone());
                    self.shared(|s| s.lock = lock);
                }
            }
            TabMessage::Resync { .. } => self.resend_to_leader(me),
            TabMessage::Bye { tab } => {
                let was_leader = self
                    .shared(|s| s.link.as_ref().is_some_and(|l| l.leader == tab))
                    .unwrap_or(false);
                if was_leader {
                    self.shared(|s| {
                        if let Some(election) = s.election.as_mut() {
                            election.leader_left();
                        }
                    });
                }
            }
            TabMessage::Hello { .. }
            | TabMessage::Send { .. }
            | TabMessage::Volatile { .. }
            | TabMessage::Cancel { .. }
            | TabMessage::Standing { .. }
            | TabMessage::Retry { .. }
            | TabMessage::Leave { .. } => {}
        }
    }

    /// A new leader: it needs this tab's subscriptions and unsettled
    /// messages (it keeps the ids, so a message it already has counts once).
    fn resend_to_leader(&self, me: &TabId) {
        // The new leader may have adopted (and removed) this tab's saved
        // messages: save them again.
        self.emit(Notice::OutboxChanged);
        let standing = self.own_standing.borrow().clone();
        for (key, own) in standing {
            self.post(TabMessage::Standing {
                tab: me.clone(),
                key,
                value: own.value,
                stream: own.stream,
                leave: own.leave,
            });
        }
        let outbox = self.core.borrow().export_outbox();
        if !self.core.borrow().outbox_ids().is_empty() {
            self.post(TabMessage::Send {
                tab: me.clone(),
                outbox,
            });
        }
    }
}

/// The ids of an outbox dump (a malformed one has none).
fn dump_ids(dump: &str) -> Vec<MessageId> {
    serde_json::from_str::<Value>(dump)
        .ok()
        .and_then(|dump| {
            dump.get("messages")
                .and_then(Value::as_array)
                .map(|messages| {
                    messages
                        .iter()
                        .filter_map(|m| m.get("id").and_then(Value::as_str).map(MessageId::from))
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// Whether `tab` was heard from lately (a hidden tab may be throttled).
fn is_live(s: &Shared, tab: &TabId, at: Millis) -> bool {
    !s.departed.contains(tab)
        && s.heard.get(tab).is_some_and(|(heard, visible)| {
            let window = if *visible {
                GONE_AFTER
            } else {
                GONE_AFTER_HIDDEN
            };
            at.saturating_sub(*heard) < window
        })
}

fn live_tabs(s: &Shared, at: Millis) -> Vec<TabId> {
    s.heard
        .keys()
        .filter(|tab| is_live(s, tab, at))
        .cloned()
        .collect()
}

fn web_socket_supported() -> bool {
    web_sys::window()
        .map(|w| js_sys::Reflect::has(&w, &"WebSocket".into()).unwrap_or(false))
        .unwrap_or(false)
}

fn navigator_online() -> bool {
    web_sys::window()
        .map(|w| w.navigator().on_line())
        .unwrap_or(true)
}
