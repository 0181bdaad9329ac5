//! Electing a leader without Web Locks: over the BroadcastChannel alone.
//!
//! The leader says it is alive every [`ANNOUNCE_EVERY`]. A follower that
//! hears nothing from a leader for [`SILENCE`] claims; claims gathered for
//! [`CLAIM_WINDOW`] decide, and the smallest tab id wins. A leader answers a
//! claim at once, so a claim against a live leader comes to nothing; two
//! leaders (a split while a tab was frozen) meet through their announcements,
//! and the larger id steps down.

use std::collections::BTreeSet;

use crate::core::Millis;
use crate::core::share::TabId;

/// How often the leader says it is alive.
pub(crate) const ANNOUNCE_EVERY: Millis = 500;
/// How long followers wait for a leader before claiming.
pub(crate) const SILENCE: Millis = 1_500;
/// How long a round of claims lasts.
pub(crate) const CLAIM_WINDOW: Millis = 400;
/// The first wait of a new tab: an existing leader answers its hello at
/// once, so a lone tab need not wait the whole silence.
const FIRST_WAIT: Millis = 600;

/// What a follower's tick asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Say that this tab claims.
    Claim,
    /// This tab won: lead.
    Lead,
}

/// One tab's view of the election.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    /// When a leader was last heard from (or the tab started).
    heard_at: Millis,
    /// How long a silence starts a claim (shorter the first time).
    silence: Millis,
    /// A round of claims: its end and the claimants heard.
    round: Option<(Millis, BTreeSet<TabId>)>,
    last_announce: Millis,
}

impl Election {
    pub(crate) fn new(now: Millis) -> Self {
        Election {
            heard_at: now,
            silence: FIRST_WAIT,
            round: None,
            last_announce: 0,
        }
    }

    /// A leader spoke: no claim now.
    pub(crate) fn heard_leader(&mut self, now: Millis) {
        self.heard_at = now;
        self.silence = SILENCE;
        self.round = None;
    }

    /// The leader said goodbye: claim at the next tick.
    pub(crate) fn leader_left(&mut self) {
        self.heard_at = 0;
    }

    /// Another tab claims. Returns whether this tab should claim too (it
    /// had not started a round of its own).
    pub(crate) fn heard_claim(&mut self, now: Millis, tab: TabId) -> bool {
        match &mut self.round {
            Some((_, claimants)) => {
                claimants.insert(tab);
                false
            }
            None => {
                self.round = Some((now + CLAIM_WINDOW, BTreeSet::from([tab])));
                true
            }
        }
    }

    /// A follower's tick.
    pub(crate) fn tick(&mut self, now: Millis, me: &TabId) -> Option<Step> {
        if let Some((ends, claimants)) = &mut self.round {
            claimants.insert(me.clone());
            if now < *ends {
                return None;
            }
            let won = claimants.first() == Some(me);
            self.round = None;
            // Whoever won speaks within a tick; if it died meanwhile, the
            // silence starts another round.
            self.heard_at = now;
            self.silence = SILENCE;
            return won.then_some(Step::Lead);
        }
        if now.saturating_sub(self.heard_at) < self.silence {
            return None;
        }
        self.round = Some((now + CLAIM_WINDOW, BTreeSet::from([me.clone()])));
        Some(Step::Claim)
    }

    /// A leader's tick: whether to say it is alive now.
    pub(crate) fn leader_should_announce(&mut self, now: Millis) -> bool {
        if now.saturating_sub(self.last_announce) < ANNOUNCE_EVERY {
            return false;
        }
        self.last_announce = now;
        true
    }
}
