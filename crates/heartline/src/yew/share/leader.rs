//! The leading tab: what it does for the others (their messages, their
//! subscriptions, the frames they are shown) and how it finds tabs that
//! are gone and adopts what they saved.

use serde_json::Value;

use crate::core::share::{Joined, TabId, TabMessage, is_for};
use crate::core::{
    ConnectionStatus, DeliveryState, Event as CoreEvent, Inbound, MessageId, Millis,
};

use super::super::driver::{Driver, Notice, now};
use super::*;
use crate::yew::provider::local_storage;

impl Driver {
    /// The leader adopts the saved messages of tabs it no longer hears, and
    /// ends their subscriptions.
    pub(super) fn sweep(&self, at: Millis) {
        let Some((me, gone)) = self.shared(|s| {
            let gone: Vec<TabId> = s
                .hub
                .tabs()
                .into_iter()
                .filter(|tab| *tab != s.me && !is_live(s, tab, at))
                .collect();
            (s.me.clone(), gone)
        }) else {
            return;
        };
        for tab in &gone {
            self.forget_tab(tab);
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
    pub(super) fn saved_tabs(&self) -> Vec<TabId> {
        let Some(persist_key) = self.persist_key.borrow().clone() else {
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
    pub(super) fn forget_tab(&self, tab: &TabId) {
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
    pub(super) fn adopt_tab(&self, tab: &TabId) {
        let key = self
            .persist_key
            .borrow()
            .as_deref()
            .map(|k| tab_key(k, tab));
        if let Some(key) = key {
            self.adopt_key(&key);
        }
        self.shared(|s| {
            let me = s.me.clone();
            s.hub.reassign(tab, &me)
        });
    }

    /// Messages saved before sharing was on (or by a page that did not share).
    pub(super) fn adopt_unshared(&self) {
        let key = self.persist_key.borrow().clone();
        if let Some(key) = key {
            self.adopt_key(&key);
        }
    }

    pub(super) fn adopt_key(&self, key: &str) {
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

    pub(super) fn broadcast_state(&self) {
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

    pub(super) fn leader_receive(&self, message: TabMessage, me: &TabId, at: Millis) {
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
                    Ok(fresh) => {
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
                        let handed_back = self.shared(|s| {
                            let mut handed_back = false;
                            for id in present {
                                handed_back |= !fresh.contains(&id)
                                    && s.hub.owner(&id).is_none_or(|owner| *owner == s.me);
                                s.hub.own(id, tab.clone());
                            }
                            handed_back
                        });
                        // Only messages this tab had saved as its own shrink
                        // its saved outbox; fresh ones were never in it.
                        if handed_back == Some(true) {
                            self.emit(Notice::OutboxChanged);
                        }
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

    pub(super) fn without_locks(&self) -> bool {
        self.shared(|s| s.election.is_some()).unwrap_or(false)
    }
}

/// The ids of an outbox dump (a malformed one has none).
pub(super) fn dump_ids(dump: &str) -> Vec<MessageId> {
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
pub(super) fn is_live(s: &Shared, tab: &TabId, at: Millis) -> bool {
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

pub(super) fn live_tabs(s: &Shared, at: Millis) -> Vec<TabId> {
    s.heard
        .keys()
        .filter(|tab| is_live(s, tab, at))
        .cloned()
        .collect()
}
