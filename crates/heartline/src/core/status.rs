//! What the connection is doing, in a form a banner can render.

use std::fmt;

use super::{Millis, Transport};

/// The connection's state as a UI shows it.
///
/// ```
/// use heartline::core::{ConnectionStatus, FailureReason};
/// let status = ConnectionStatus::Reconnecting { attempt: 2, at: 13_000 };
/// assert_eq!(status.description(10_000), "Reconnecting in 3 s (attempt 2)");
/// let failed = ConnectionStatus::Failed(FailureReason::AuthRefused { reason: String::new() });
/// assert_eq!(failed.description(0), "Failed: the server refused our credentials");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ConnectionStatus {
    /// Not started yet.
    #[default]
    Idle,
    /// A socket is being opened; `attempt` counts from 1 since the last
    /// healthy connection.
    Connecting {
        /// 1 for the first attempt, 2 for the first retry, …
        attempt: u32,
    },
    /// The link is up.
    Open {
        /// The link works but is slow (round-trip time or missed pongs over
        /// the thresholds).
        degraded: bool,
        /// What carries it: WebSocket, or the long-poll fallback.
        transport: Transport,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// The number of the attempt that will start at `at`.
        attempt: u32,
        /// When it starts (same clock as the events).
        at: Millis,
    },
    /// The browser says the network is gone; retries are paused until it
    /// comes back.
    Offline,
    /// The app closed the connection on purpose; no reconnect.
    Closed,
    /// The core gave up; `retry_now` (or `Start`) starts afresh.
    Failed(FailureReason),
}

impl ConnectionStatus {
    /// A sentence for a banner. `now` turns `Reconnecting { at }` into a
    /// countdown.
    ///
    /// ```
    /// use heartline::core::{ConnectionStatus, Transport};
    /// assert_eq!(ConnectionStatus::Connecting { attempt: 1 }.description(0), "Connecting…");
    /// assert_eq!(ConnectionStatus::Open { degraded: true, transport: Transport::WebSocket }.description(0), "Connected (slow link)");
    /// assert_eq!(ConnectionStatus::Open { degraded: false, transport: Transport::LongPoll }.description(0), "Connected (long-polling)");
    /// ```
    pub fn description(&self, now: Millis) -> String {
        match self {
            ConnectionStatus::Idle => "Not connected".to_owned(),
            ConnectionStatus::Connecting { attempt } if *attempt <= 1 => "Connecting…".to_owned(),
            ConnectionStatus::Connecting { attempt } => format!("Connecting (attempt {attempt})…"),
            ConnectionStatus::Open {
                degraded,
                transport,
            } => match (degraded, transport) {
                (false, Transport::WebSocket) => "Connected".to_owned(),
                (true, Transport::WebSocket) => "Connected (slow link)".to_owned(),
                (false, Transport::LongPoll) => "Connected (long-polling)".to_owned(),
                (true, Transport::LongPoll) => "Connected (long-polling, slow link)".to_owned(),
            },
            ConnectionStatus::Reconnecting { attempt, at } => {
                // Round up so the countdown never shows "in 0 s" while waiting.
                let seconds = at.saturating_sub(now).div_ceil(1_000);
                format!("Reconnecting in {seconds} s (attempt {attempt})")
            }
            ConnectionStatus::Offline => "Offline: waiting for the network".to_owned(),
            ConnectionStatus::Closed => "Disconnected".to_owned(),
            ConnectionStatus::Failed(reason) => format!("Failed: {reason}"),
        }
    }

    /// True when frames can be sent now.
    ///
    /// ```
    /// use heartline::core::{ConnectionStatus, Transport};
    /// assert!(ConnectionStatus::Open { degraded: false, transport: Transport::WebSocket }.is_open());
    /// assert!(!ConnectionStatus::Offline.is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        matches!(self, ConnectionStatus::Open { .. })
    }

    /// The seeds' failure code for a stopped connection, `None` while it
    /// still tries (or is up).
    ///
    /// ```
    /// use heartline::core::{ConnectionStatus, FailureCode, FailureReason};
    /// assert_eq!(ConnectionStatus::Closed.failure_code(), Some(FailureCode::Closed));
    /// let lost = ConnectionStatus::Failed(FailureReason::HeartbeatLost { times: 3 });
    /// assert_eq!(lost.failure_code(), Some(FailureCode::HeartbeatLost));
    /// assert_eq!(ConnectionStatus::Offline.failure_code(), None);
    /// ```
    pub fn failure_code(&self) -> Option<FailureCode> {
        match self {
            ConnectionStatus::Closed => Some(FailureCode::Closed),
            ConnectionStatus::Failed(reason) => Some(reason.code()),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionStatus {
    /// The description without a countdown.
    ///
    /// ```
    /// use heartline::core::ConnectionStatus;
    /// assert_eq!(ConnectionStatus::Closed.to_string(), "Disconnected");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionStatus::Reconnecting { attempt, .. } => {
                write!(f, "Reconnecting (attempt {attempt})")
            }
            other => f.write_str(&other.description(0)),
        }
    }
}

/// Why the core gave up.
///
/// ```
/// use heartline::core::FailureReason;
/// let reason = FailureReason::ConnectFailed { attempts: 11 };
/// assert_eq!(reason.to_string(), "could not connect after 11 attempts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FailureReason {
    /// The browser has no WebSocket (or refused to create one).
    Unsupported,
    /// Every attempt up to the retry limit failed.
    ConnectFailed {
        /// Attempts made.
        attempts: u32,
    },
    /// The server refused the greeting (close code 4001).
    AuthRefused {
        /// The close reason the server gave, if any.
        reason: String,
    },
    /// The link went silent this many times in a row.
    HeartbeatLost {
        /// Links lost to the heartbeat in a row.
        times: u32,
    },
    /// The server closed with 4003: we broke the protocol.
    ProtocolError {
        /// The close reason the server gave, if any.
        reason: String,
    },
    /// The server closed with another code listed in
    /// [`Config::final_close_codes`](super::Config::final_close_codes).
    ClosedByServer {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

impl FailureReason {
    /// The seeds' failure code this reason maps to.
    ///
    /// ```
    /// use heartline::core::{FailureCode, FailureReason};
    /// assert_eq!(FailureReason::Unsupported.code(), FailureCode::Unsupported);
    /// assert_eq!(
    ///     FailureReason::ProtocolError { reason: String::new() }.code(),
    ///     FailureCode::Closed
    /// );
    /// ```
    pub fn code(&self) -> FailureCode {
        match self {
            FailureReason::Unsupported => FailureCode::Unsupported,
            FailureReason::ConnectFailed { .. } => FailureCode::ConnectFailed,
            FailureReason::AuthRefused { .. } => FailureCode::AuthFailed,
            FailureReason::HeartbeatLost { .. } => FailureCode::HeartbeatLost,
            // The server ended the session for good: to the seeds that is "closed".
            FailureReason::ProtocolError { .. } | FailureReason::ClosedByServer { .. } => {
                FailureCode::Closed
            }
        }
    }
}

impl fmt::Display for FailureReason {
    /// A lower-case clause for "Failed: …".
    ///
    /// ```
    /// use heartline::core::FailureReason;
    /// assert_eq!(FailureReason::Unsupported.to_string(), "this browser cannot open WebSockets");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Unsupported => f.write_str("this browser cannot open WebSockets"),
            FailureReason::ConnectFailed { attempts } => {
                write!(f, "could not connect after {attempts} attempts")
            }
            FailureReason::AuthRefused { .. } => f.write_str("the server refused our credentials"),
            FailureReason::HeartbeatLost { times } => {
                write!(f, "the link went silent {times} times in a row")
            }
            FailureReason::ProtocolError { reason } if reason.is_empty() => {
                f.write_str("protocol error")
            }
            FailureReason::ProtocolError { reason } => write!(f, "protocol error ({reason})"),
            FailureReason::ClosedByServer { code, reason } if reason.is_empty() => {
                write!(f, "the server closed the connection (code {code})")
            }
            FailureReason::ClosedByServer { code, reason } => {
                write!(
                    f,
                    "the server closed the connection: {reason} (code {code})"
                )
            }
        }
    }
}

/// The failure codes of the seed apps, one per way a connection stops.
///
/// ```
/// use heartline::core::FailureCode;
/// assert_eq!(FailureCode::AuthFailed.as_str(), "auth_failed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// No WebSocket in this browser.
    Unsupported,
    /// The retry limit was reached.
    ConnectFailed,
    /// The server refused the credentials.
    AuthFailed,
    /// The link went silent repeatedly.
    HeartbeatLost,
    /// Closed: by the app, or for good by the server.
    Closed,
}

impl FailureCode {
    /// The code as a string: `unsupported`, `connect_failed`, `auth_failed`,
    /// `heartbeat_lost` or `closed`.
    ///
    /// ```
    /// use heartline::core::FailureCode;
    /// assert_eq!(FailureCode::HeartbeatLost.as_str(), "heartbeat_lost");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::Unsupported => "unsupported",
            FailureCode::ConnectFailed => "connect_failed",
            FailureCode::AuthFailed => "auth_failed",
            FailureCode::HeartbeatLost => "heartbeat_lost",
            FailureCode::Closed => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_rounds_up_and_never_goes_negative() {
        let status = ConnectionStatus::Reconnecting {
            attempt: 3,
            at: 10_500,
        };
        assert_eq!(
            status.description(10_000),
            "Reconnecting in 1 s (attempt 3)"
        );
        assert_eq!(
            status.description(20_000),
            "Reconnecting in 0 s (attempt 3)"
        );
    }
}
