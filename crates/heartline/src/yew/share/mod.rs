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
mod follower;
mod leader;
mod lock;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use yew::AttrValue;

use crate::core::share::{LinkState, ReplayCache, ShareHub, TabId, TabMessage};
use crate::core::{ConnectionStatus, Event as CoreEvent, Millis};

use crate::core::share::election;
pub(crate) use channel::Channel;
pub(crate) use election::Election as BroadcastElection;
pub(crate) use lock::LeaderLock;

use super::driver::{Driver, Notice, now};
use leader::live_tabs;

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

impl OwnStanding {
    /// The frame re-sent on every open.
    pub(crate) fn value(&self) -> &Value {
        &self.value
    }
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
        self.connect();
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
}
