//! Every knob of the connection policy, as plain data (no closures), so a Yew
//! prop can hold it and compare it.

use super::{FallbackConfig, Millis};

/// The connection policy. All durations are milliseconds.
///
/// The defaults match the best peers: the first retry comes within 250 ms
/// (jittered, so clients dropped together do not return together), delays
/// double up to 10 s, and a page that is online keeps retrying at that cap
/// (`max_retries: None`); a dead link is declared within 15 s (a ping after
/// 10 s of silence, 4 s for its pong).
///
/// ```
/// use heartline::core::{Config, HeartbeatStyle};
/// let config = Config {
///     max_retries: Some(10), // give up after ten retries
///     ..Config::default()
/// };
/// assert_eq!(Config::default().max_retries, None);
/// assert_eq!(config.backoff.base, 250);
/// let dead_link_after = config.heartbeat.interval + config.heartbeat.timeout;
/// assert!(dead_link_after <= 15_000);
/// assert_eq!(config.heartbeat.style, HeartbeatStyle::Json);
/// assert_eq!(config.final_close_codes, vec![4001, 4003]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Delay between reconnect attempts.
    pub backoff: BackoffConfig,
    /// Retries after the first failed attempt before giving up with
    /// `connect failed`; `None` retries forever.
    pub max_retries: Option<u32>,
    /// An attempt that has not opened after this long is abandoned and counts
    /// as failed.
    pub connect_timeout: Millis,
    /// A connection must stay open this long before the attempt counter and
    /// the backoff reset, so a server that accepts and drops at once does not
    /// get hammered.
    pub min_uptime: Millis,
    /// Liveness checks of an open link.
    pub heartbeat: HeartbeatConfig,
    /// Most reliable messages written on the live socket and not yet acked
    /// (the send window); an ack lets the next one go. Keep it well under
    /// the server's burst (see the [wire contract](super::contract)); 0 is
    /// treated as 1.
    pub send_window: usize,
    /// Most reliable messages kept (queued plus in flight); one more is
    /// refused with [`SendError::QueueFull`](super::SendError::QueueFull).
    pub outbox_limit: usize,
    /// Time-to-live of a reliable message unless its
    /// [`SendOptions`](super::SendOptions) say otherwise; `None` keeps it
    /// until acked.
    pub default_ttl: Option<Millis>,
    /// Largest frame accepted in either direction, in bytes.
    pub max_frame_bytes: usize,
    /// Bytes buffered by the browser socket (`bufferedAmount`) past which
    /// reliable messages wait and volatile ones are refused.
    pub high_water_mark: u64,
    /// Close codes after which the core does not reconnect. 4001 (auth
    /// refused) and 4003 (protocol error) by default.
    pub final_close_codes: Vec<u16>,
    /// When an open link is flagged as degraded.
    pub degraded: DegradedThresholds,
    /// How long messages behind a gap in a stream wait for the missing ones
    /// before they are delivered anyway (the gap is reported).
    pub stream_gap_timeout: Millis,
    /// Most out-of-order messages held per stream; past it the gap is skipped.
    pub stream_buffer_limit: usize,
    /// Most entries kept in the connection timeline
    /// ([`Connection::timeline`](super::Connection::timeline)); the oldest
    /// go first. 200 by default.
    pub timeline_limit: usize,
    /// Falling back to HTTP long-polling where WebSocket is refused, and
    /// probing the way back ([`FallbackConfig`]). On by default.
    pub fallback: FallbackConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: BackoffConfig::default(),
            max_retries: None,
            connect_timeout: 10_000,
            min_uptime: 5_000,
            heartbeat: HeartbeatConfig::default(),
            send_window: 32,
            outbox_limit: 500,
            default_ttl: None,
            max_frame_bytes: 64 * 1024,
            high_water_mark: 1024 * 1024,
            final_close_codes: vec![super::CLOSE_AUTH_REFUSED, super::CLOSE_PROTOCOL_ERROR],
            degraded: DegradedThresholds::default(),
            stream_gap_timeout: 5_000,
            stream_buffer_limit: 1_000,
            timeline_limit: 200,
            fallback: FallbackConfig::default(),
        }
    }
}

/// Exponential backoff: retry `n` waits about `base * factor^(n-1)`, never
/// more than `cap`, randomised by `jitter`. Every delay lies in
/// `[base, cap]`, or `[base / 2, cap]` with [`Jitter::Equal`].
///
/// ```
/// use heartline::core::{BackoffConfig, Jitter};
/// let backoff = BackoffConfig { base: 500, factor: 2.0, cap: 8_000, jitter: Jitter::None };
/// assert!(backoff.factor > 1.0);
/// assert_eq!(BackoffConfig::default().cap, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// First (and smallest) delay.
    pub base: Millis,
    /// Growth per retry; values below 1 (or NaN) are treated as 1.
    pub factor: f64,
    /// Largest delay.
    pub cap: Millis,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: 250,
            factor: 2.0,
            cap: 10_000,
            jitter: Jitter::Equal,
        }
    }
}

/// Randomisation of reconnect delays, so many clients dropped at once do not
/// come back at once.
///
/// ```
/// use heartline::core::Jitter;
/// assert_eq!(Jitter::default(), Jitter::Equal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly `base * factor^(n-1)`, capped.
    None,
    /// Uniform in `[nominal / 2, nominal]` where nominal is
    /// `base * factor^(n-1)`, capped ("equal jitter"): the first retry comes
    /// within `base`, and delays still grow.
    #[default]
    Equal,
    /// Uniform in `[base, base * factor^(n-1)]`, capped ("full jitter" with a
    /// floor, so a retry never comes sooner than `base`).
    Full,
    /// Uniform in `[base, previous * 3]`, capped ("decorrelated jitter").
    Decorrelated,
}

/// Liveness checks of an open link.
///
/// ```
/// use heartline::core::{HeartbeatConfig, HeartbeatStyle};
/// let text = HeartbeatConfig {
///     style: HeartbeatStyle::Text { ping: "ping".into(), pong: "pong".into() },
///     ..HeartbeatConfig::default()
/// };
/// assert_eq!(text.interval, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Silence (no inbound frame) after which a ping is sent.
    pub interval: Millis,
    /// How long to wait after a ping for any frame before the link is
    /// declared dead (closed with 4000, then reconnected).
    pub timeout: Millis,
    /// The shorter wait of a probe sent on `online` or `visible`.
    pub probe_timeout: Millis,
    /// What a ping looks like and which reply answers it.
    pub style: HeartbeatStyle,
    /// Links lost to the heartbeat in a row (without any pong between)
    /// before giving up with `heartbeat lost`; `None` never gives up for it.
    pub max_losses: Option<u32>,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval: 10_000,
            timeout: 4_000,
            probe_timeout: 3_000,
            style: HeartbeatStyle::Json,
            max_losses: None,
        }
    }
}

/// The ping frame and the reply matcher.
///
/// ```
/// use heartline::core::HeartbeatStyle;
/// let plain = HeartbeatStyle::Text { ping: "ping".into(), pong: "pong".into() };
/// assert_ne!(plain, HeartbeatStyle::Json);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HeartbeatStyle {
    /// No pings: the link is trusted until the browser reports a close.
    Disabled,
    /// `{"socketType":"ping","t":<ms>}` answered by
    /// `{"socketType":"pong","t":<same>}`; RTT from the echoed `t`.
    #[default]
    Json,
    /// A text frame `ping` answered by the text frame `pong`.
    Text {
        /// The ping frame's text.
        ping: String,
        /// The reply's text.
        pong: String,
    },
}

/// When an open link is flagged as degraded (slow, but not torn down).
///
/// ```
/// use heartline::core::DegradedThresholds;
/// assert_eq!(DegradedThresholds::default().rtt, 2_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DegradedThresholds {
    /// Smoothed round-trip time at or above which the link is degraded.
    pub rtt: Millis,
    /// Pings in a row that got no pong in time (while other frames still
    /// arrived) at or above which the link is degraded.
    pub missed_pongs: u32,
}

impl Default for DegradedThresholds {
    fn default() -> Self {
        DegradedThresholds {
            rtt: 2_000,
            missed_pongs: 1,
        }
    }
}
