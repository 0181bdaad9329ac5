//! Reconnect delays: exponential growth, a cap and jitter from a seeded PRNG,
//! so tests are deterministic under a seed.

use super::{BackoffConfig, Jitter, Millis};

/// SplitMix64: tiny, fast, good enough for jitter and message-id prefixes.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high]` (inclusive); `low` when the range is empty.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low;
        if span == u64::MAX {
            return self.next_u64();
        }
        // Modulo bias is irrelevant for jitter of a few seconds.
        low + self.next_u64() % (span + 1)
    }
}

/// Computes reconnect delays. Every delay lies in `[floor, cap]`: the floor
/// is `base`, or `base / 2` with [`Jitter::Equal`] (a `base` above `cap` is
/// lowered to `cap`).
///
/// ```
/// use heartline::core::{Backoff, BackoffConfig, Jitter};
/// let config = BackoffConfig { base: 1_000, factor: 2.0, cap: 5_000, jitter: Jitter::None };
/// let mut backoff = Backoff::new(config, 7);
/// let delays: Vec<u64> = (1..=5).map(|retry| backoff.next_delay(retry)).collect();
/// assert_eq!(delays, vec![1_000, 2_000, 4_000, 5_000, 5_000]);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    rng: SplitMix64,
    previous: Millis,
}

impl Backoff {
    /// A backoff with its own jitter PRNG seeded by `seed`.
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// let mut a = Backoff::new(BackoffConfig::default(), 1);
    /// let mut b = Backoff::new(BackoffConfig::default(), 1);
    /// assert_eq!(a.next_delay(3), b.next_delay(3)); // same seed, same delays
    /// ```
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        let previous = config.base.min(config.cap);
        Backoff {
            config,
            rng: SplitMix64::new(seed),
            previous,
        }
    }

    /// The smallest delay ever returned.
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// assert_eq!(Backoff::new(BackoffConfig::default(), 0).floor(), 125);
    /// ```
    pub fn floor(&self) -> Millis {
        let base = self.config.base.min(self.config.cap);
        match self.config.jitter {
            Jitter::Equal => base / 2,
            Jitter::None | Jitter::Full | Jitter::Decorrelated => base,
        }
    }

    /// The largest delay ever returned.
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// assert_eq!(Backoff::new(BackoffConfig::default(), 0).ceiling(), 10_000);
    /// ```
    pub fn ceiling(&self) -> Millis {
        self.config.cap
    }

    /// The un-jittered delay of retry `retry` (1-based):
    /// `base * factor^(retry-1)`, within `[base, cap]`.
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// let backoff = Backoff::new(BackoffConfig::default(), 0);
    /// assert_eq!(backoff.envelope(1), 250);
    /// assert_eq!(backoff.envelope(2), 500);
    /// assert_eq!(backoff.envelope(100), 10_000);
    /// ```
    pub fn envelope(&self, retry: u32) -> Millis {
        let floor = self.config.base.min(self.config.cap);
        let factor = if self.config.factor.is_finite() && self.config.factor >= 1.0 {
            self.config.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = floor as f64 * factor.powi(exponent);
        if !grown.is_finite() || grown >= self.config.cap as f64 {
            self.config.cap
        } else {
            // `as` saturates; grown is finite and within [floor, cap] here.
            (grown as Millis).clamp(floor, self.config.cap)
        }
    }

    /// The delay before retry `retry` (1-based), jittered.
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// let mut backoff = Backoff::new(BackoffConfig::default(), 42);
    /// assert!(backoff.next_delay(1) <= 250); // the first retry, jittered
    /// for retry in 1..50 {
    ///     let delay = backoff.next_delay(retry);
    ///     assert!((125..=10_000).contains(&delay));
    /// }
    /// ```
    pub fn next_delay(&mut self, retry: u32) -> Millis {
        let floor = self.floor();
        let cap = self.config.cap;
        let delay = match self.config.jitter {
            Jitter::None => self.envelope(retry),
            Jitter::Equal => {
                let top = self.envelope(retry);
                self.rng.between(top / 2, top)
            }
            Jitter::Full => {
                let top = self.envelope(retry);
                self.rng.between(floor, top)
            }
            Jitter::Decorrelated => {
                let top = self.previous.saturating_mul(3).min(cap);
                self.rng.between(floor, top)
            }
        };
        let delay = delay.clamp(floor, cap.max(floor));
        self.previous = delay;
        delay
    }

    /// Forgets the growth of decorrelated jitter (after a healthy connection).
    ///
    /// ```
    /// use heartline::core::{Backoff, BackoffConfig};
    /// let mut backoff = Backoff::new(BackoffConfig::default(), 3);
    /// backoff.next_delay(9);
    /// backoff.reset();
    /// ```
    pub fn reset(&mut self) {
        self.previous = self.floor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_stays_inside_inclusive_bounds() {
        let mut rng = SplitMix64::new(9);
        for _ in 0..10_000 {
            let x = rng.between(10, 20);
            assert!((10..=20).contains(&x));
        }
        assert_eq!(rng.between(5, 5), 5);
        assert_eq!(rng.between(7, 3), 7);
    }

    #[test]
    fn base_above_cap_is_lowered_to_cap() {
        let config = BackoffConfig {
            base: 50_000,
            factor: 2.0,
            cap: 10_000,
            jitter: Jitter::Decorrelated,
        };
        let mut backoff = Backoff::new(config, 1);
        for retry in 1..20 {
            assert_eq!(backoff.next_delay(retry), 10_000);
        }
    }

    #[test]
    fn nan_or_shrinking_factor_does_not_shrink_below_base() {
        for factor in [f64::NAN, 0.5, -3.0, f64::INFINITY] {
            let config = BackoffConfig {
                base: 100,
                factor,
                cap: 1_000,
                jitter: Jitter::None,
            };
            let backoff = Backoff::new(config, 1);
            for retry in [0, 1, 2, 10, u32::MAX] {
                let delay = backoff.envelope(retry);
                assert!((100..=1_000).contains(&delay), "{factor} {retry} {delay}");
            }
        }
    }
}
