//! Which kind of link carries the frames, and when the core falls back from
//! WebSocket to HTTP long-polling and back.

use std::fmt;

use super::{BackoffConfig, Jitter, Millis};

/// The kind of link a socket is: chosen by the core for each attempt
/// ([`Action::Open`](super::Action::Open)), shown in the status.
///
/// ```
/// use heartline::core::Transport;
/// assert_eq!(Transport::default(), Transport::WebSocket);
/// assert_eq!(Transport::LongPoll.to_string(), "long-polling");
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Transport {
    /// A WebSocket to the endpoint URL.
    #[default]
    WebSocket,
    /// HTTP long-polling against the endpoint's
    /// [poll base](super::poll::poll_base): the fallback where the upgrade
    /// is refused. The same frames, acks and resume; see [`super::poll`].
    LongPoll,
}

impl Transport {
    /// A short lowercase name, e.g. for a `data-` attribute or a log.
    ///
    /// ```
    /// assert_eq!(heartline::core::Transport::WebSocket.as_str(), "websocket");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::LongPoll => "long-polling",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::WebSocket => f.write_str("WebSocket"),
            Transport::LongPoll => f.write_str("long-polling"),
        }
    }
}

/// When to fall back to long-polling, and how to find the way back.
///
/// - After [`after_failures`](Self::after_failures) WebSocket attempts in a
///   row fail before opening (a proxy answering the upgrade with 403, a
///   middlebox resetting it), every other attempt uses long-polling, until
///   one works. Once a long-poll link has worked, a lost one is retried on
///   long-polling (up to 3 failed attempts in a row, then alternating
///   again), so a server restart does not cost a refused upgrade each
///   time. Without `WebSocket` at all
///   ([`Event::Unsupported`](super::Event::Unsupported)) every attempt
///   long-polls.
/// - While on long-polling, the core probes WebSocket in the background on
///   the [`probe`](Self::probe) schedule
///   ([`Action::Probe`](super::Action::Probe)). When a probe opens, the
///   poll session is closed and the next attempt is a WebSocket: the
///   outbox is re-sent and every stream resumes with `since`, so nothing
///   is lost or doubled.
///
/// ```
/// use heartline::core::FallbackConfig;
/// let fallback = FallbackConfig::default();
/// assert!(fallback.enabled);
/// assert_eq!(fallback.after_failures, 2);
/// assert_eq!(fallback.probe.base, 2_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackConfig {
    /// Off: WebSocket only (a server without the poll endpoints).
    pub enabled: bool,
    /// WebSocket attempts in a row that fail before opening, after which
    /// long-polling is tried.
    pub after_failures: u32,
    /// Delays between WebSocket probes while on long-polling (growing after
    /// each failed probe; reset when a probe succeeds).
    pub probe: BackoffConfig,
    /// How long a probe may take to open before it counts as failed.
    pub probe_timeout: Millis,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            enabled: true,
            after_failures: 2,
            probe: BackoffConfig {
                base: 2_000,
                factor: 2.0,
                cap: 30_000,
                jitter: Jitter::Equal,
            },
            probe_timeout: 5_000,
        }
    }
}
