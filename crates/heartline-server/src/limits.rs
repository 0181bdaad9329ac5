//! Abuse limits: a per-connection token bucket, per-user room creation,
//! and connection counts per IP (upgraded, and still in HTTP).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::store::UserId;

/// A token bucket: `burst` tokens at most, refilled at `rate` per second.
/// Each frame takes one token; an empty bucket refuses the frame.
///
/// ```
/// use heartline_server::limits::TokenBucket;
/// use std::time::{Duration, Instant};
/// let t0 = Instant::now();
/// let mut b = TokenBucket::new(2.0, 2, t0);
/// assert!(b.try_take(t0) && b.try_take(t0));
/// assert!(!b.try_take(t0));
/// assert!(b.try_take(t0 + Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            rate: if rate.is_finite() { rate.max(0.0) } else { 0.0 },
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero if one is now), at least
    /// 1 ms when not zero. A bucket that never refills answers one hour.
    ///
    /// ```
    /// use heartline_server::limits::TokenBucket;
    /// use std::time::{Duration, Instant};
    /// let t0 = Instant::now();
    /// let mut b = TokenBucket::new(4.0, 1, t0);
    /// assert_eq!(b.retry_after(t0), Duration::ZERO);
    /// assert!(b.try_take(t0));
    /// assert_eq!(b.retry_after(t0), Duration::from_millis(250));
    /// ```
    pub fn retry_after(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        if self.rate <= 0.0 {
            return NEVER_REFILLS;
        }
        Duration::from_secs_f64(missing / self.rate)
            .max(Duration::from_millis(1))
            .min(NEVER_REFILLS)
    }

    /// Whether the bucket is full (forgetting it loses nothing).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }
}

/// The retry hint of a bucket whose rate is zero.
const NEVER_REFILLS: Duration = Duration::from_secs(3600);

/// Milliseconds to wait, rounded up, at least 1: the `retry_after_ms` of a
/// `rate_limited` refusal.
pub fn retry_after_ms(wait: Duration) -> u64 {
    let micros = wait.as_micros();
    u64::try_from(micros.div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One token bucket per user for creating rooms: `per_minute` rooms a
/// minute, as many at once.
#[derive(Debug)]
pub struct RoomCreationLimiter {
    buckets: Mutex<HashMap<UserId, TokenBucket>>,
    per_minute: u32,
}

impl RoomCreationLimiter {
    /// A limiter allowing each user `per_minute` new rooms a minute.
    pub fn new(per_minute: u32) -> Self {
        RoomCreationLimiter {
            buckets: Mutex::default(),
            per_minute,
        }
    }

    /// Takes one room creation for `user`, or says how long to wait.
    ///
    /// ```
    /// use heartline_server::limits::RoomCreationLimiter;
    /// use std::time::Instant;
    /// let limiter = RoomCreationLimiter::new(1);
    /// let now = Instant::now();
    /// assert!(limiter.try_create(7, now).is_ok());
    /// assert!(limiter.try_create(7, now).is_err());
    /// assert!(limiter.try_create(8, now).is_ok());
    /// ```
    pub fn try_create(&self, user: UserId, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(user).or_insert_with(|| {
            TokenBucket::new(f64::from(self.per_minute) / 60.0, self.per_minute, now)
        });
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(bucket.retry_after(now))
        }
    }

    /// Forgets users whose bucket is full again (bounds the map).
    pub fn prune(&self, now: Instant) {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, bucket| !bucket.is_full(now));
    }
}

/// Counts open connections, in total and per IP address.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Mutex<Counts>>,
    per_ip: usize,
    total: usize,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections from this IP address.
    PerIp,
    /// Too many connections in total.
    Total,
}

impl ConnectionLimiter {
    /// A limiter admitting `per_ip` connections per address and `total` in all.
    pub fn new(per_ip: usize, total: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::default(),
            per_ip,
            total,
        }
    }

    /// Admits a connection; it counts until the returned guard is dropped.
    /// A connection of unknown address counts only toward the total.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<ConnectionGuard, Refusal> {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.total {
            return Err(Refusal::Total);
        }
        if let Some(ip) = ip {
            let n = c.by_ip.entry(ip).or_insert(0);
            if *n >= self.per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        c.total += 1;
        Ok(ConnectionGuard {
            limiter: self.inner.clone(),
            ip,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// Holds one admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionGuard {
    limiter: Arc<Mutex<Counts>>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut c = self.limiter.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = c.by_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn bucket_refills_up_to_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        for _ in 0..3 {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0));
        // A long pause refills only up to the burst.
        let t1 = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(t1));
        }
        assert!(!b.try_take(t1));
        assert!(b.try_take(t1 + Duration::from_millis(100)));
    }

    #[test]
    fn retry_hint_is_the_wait_for_one_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50.0, 2, t0);
        assert!(b.try_take(t0) && b.try_take(t0));
        assert_eq!(retry_after_ms(b.retry_after(t0)), 20);
        let t1 = t0 + Duration::from_millis(15);
        assert_eq!(retry_after_ms(b.retry_after(t1)), 5);
        assert_eq!(retry_after_ms(Duration::from_micros(1)), 1);
        assert_eq!(retry_after_ms(Duration::ZERO), 1);
        let mut dry = TokenBucket::new(0.0, 1, t0);
        assert!(dry.try_take(t0));
        assert_eq!(dry.retry_after(t0), NEVER_REFILLS);
    }

    #[test]
    fn room_creation_buckets_are_pruned_once_full() {
        let t0 = Instant::now();
        let l = RoomCreationLimiter::new(60);
        assert!(l.try_create(1, t0).is_ok());
        l.prune(t0);
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
        l.prune(t0 + Duration::from_secs(2));
        assert!(l.buckets.lock().unwrap().is_empty());
    }

    #[test]
    fn bucket_survives_odd_rates() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(f64::NAN, 0, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn limiter_counts_per_ip_and_total() {
        let l = ConnectionLimiter::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = l.admit(Some(a)).unwrap();
        let _g2 = l.admit(Some(a)).unwrap();
        assert_eq!(l.admit(Some(a)).unwrap_err(), Refusal::PerIp);
        let _g3 = l.admit(Some(b)).unwrap();
        assert_eq!(l.admit(Some(b)).unwrap_err(), Refusal::Total);
        drop(g1);
        assert_eq!(l.open(), 2);
        let _g4 = l.admit(Some(a)).unwrap();
    }
}
