use yew::prelude::*;
use yew_hooks::{use_interval, use_update};

use crate::core::{ConnectionStatus, Millis};
use crate::yew::hooks::use_socket;

/// Liveness of the nearest provider's link, refreshed every second.
///
/// ```
/// use heartline::yew::HeartbeatInfo;
/// let info = HeartbeatInfo::default();
/// assert!(!info.alive);
/// assert_eq!(info.last_rtt, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatInfo {
    /// The link is open.
    pub alive: bool,
    /// Open but slow: round-trip time or missed pongs over the thresholds.
    pub degraded: bool,
    /// Round-trip time of the last pong, ms.
    pub last_rtt: Option<Millis>,
    /// Smoothed round-trip time, ms.
    pub smoothed_rtt: Option<Millis>,
    /// Pings that got no pong in time, since the provider mounted.
    pub missed_pongs: u64,
}

/// Round-trip time and liveness of the link, for a latency badge.
///
/// ```no_run
/// use heartline::yew::use_heartbeat;
/// use yew::prelude::*;
///
/// #[function_component(Latency)]
/// fn latency() -> Html {
///     let beat = use_heartbeat();
///     html! { <span>{ beat.last_rtt.map(|ms| format!("{ms} ms")).unwrap_or_default() }</span> }
/// }
/// ```
#[hook]
pub fn use_heartbeat() -> HeartbeatInfo {
    let socket = use_socket();
    // Pongs do not re-render the provider; poll the live stats instead.
    let update = use_update();
    use_interval(move || update(), 1_000);
    let stats = socket.stats();
    let (alive, degraded) = match socket.status() {
        ConnectionStatus::Open { degraded, .. } => (true, degraded),
        _ => (false, false),
    };
    HeartbeatInfo {
        alive,
        degraded,
        last_rtt: stats.last_rtt,
        smoothed_rtt: stats.smoothed_rtt,
        missed_pongs: stats.missed_pongs,
    }
}
