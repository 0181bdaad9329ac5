//! Abuse limits: a per-connection token bucket and connection counts per IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

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
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
    use std::time::Duration;

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
