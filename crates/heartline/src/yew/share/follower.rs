//! A following tab: the app's calls go to the leader, and what the leader
//! sends (state, message states, frames) comes back to the hooks.

use serde_json::Value;

use crate::core::share::{Joined, TabId, TabMessage, is_for};
use crate::core::{ConnectionStatus, Inbound, MessageId, Millis, SendError};

use super::super::driver::{Driver, Notice, now};
use super::*;

impl Driver {
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

    pub(super) fn note_heard(&self, message: &TabMessage, at: Millis) {
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

    pub(super) fn follower_receive(&self, message: TabMessage, me: &TabId, at: Millis) {
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
    pub(super) fn resend_to_leader(&self, me: &TabId) {
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
