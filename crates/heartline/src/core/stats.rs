//! Counters for the dashboard.

use super::Millis;

/// A snapshot of the connection's counters, from
/// `Connection::stats`.
///
/// ```
/// use heartline::core::Stats;
/// let stats = Stats { malformed: 2, duplicates: 1, ..Stats::default() };
/// assert_eq!(stats.dropped_frames(), 1); // invalid_frames is kept separately
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Frames received on the live socket.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Sockets opened (attempts), first one included.
    pub connect_attempts: u64,
    /// Successful opens after a lost connection.
    pub reconnects: u64,
    /// Frames dropped as invalid: malformed, without `socketType`, oversized
    /// or binary.
    pub invalid_frames: u64,
    /// Text frames that were not JSON.
    pub malformed: u64,
    /// JSON frames without a string `socketType`.
    pub missing_type: u64,
    /// Frames over `max_frame_bytes`.
    pub oversized: u64,
    /// Binary frames.
    pub binary_frames: u64,
    /// Messages of a type nobody handles (still delivered for `last`).
    pub unknown_types: u64,
    /// Stream messages dropped as already delivered.
    pub duplicates: u64,
    /// Stream gaps given up on.
    pub gaps_skipped: u64,
    /// Reliable messages acknowledged by the server.
    pub acked: u64,
    /// Reliable messages that failed (refused, expired, cancelled).
    pub failed: u64,
    /// Frames the server refused as `rate_limited` (their messages were
    /// queued again, not failed).
    pub rate_limited: u64,
    /// Pings that got no pong in time.
    pub missed_pongs: u64,
    /// Links closed because they went silent.
    pub heartbeat_losses: u64,
    /// Moves to another server URL after a failed attempt or a lost link
    /// (see [`Endpoints`](super::Endpoints)); stays 0 with one URL.
    pub failovers: u64,
    /// Times a link opened on long-polling after one on WebSocket (or as
    /// the first link): the fallback was taken.
    pub fallbacks: u64,
    /// Times a WebSocket opened again after long-polling.
    pub upgrades: u64,
    /// Round-trip time of the last pong.
    pub last_rtt: Option<Millis>,
    /// Smoothed round-trip time (EWMA, 1/8 weight to each new sample).
    pub smoothed_rtt: Option<Millis>,
    /// Reliable messages waiting to be written.
    pub queued: usize,
    /// Reliable messages written on the live socket, not yet acked.
    pub in_flight: usize,
}

impl Stats {
    /// Frames received but never delivered: invalid ones and duplicates.
    ///
    /// ```
    /// use heartline::core::Stats;
    /// let stats = Stats { invalid_frames: 3, duplicates: 2, ..Stats::default() };
    /// assert_eq!(stats.dropped_frames(), 5);
    /// ```
    pub fn dropped_frames(&self) -> u64 {
        self.invalid_frames + self.duplicates
    }
}
