//! Opening the two Redis links, and the backoff between attempts.

use std::future::Future;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::watch;

use super::BusError;

/// First wait after a failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(50);

/// `url` without the password (`redis://user:***@host`).
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Runs `step` within `after`, naming it in the error.
async fn within<T>(
    url: &str,
    step: &'static str,
    after: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(BusError::Unreachable {
            url: url.to_string(),
            step,
            source,
        }),
        Err(_) => Err(BusError::Timeout {
            url: url.to_string(),
            step,
            after,
        }),
    }
}

/// The publisher: a multiplexed connection whose every request has a
/// deadline.
pub(super) async fn connect_publisher(
    client: &Client,
    url: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, BusError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = within(
        url,
        "connecting the publisher",
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await?;
    // Connecting may succeed against a server still loading; PING proves it
    // answers.
    within(
        url,
        "pinging",
        timeout,
        redis::cmd("PING").query_async::<()>(&mut conn),
    )
    .await?;
    Ok(conn)
}

/// The subscriber: a RESP2 pub/sub connection subscribed to `channel`.
pub(super) async fn subscribe(
    client: &Client,
    url: &str,
    channel: &str,
    timeout: Duration,
) -> Result<PubSub, BusError> {
    let mut pubsub = within(
        url,
        "connecting the subscriber",
        timeout,
        client.get_async_pubsub(),
    )
    .await?;
    within(url, "subscribing", timeout, pubsub.subscribe(channel)).await?;
    Ok(pubsub)
}

/// Retries `attempt` with exponential backoff and jitter until it succeeds
/// or `stop` turns true (then `None`).
pub(super) async fn retry<T, F, Fut>(
    what: &'static str,
    max: Duration,
    seed: u64,
    stop: &mut watch::Receiver<bool>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut backoff = Backoff::new(max, seed);
    let mut failures = 0u64;
    loop {
        let wait = backoff.next_delay();
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return None,
            () = tokio::time::sleep(wait) => {}
        }
        let result = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return None,
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Some(value),
            Err(e) => {
                failures += 1;
                // Every attempt at first, then every tenth.
                if failures <= 3 || failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, failures, "bus {what}: reconnect failed");
                }
            }
        }
    }
}

/// Exponential backoff from [`BACKOFF_MIN`] to a cap, each delay drawn in
/// its upper half so nodes that lost Redis together do not come back in
/// lockstep.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    pub(super) fn new(max: Duration, seed: u64) -> Self {
        Backoff {
            next: BACKOFF_MIN.min(max),
            max,
            // xorshift must not start at 0.
            rng: (seed ^ crate::ids::new_epoch()) | 1,
        }
    }

    /// The next wait: in `[d/2, d]` for a `d` that doubles up to the cap.
    pub(super) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.rng % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:pw@host:6379/2"),
            "redis://:***@host:6379/2"
        );
        assert_eq!(redact("redis://u:pw@h"), "redis://u:***@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(max, 42);
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= BACKOFF_MIN / 2 && delays[0] <= BACKOFF_MIN);
        assert!(delays.iter().all(|d| *d <= max));
        assert!(delays[10..].iter().all(|d| *d >= max / 2));
        // Two nodes seeded differently do not wait alike.
        let mut other = Backoff::new(max, 43);
        let theirs: Vec<Duration> = (0..20).map(|_| other.next_delay()).collect();
        assert_ne!(delays, theirs);
    }
}
