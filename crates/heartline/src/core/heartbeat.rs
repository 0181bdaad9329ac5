//! Liveness state of the open link: last frame, the outstanding ping, and
//! round-trip times.

use std::collections::VecDeque;

use serde_json::Value;

use super::{HeartbeatStyle, Millis};

/// A talking link is pinged this many intervals after the last ping, only
/// to measure the round-trip time.
pub(crate) const RTT_REFRESH_INTERVALS: Millis = 3;

/// Round-trip samples kept for a sparkline.
pub(crate) const RTT_HISTORY: usize = 60;

/// A ping waiting for its reply (or for any frame, which proves life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ping {
    pub(crate) sent_at: Millis,
    pub(crate) deadline: Millis,
    /// A late timer already earned this ping one extension; the next
    /// verdict is final.
    pub(crate) extended: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Heartbeat {
    /// When the last frame of any kind arrived (or the link opened).
    pub(crate) last_inbound: Millis,
    pub(crate) ping: Option<Ping>,
    /// When the last ping left (or the link opened).
    pub(crate) last_ping_at: Millis,
    pub(crate) last_rtt: Option<Millis>,
    /// EWMA in milliseconds, kept fractional so small samples still move it.
    pub(crate) smoothed_rtt: Option<f64>,
    /// The last [`RTT_HISTORY`] samples, oldest first, ms.
    pub(crate) rtt_history: VecDeque<f64>,
    /// Pings in a row that got no pong in time while the link still talked.
    pub(crate) missed_in_row: u32,
    /// Links closed as silent in a row, with no pong since.
    pub(crate) losses_in_row: u32,
}

impl Heartbeat {
    /// A new link: silence is measured from its opening.
    pub(crate) fn on_open(&mut self, now: Millis) {
        self.last_inbound = now;
        self.last_ping_at = now;
        self.ping = None;
        self.missed_in_row = 0;
    }

    /// When the next ping is due: after `interval` of silence (liveness), or
    /// on a link that keeps talking, every [`RTT_REFRESH_INTERVALS`]
    /// intervals to keep the round-trip time fresh (every interval while a
    /// pong is missing, so a degraded flag can clear).
    pub(crate) fn next_ping_due(&self, interval: Millis) -> Millis {
        let silence_due = self.last_inbound.saturating_add(interval);
        let refresh_every = if self.missed_in_row > 0 {
            interval
        } else {
            interval.saturating_mul(RTT_REFRESH_INTERVALS)
        };
        silence_due.min(self.last_ping_at.saturating_add(refresh_every))
    }

    pub(crate) fn record_rtt(&mut self, rtt: Millis) {
        self.last_rtt = Some(rtt);
        let sample = rtt as f64;
        if self.rtt_history.len() == RTT_HISTORY {
            self.rtt_history.pop_front();
        }
        self.rtt_history.push_back(sample);
        self.smoothed_rtt = Some(match self.smoothed_rtt {
            None => sample,
            Some(s) => s + (sample - s) / 8.0,
        });
        self.ping = None;
        self.missed_in_row = 0;
        self.losses_in_row = 0;
    }

    pub(crate) fn smoothed_rtt_ms(&self) -> Option<Millis> {
        self.smoothed_rtt.map(|s| s.round().max(0.0) as Millis)
    }
}

/// The ping frame of `style` at time `now`, or `None` when disabled.
pub(crate) fn ping_frame(style: &HeartbeatStyle, now: Millis) -> Option<String> {
    match style {
        HeartbeatStyle::Disabled => None,
        HeartbeatStyle::Json => Some(format!(r#"{{"socketType":"ping","t":{now}}}"#)),
        HeartbeatStyle::Text { ping, .. } => Some(ping.clone()),
    }
}

/// True when a JSON pong answers `ping`: its `t` echoes the ping's send
/// time exactly. Compared as a float, since a server may read `t` as one
/// and write it back as `1234.0`; exact below 2^53 ms.
pub(crate) fn pong_matches(value: &Value, ping: Option<Ping>) -> bool {
    let Some(ping) = ping else {
        return false;
    };
    value
        .get("t")
        .and_then(Value::as_f64)
        .is_some_and(|t| t == ping.sent_at as f64)
}
