//! Live metrics: real readings of the host (sysinfo) and of the server,
//! sampled only while someone subscribes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use heartline_protocol::{MetricsSample, ServerMessage};
use sysinfo::{Networks, System};

use crate::peer::{ConnId, Outbound, Peer};

/// Server-wide counters, updated by every connection.
#[derive(Debug, Default)]
pub struct Counters {
    /// Open WebSocket connections.
    pub connections: AtomicU64,
    /// Data frames received.
    pub frames_in: AtomicU64,
    /// Frames sent.
    pub frames_out: AtomicU64,
}

/// Reads of the server itself that the sampler needs.
pub trait ServerStats: Send + Sync + 'static {
    /// Rooms that exist now.
    fn rooms(&self) -> u64;
}

/// The subscribers and the sampler task that serves them.
#[derive(Debug)]
pub struct MetricsHub {
    inner: Mutex<Subscribers>,
    counters: Arc<Counters>,
    interval: Duration,
    /// `--metrics-load-rate`: samples a second sent to every subscriber
    /// between host readings, for load tests.
    load_rate: Option<u32>,
    started: Instant,
    samples_taken: AtomicU64,
}

#[derive(Debug, Default)]
struct Subscribers {
    subs: HashMap<ConnId, Subscriber>,
    /// Whether a sampler task is running. Read and written under the lock,
    /// so a subscriber arriving as the sampler quits always gets a new one.
    running: bool,
}

#[derive(Debug)]
struct Subscriber {
    peer: Peer,
    every: Duration,
    last_sent: Option<Instant>,
}

/// Longest interval a client may ask for.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl MetricsHub {
    /// A hub sampling every `interval` while anyone subscribes.
    pub fn new(counters: Arc<Counters>, interval: Duration) -> Self {
        MetricsHub {
            inner: Mutex::default(),
            counters,
            interval,
            load_rate: None,
            started: Instant::now(),
            samples_taken: AtomicU64::new(0),
        }
    }

    /// Load testing (`--metrics-load-rate`): every subscriber gets `rate`
    /// samples a second, whatever interval it asked for. The host is still
    /// read once an interval; the samples between are the latest reading,
    /// re-stamped, with the server's own counters read afresh. `None` (the
    /// default) keeps one sample an interval.
    pub fn with_load_rate(mut self, rate: Option<u32>) -> Self {
        self.load_rate = rate.filter(|r| *r > 0);
        self
    }

    fn subs(&self) -> MutexGuard<'_, Subscribers> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes a connection; `interval_ms` is clamped between the server's
    /// interval and a minute. Starts the sampler if it is not running.
    pub fn subscribe(
        self: &Arc<Self>,
        peer: Peer,
        interval_ms: Option<u64>,
        stats: Arc<dyn ServerStats>,
    ) {
        let every = interval_ms
            .map(Duration::from_millis)
            .unwrap_or(self.interval)
            .clamp(self.interval, MAX_INTERVAL.max(self.interval));
        let mut s = self.subs();
        s.subs.insert(
            peer.id,
            Subscriber {
                peer,
                every,
                last_sent: None,
            },
        );
        if !s.running {
            s.running = true;
            tokio::spawn(self.clone().sampler(stats));
        }
    }

    /// Unsubscribes a connection. Returns whether it was subscribed.
    pub fn unsubscribe(&self, conn: ConnId) -> bool {
        self.subs().subs.remove(&conn).is_some()
    }

    /// Connections subscribed now (`metrics_subscribers` in `/healthz`).
    pub fn subscriber_count(&self) -> usize {
        self.subs().subs.len()
    }

    /// Whether the sampler is running.
    pub fn is_sampling(&self) -> bool {
        self.subs().running
    }

    /// Samples taken since start (for tests and /healthz).
    pub fn samples_taken(&self) -> u64 {
        self.samples_taken.load(Ordering::Relaxed)
    }

    /// Server uptime.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    async fn sampler(self: Arc<Self>, stats: Arc<dyn ServerStats>) {
        tracing::debug!("metrics sampler started");
        let mut host = Some(Host::new());
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate
        let mut last_in = self.counters.frames_in.load(Ordering::Relaxed);
        let mut last_out = self.counters.frames_out.load(Ordering::Relaxed);
        let mut last_at = Instant::now();
        let mut latest: Option<MetricsSample> = None;
        let mut load = self.load_rate.map(LoadPacer::new);
        loop {
            match (load.as_mut(), latest.as_ref()) {
                (Some(pacer), Some(base)) => {
                    self.send_load(&mut ticker, pacer, base, (last_in, last_out, last_at))
                        .await;
                }
                _ => {
                    ticker.tick().await;
                }
            }
            {
                let mut s = self.subs();
                if s.subs.is_empty() {
                    s.running = false;
                    break;
                }
            }
            // sysinfo reads /proc: a blocking call, kept off the runtime.
            let Some(mut h) = host.take() else { break };
            let reading = match tokio::task::spawn_blocking(move || {
                let r = h.read();
                (h, r)
            })
            .await
            {
                Ok((h, r)) => {
                    host = Some(h);
                    r
                }
                Err(_) => {
                    self.subs().running = false;
                    break;
                }
            };
            let now = Instant::now();
            let secs = now.duration_since(last_at).as_secs_f64().max(1e-3);
            let frames_in = self.counters.frames_in.load(Ordering::Relaxed);
            let frames_out = self.counters.frames_out.load(Ordering::Relaxed);
            let sample = MetricsSample {
                at: crate::now_ms(),
                connections: self.counters.connections.load(Ordering::Relaxed),
                messages_in_per_sec: frames_in.saturating_sub(last_in) as f64 / secs,
                messages_out_per_sec: frames_out.saturating_sub(last_out) as f64 / secs,
                rooms: stats.rooms(),
                uptime_secs: self.started.elapsed().as_secs(),
                net_rx_per_sec: (reading.net_rx as f64 / secs) as u64,
                net_tx_per_sec: (reading.net_tx as f64 / secs) as u64,
                ..reading.sample
            };
            (last_in, last_out, last_at) = (frames_in, frames_out, now);
            self.samples_taken.fetch_add(1, Ordering::Relaxed);
            if load.is_some() {
                // The load loop sends it (and its copies) from the next tick on.
                latest = Some(sample);
                continue;
            }
            let frame = Utf8Bytes::from(ServerMessage::MetricsSample(sample).to_json());
            let mut s = self.subs();
            // Due a little early rather than a whole tick late.
            let slack = self.interval / 2;
            for sub in s.subs.values_mut() {
                let due = sub
                    .last_sent
                    .is_none_or(|t| now.duration_since(t) + slack >= sub.every);
                if due {
                    sub.last_sent = Some(now);
                    sub.peer.push(Outbound::Text(frame.clone()));
                }
            }
        }
        tracing::debug!("metrics sampler stopped");
    }

    /// Until `ticker`'s next tick: every [`LOAD_TICK`], the samples `pacer`
    /// says are due, each `base` re-stamped with the server's counters over
    /// the time since `since` (the last host reading), to every subscriber.
    /// Returns early once nobody subscribes.
    async fn send_load(
        &self,
        ticker: &mut tokio::time::Interval,
        pacer: &mut LoadPacer,
        base: &MetricsSample,
        since: (u64, u64, Instant),
    ) {
        let (last_in, last_out, last_at) = since;
        let mut pace = tokio::time::interval(LOAD_TICK);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => return,
                _ = pace.tick() => {}
            }
            let now = Instant::now();
            let due = pacer.due(now);
            if due == 0 {
                continue;
            }
            let secs = now.duration_since(last_at).as_secs_f64().max(1e-3);
            let frames_in = self.counters.frames_in.load(Ordering::Relaxed);
            let frames_out = self.counters.frames_out.load(Ordering::Relaxed);
            let sample = MetricsSample {
                at: crate::now_ms(),
                connections: self.counters.connections.load(Ordering::Relaxed),
                messages_in_per_sec: frames_in.saturating_sub(last_in) as f64 / secs,
                messages_out_per_sec: frames_out.saturating_sub(last_out) as f64 / secs,
                uptime_secs: self.started.elapsed().as_secs(),
                ..base.clone()
            };
            let frame = Utf8Bytes::from(ServerMessage::MetricsSample(sample).to_json());
            let s = self.subs();
            if s.subs.is_empty() {
                return;
            }
            for sub in s.subs.values() {
                for _ in 0..due {
                    if !sub.peer.push(Outbound::Text(frame.clone())) {
                        break;
                    }
                }
            }
        }
    }
}

/// How often the load loop wakes up (tokio's timer granularity): at 5,000
/// samples a second, five frames go out per wake-up.
const LOAD_TICK: Duration = Duration::from_millis(1);

/// Paces `--metrics-load-rate`: how many samples are due at each wake-up,
/// so that `rate` go out each second. A backlog of more than a tenth of a
/// second (a stalled runtime) is dropped, not burst.
#[derive(Debug)]
struct LoadPacer {
    rate: u32,
    started: Option<Instant>,
    sent: u64,
}

impl LoadPacer {
    fn new(rate: u32) -> Self {
        LoadPacer {
            rate,
            started: None,
            sent: 0,
        }
    }

    /// Samples due at `now`, counted as sent.
    fn due(&mut self, now: Instant) -> u64 {
        let started = *self.started.get_or_insert(now);
        let target = (now.duration_since(started).as_secs_f64() * f64::from(self.rate)) as u64;
        // At most a hundred milliseconds' worth at once: a stalled runtime
        // skips samples rather than bursting them.
        let most = u64::from(self.rate / 10).max(1);
        let due = target.saturating_sub(self.sent);
        if due > most {
            self.sent = target;
            return most;
        }
        self.sent += due;
        due
    }
}

/// The host's readers, kept between samples (CPU use and network rates are
/// differences between two refreshes).
struct Host {
    system: System,
    networks: Networks,
}

struct Reading {
    sample: MetricsSample,
    net_rx: u64,
    net_tx: u64,
}

impl Host {
    fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        system.refresh_memory();
        Host {
            system,
            networks: Networks::new_with_refreshed_list(),
        }
    }

    fn read(&mut self) -> Reading {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.networks.refresh(true);
        let load = System::load_average();
        let (net_rx, net_tx) = self.networks.values().fold((0u64, 0u64), |(rx, tx), n| {
            (
                rx.saturating_add(n.received()),
                tx.saturating_add(n.transmitted()),
            )
        });
        Reading {
            sample: MetricsSample {
                cpu_total: self.system.global_cpu_usage(),
                cpu_per_core: self.system.cpus().iter().map(|c| c.cpu_usage()).collect(),
                mem_used: self.system.used_memory(),
                mem_total: self.system.total_memory(),
                load: [load.one, load.five, load.fifteen],
                ..MetricsSample::default()
            },
            net_rx,
            net_tx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_reads_real_values() {
        let mut h = Host::new();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let r = h.read();
        assert!(!r.sample.cpu_per_core.is_empty());
        assert!(r.sample.mem_total > 0);
        assert!(r.sample.mem_used > 0);
        assert!(r.sample.cpu_total >= 0.0);
    }

    #[test]
    fn load_pacer_sends_the_rate_and_skips_a_backlog() {
        let start = Instant::now();
        let mut pacer = LoadPacer::new(5_000);
        assert_eq!(pacer.due(start), 0);
        let mut sent = 0;
        for ms in 1..=1_000 {
            sent += pacer.due(start + Duration::from_millis(ms));
        }
        assert_eq!(sent, 5_000);
        // Ten seconds late: a hundred milliseconds' worth, then on pace again.
        assert_eq!(pacer.due(start + Duration::from_secs(11)), 500);
        assert_eq!(pacer.due(start + Duration::from_millis(11_001)), 5);
    }
}
