//! Electing a leader without Web Locks: over the BroadcastChannel alone.
//!
//! The leader says it is alive every [`ANNOUNCE_EVERY`]. A follower that
//! hears nothing from a leader for [`SILENCE`] claims; claims gathered for
//! [`CLAIM_WINDOW`] decide, and the smallest tab id wins. A leader answers a
//! claim at once, so a claim against a live leader comes to nothing; two
//! leaders (a split while a tab was frozen) meet through their announcements,
//! and the larger id steps down.

use std::collections::BTreeSet;

use super::TabId;
use crate::core::Millis;

/// How often the leader says it is alive.
/// ```
/// use heartline::core::share::election::{ANNOUNCE_EVERY, SILENCE};
/// assert!(ANNOUNCE_EVERY * 2 < SILENCE);
/// ```
pub const ANNOUNCE_EVERY: Millis = 500;
/// How long followers wait for a leader before claiming.
/// ```
/// assert_eq!(heartline::core::share::election::SILENCE, 1_500);
/// ```
pub const SILENCE: Millis = 1_500;
/// How long a round of claims lasts.
/// ```
/// assert!(heartline::core::share::election::CLAIM_WINDOW < heartline::core::share::election::SILENCE);
/// ```
pub const CLAIM_WINDOW: Millis = 400;
/// The first wait of a new tab: an existing leader answers its hello at
/// once, so a lone tab need not wait the whole silence.
const FIRST_WAIT: Millis = 600;

/// What a follower's tick asks of it.
///
/// ```
/// use heartline::core::share::election::{Election, Step};
/// let mut lone = Election::new(0);
/// assert_eq!(lone.tick(1_000, &"t1".into()), Some(Step::Claim));
/// assert_eq!(lone.tick(1_500, &"t1".into()), Some(Step::Lead));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Say that this tab claims.
    Claim,
    /// This tab won: lead.
    Lead,
}

/// One tab's view of the election. The driver feeds it what it hears and
/// ticks it; it answers what to say or do.
///
/// ```
/// use heartline::core::share::election::Election;
/// let mut follower = Election::new(0);
/// follower.heard_leader(500);
/// assert_eq!(follower.tick(1_000, &"t2".into()), None); // the leader is alive
/// ```
#[derive(Debug, Clone)]
pub struct Election {
    /// When a leader was last heard from (or the tab started).
    heard_at: Millis,
    /// How long a silence starts a claim (shorter the first time).
    silence: Millis,
    /// A round of claims: its end and the claimants heard.
    round: Option<(Millis, BTreeSet<TabId>)>,
    last_announce: Millis,
}

impl Election {
    /// A tab that starts at `now` and has heard no leader yet.
    ///
    /// ```
    /// let mut e = heartline::core::share::election::Election::new(0);
    /// assert_eq!(e.tick(100, &"t".into()), None); // still waiting for a leader
    /// ```
    pub fn new(now: Millis) -> Self {
        Election {
            heard_at: now,
            silence: FIRST_WAIT,
            round: None,
            last_announce: 0,
        }
    }

    /// A leader spoke: no claim now.
    ///
    /// ```
    /// use heartline::core::share::election::{Election, SILENCE};
    /// let mut e = Election::new(0);
    /// e.heard_leader(10);
    /// assert_eq!(e.tick(10 + SILENCE - 1, &"t".into()), None);
    /// ```
    pub fn heard_leader(&mut self, now: Millis) {
        self.heard_at = now;
        self.silence = SILENCE;
        self.round = None;
    }

    /// The leader said goodbye: claim at the next tick.
    ///
    /// ```
    /// use heartline::core::share::election::{Election, Step};
    /// let mut e = Election::new(0);
    /// e.heard_leader(10);
    /// e.leader_left();
    /// assert_eq!(e.tick(11, &"t".into()), Some(Step::Claim));
    /// ```
    pub fn leader_left(&mut self) {
        self.silence = 0;
    }

    /// Another tab claims. Returns whether this tab should claim too (it
    /// had not started a round of its own).
    ///
    /// ```
    /// let mut e = heartline::core::share::election::Election::new(0);
    /// assert!(e.heard_claim(5, "t1".into())); // join the round
    /// assert!(!e.heard_claim(6, "t3".into())); // already in it
    /// ```
    pub fn heard_claim(&mut self, now: Millis, tab: TabId) -> bool {
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
    ///
    /// ```
    /// use heartline::core::share::election::{Election, Step};
    /// let mut e = Election::new(0);
    /// assert!(e.heard_claim(600, "t1".into()));
    /// assert_eq!(e.tick(1_000, &"t2".into()), None); // t1 is smaller: it leads
    /// ```
    pub fn tick(&mut self, now: Millis, me: &TabId) -> Option<Step> {
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
    ///
    /// ```
    /// let mut e = heartline::core::share::election::Election::new(0);
    /// assert!(e.leader_should_announce(1_000));
    /// assert!(!e.leader_should_announce(1_100));
    /// ```
    pub fn leader_should_announce(&mut self, now: Millis) -> bool {
        if now.saturating_sub(self.last_announce) < ANNOUNCE_EVERY {
            return false;
        }
        self.last_announce = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(id: &str) -> TabId {
        TabId::from(id)
    }

    #[test]
    fn a_lone_tab_leads_after_its_first_wait_and_one_claim_round() {
        let mut e = Election::new(0);
        assert_eq!(e.tick(FIRST_WAIT - 1, &tab("a")), None);
        assert_eq!(e.tick(FIRST_WAIT, &tab("a")), Some(Step::Claim));
        assert_eq!(e.tick(FIRST_WAIT + CLAIM_WINDOW - 1, &tab("a")), None);
        assert_eq!(
            e.tick(FIRST_WAIT + CLAIM_WINDOW, &tab("a")),
            Some(Step::Lead)
        );
    }

    #[test]
    fn the_smallest_claimant_wins_and_the_others_wait() {
        let (mut a, mut b) = (Election::new(0), Election::new(0));
        assert_eq!(b.tick(FIRST_WAIT, &tab("b")), Some(Step::Claim));
        // a hears b's claim before claiming itself: it joins the round.
        assert!(a.heard_claim(FIRST_WAIT, tab("b")));
        assert!(!b.heard_claim(FIRST_WAIT, tab("a")));
        let end = FIRST_WAIT + CLAIM_WINDOW;
        assert_eq!(a.tick(end, &tab("a")), Some(Step::Lead));
        assert_eq!(b.tick(end, &tab("b")), None);
        // b then hears the winner and does not claim again.
        b.heard_leader(end + 10);
        assert_eq!(b.tick(end + SILENCE - 1, &tab("b")), None);
    }

    #[test]
    fn a_live_leader_ends_a_round_and_a_goodbye_starts_one_at_once() {
        let mut e = Election::new(0);
        assert_eq!(e.tick(FIRST_WAIT, &tab("b")), Some(Step::Claim));
        e.heard_leader(FIRST_WAIT + 100);
        assert_eq!(e.tick(FIRST_WAIT + CLAIM_WINDOW, &tab("b")), None);
        e.leader_left();
        assert_eq!(
            e.tick(FIRST_WAIT + CLAIM_WINDOW + 1, &tab("b")),
            Some(Step::Claim)
        );
    }

    #[test]
    fn a_silent_leader_is_replaced_after_the_silence() {
        let mut e = Election::new(0);
        e.heard_leader(1_000);
        assert_eq!(e.tick(1_000 + SILENCE - 1, &tab("b")), None);
        assert_eq!(e.tick(1_000 + SILENCE, &tab("b")), Some(Step::Claim));
    }

    #[test]
    fn the_leader_announces_at_its_pace() {
        let mut e = Election::new(0);
        assert!(e.leader_should_announce(ANNOUNCE_EVERY));
        assert!(!e.leader_should_announce(ANNOUNCE_EVERY + 1));
        assert!(e.leader_should_announce(2 * ANNOUNCE_EVERY));
    }
}
