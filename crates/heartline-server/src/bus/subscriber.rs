//! The subscriber task: reads the channel, filters this node's own events,
//! hands the others to the consumer without ever waiting for it, pings to
//! notice a dead link, and resubscribes forever.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::Client;
use redis::aio::{PubSub, PubSubSink};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::{BusNotice, Envelope, Shared, link};

/// At most one warning about bad payloads per this period.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true or the consumer drops its receiver.
pub(super) async fn run(
    shared: Arc<Shared>,
    client: Client,
    first: PubSub,
    tx: mpsc::Sender<BusNotice>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    // The select below waits on this clone; `out` sends on its own.
    let waiter = tx.clone();
    let mut out = Outbox {
        shared: &shared,
        tx,
        owed: Owed::default(),
        last_warn: None,
    };
    let mut pubsub = Some(first);
    loop {
        let ps = match pubsub.take() {
            Some(ps) => ps,
            None => {
                let resubscribed = link::retry(
                    "subscriber",
                    config.reconnect_max,
                    config.node.rotate_left(1),
                    &mut stop,
                    || link::subscribe(&client, &shared.url, &shared.channel, config.link_timeout),
                )
                .await;
                let Some(ps) = resubscribed else { return };
                shared.counters.resubscribes.fetch_add(1, Ordering::Relaxed);
                shared.subscribed.store(true, Ordering::Relaxed);
                tracing::info!(url = %shared.url, "bus resubscribed");
                out.owed.resubscribed = true;
                out.flush_owed();
                ps
            }
        };
        let (mut sink, mut stream) = ps.split();
        let mut ping = tokio::time::interval(config.heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is now: the link just answered
        let why = loop {
            // Handlers run while the other branches' futures live: the one
            // that awaits (the ping) runs after the select.
            let ping_now = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = waiter.closed() => return,
                // A "you missed things" notice waits for room.
                permit = waiter.reserve(), if out.owed.is_some() => {
                    if let Ok(permit) = permit {
                        permit.send(out.owed.take());
                    }
                    false
                }
                msg = stream.next() => match msg {
                    Some(msg) => {
                        out.handle(msg.get_payload_bytes());
                        false
                    }
                    None => break "the link closed".to_string(),
                },
                _ = ping.tick() => true,
            };
            if ping_now && let Err(why) = ping_link(&mut sink, config.link_timeout).await {
                break why;
            }
        };
        shared.subscribed.store(false, Ordering::Relaxed);
        tracing::warn!(url = %shared.url, reason = %why, "bus subscription lost; resubscribing");
    }
}

/// Pings on the subscription's own connection: a link that stopped
/// answering (Redis stalled, a half-open TCP connection) fails within
/// `timeout` even when nobody publishes.
async fn ping_link(sink: &mut PubSubSink, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("ping failed: {e}")),
        Err(_) => Err(format!("no pong within {timeout:?}")),
    }
}

/// A notice the consumer is owed: it comes before any later event.
#[derive(Debug, Default)]
struct Owed {
    resubscribed: bool,
    missed: u64,
}

impl Owed {
    fn is_some(&self) -> bool {
        self.resubscribed || self.missed > 0
    }

    /// The notice (a resubscription already means "re-sync").
    fn notice(&self) -> BusNotice {
        if self.resubscribed {
            BusNotice::Resubscribed
        } else {
            BusNotice::Lagged {
                missed: self.missed,
            }
        }
    }

    fn take(&mut self) -> BusNotice {
        let notice = self.notice();
        *self = Owed::default();
        notice
    }
}

/// The consumer's side of the reader.
struct Outbox<'a> {
    shared: &'a Shared,
    tx: mpsc::Sender<BusNotice>,
    owed: Owed,
    last_warn: Option<Instant>,
}

impl Outbox<'_> {
    /// One payload from Redis: parsed, filtered, delivered or counted.
    fn handle(&mut self, payload: &[u8]) {
        let counters = &self.shared.counters;
        let max = self.shared.config.max_payload;
        if payload.len() > max {
            self.malformed(format_args!(
                "{} bytes, over the {max} byte cap",
                payload.len()
            ));
            return;
        }
        let env = match Envelope::from_json(payload) {
            Ok(env) => env,
            Err(e) => {
                self.malformed(format_args!("{e}"));
                return;
            }
        };
        if env.node == self.shared.config.node {
            counters.own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counters.received.fetch_add(1, Ordering::Relaxed);
        self.deliver(BusNotice::Event {
            node: env.node,
            event: env.event,
        });
    }

    /// Hands `notice` to the consumer if there is room, after any owed
    /// notice; otherwise drops it and owes a [`BusNotice::Lagged`].
    fn deliver(&mut self, notice: BusNotice) {
        if self.owed.is_some() && !self.flush_owed() {
            self.miss();
            return;
        }
        match self.tx.try_send(notice) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => self.miss(),
        }
    }

    fn miss(&mut self) {
        self.owed.missed += 1;
        self.shared.counters.missed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the owed notice if there is room; returns whether none is owed
    /// any more.
    fn flush_owed(&mut self) -> bool {
        match self.tx.try_send(self.owed.notice()) {
            Ok(()) => {
                self.owed = Owed::default();
                true
            }
            Err(_) => false,
        }
    }

    fn malformed(&mut self, why: std::fmt::Arguments<'_>) {
        let total = self
            .shared
            .counters
            .malformed
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let now = Instant::now();
        if self
            .last_warn
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            self.last_warn = Some(now);
            tracing::warn!(channel = %self.shared.channel, total, "bus payload ignored: {why}");
        }
    }
}
