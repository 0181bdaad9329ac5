//! Client-side pacing under the server's announced token bucket (the
//! `limits` frame), with headroom so clock drift and frames the core must
//! write at once (pings, pongs, the greeting) never empty the server's
//! bucket.

use super::Millis;

/// Share of the server's rate the client allows itself.
pub(crate) const RATE_SHARE: f64 = 0.8;
/// Share of the server's burst the client allows itself.
pub(crate) const BURST_SHARE: f64 = 0.5;

/// A token bucket in frames, refilled continuously.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pacer {
    /// Tokens per millisecond.
    rate_per_ms: f64,
    capacity: f64,
    /// May go negative: frames that cannot wait are still counted.
    tokens: f64,
    refilled_at: Millis,
}

impl Pacer {
    /// The client's bucket for a server allowing `rate` frames/s with a
    /// burst of `burst`; `None` when the numbers make no sense (no pacing).
    /// `already_written` frames went out on this link before the limits
    /// arrived and are taken from the burst.
    pub(crate) fn from_limits(
        rate: f64,
        burst: u64,
        now: Millis,
        already_written: u64,
    ) -> Option<Pacer> {
        if !rate.is_finite() || rate <= 0.0 || burst == 0 {
            return None;
        }
        let capacity = (burst as f64 * BURST_SHARE).floor().max(1.0);
        Some(Pacer {
            rate_per_ms: rate * RATE_SHARE / 1_000.0,
            capacity,
            tokens: capacity - already_written as f64,
            refilled_at: now,
        })
    }

    fn refill(&mut self, now: Millis) {
        let elapsed = now.saturating_sub(self.refilled_at) as f64;
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.capacity);
        self.refilled_at = self.refilled_at.max(now);
    }

    /// True when a frame may be written now.
    pub(crate) fn has_token(&mut self, now: Millis) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Counts one written frame (it may put the bucket in debt).
    pub(crate) fn take(&mut self, now: Millis) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the next whole token is there.
    pub(crate) fn next_token_at(&mut self, now: Millis) -> Millis {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        let wait = ((1.0 - self.tokens) / self.rate_per_ms).ceil();
        // Finite and positive here; `as` saturates anyway.
        now.saturating_add((wait as Millis).max(1))
    }

    /// A new link: the server's bucket starts full.
    pub(crate) fn refill_fully(&mut self, now: Millis) {
        self.tokens = self.capacity;
        self.refilled_at = now;
    }

    /// The server said its bucket is empty: start from nothing.
    pub(crate) fn empty(&mut self, now: Millis) {
        self.tokens = 0.0;
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_halves_the_burst_and_slows_the_rate() {
        let mut pacer = Pacer::from_limits(50.0, 100, 0, 0).expect("valid limits");
        let mut written = 0;
        while pacer.has_token(0) {
            pacer.take(0);
            written += 1;
        }
        assert_eq!(written, 50);
        // 40 frames/s: one token every 25 ms.
        assert_eq!(pacer.next_token_at(0), 25);
        assert!(pacer.has_token(25));
    }

    #[test]
    fn nonsense_limits_mean_no_pacing() {
        assert!(Pacer::from_limits(0.0, 10, 0, 0).is_none());
        assert!(Pacer::from_limits(f64::NAN, 10, 0, 0).is_none());
        assert!(Pacer::from_limits(10.0, 0, 0, 0).is_none());
    }

    #[test]
    fn frames_written_before_the_limits_count() {
        let mut pacer = Pacer::from_limits(10.0, 10, 0, 7).expect("valid limits");
        assert!(!pacer.has_token(0));
        // 8 frames/s: from -2 to 1 token takes 375 ms.
        assert_eq!(pacer.next_token_at(0), 375);
    }
}
