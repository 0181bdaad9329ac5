//! The publisher task: sends the queue in order, pipelined, and the
//! heartbeat; reconnects when a send fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::Client;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{BusEvent, Shared, link};

/// Most events sent in one pipeline (one round trip).
const BATCH: usize = 256;

/// Runs until `stop` turns true.
pub(super) async fn run(
    shared: Arc<Shared>,
    client: Client,
    first: MultiplexedConnection,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut conn = Some(first);
    let mut beat = tokio::time::interval(config.heartbeat);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                shared.publisher_up.store(false, Ordering::Relaxed);
                let reconnected = link::retry(
                    "publisher",
                    config.reconnect_max,
                    config.node,
                    &mut stop,
                    || link::connect_publisher(&client, &shared.url, config.link_timeout),
                )
                .await;
                let Some(c) = reconnected else { return };
                shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                shared.publisher_up.store(true, Ordering::Relaxed);
                tracing::info!(url = %shared.url, "bus publisher reconnected");
                c
            }
        };
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            // Only while connected: heartbeats queued during an outage
            // would say nothing by the time they are sent.
            _ = beat.tick() => {
                shared.enqueue(shared.encode(&BusEvent::Alive));
                conn = Some(c);
                continue;
            }
            batch = next_batch(&shared) => batch,
        };
        match send(&shared, &mut c, &batch).await {
            Ok(()) => {
                let n = batch.len() as u64;
                shared.counters.published.fetch_add(n, Ordering::Relaxed);
                shared.in_flight.store(0, Ordering::Release);
                conn = Some(c);
            }
            Err(why) => {
                tracing::warn!(url = %shared.url, error = %why, "bus publish failed; reconnecting");
                requeue(&shared, batch);
            }
        }
    }
}

/// Waits for queued events and takes up to [`BATCH`] of them, marking them
/// in flight (under the queue's lock, so [`super::Bus::close`] never sees
/// them in neither place). Cancel-safe: it takes only when it returns.
async fn next_batch(shared: &Shared) -> Vec<String> {
    loop {
        {
            let mut queue = shared.queue();
            if !queue.is_empty() {
                let n = queue.len().min(BATCH);
                shared.in_flight.store(n as u64, Ordering::Release);
                return queue.drain(..n).collect();
            }
        }
        shared.wake.notified().await;
    }
}

/// Publishes `batch` in one pipeline, in order.
async fn send(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    batch: &[String],
) -> Result<(), String> {
    let mut pipe = redis::pipe();
    for payload in batch {
        pipe.cmd("PUBLISH")
            .arg(&shared.channel)
            .arg(payload.as_str())
            .ignore();
    }
    let timeout = shared.config.link_timeout;
    match tokio::time::timeout(timeout, pipe.query_async::<()>(conn)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Puts a batch that failed back in front of the queue, to be sent again
/// after the reconnect (Redis may or may not have published it: receivers
/// tolerate repeats). Past the capacity the oldest go, as usual.
fn requeue(shared: &Shared, batch: Vec<String>) {
    let mut queue = shared.queue();
    for payload in batch.into_iter().rev() {
        queue.push_front(payload);
    }
    shared.trim(&mut queue);
    shared.in_flight.store(0, Ordering::Release);
}
