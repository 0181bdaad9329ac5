//! The link at a glance: state, round-trip time and traffic counters.

use heartline::yew::{use_heartbeat, use_socket};
use yew::prelude::*;

use crate::components::sparkline::Sparkline;
use crate::format::bytes;

/// Who holds the connection shared by this browser's tabs, for people.
fn share_line(share: &heartline::yew::ShareInfo) -> String {
    let how = if share.locks {
        ""
    } else {
        " (elected without Web Locks)"
    };
    match (&share.leader, share.leading()) {
        (_, true) => format!(
            "This tab ({}) holds the connection for {} {}{how}",
            share.tab,
            share.tabs,
            if share.tabs == 1 { "tab" } else { "tabs" }
        ),
        (Some(leader), false) => format!(
            "Tab {leader} holds the connection; this tab ({}) goes through it{how}",
            share.tab
        ),
        (None, false) => format!("Looking for the tab that holds the connection{how}"),
    }
}

/// Round-trip samples the sparkline spans.
const RTT_WINDOW: usize = 60;

/// Shows the connection's state, the server in use (and which of the list,
/// when there are several), its round-trip time (now and as a trend)
/// and the socket layer's counters (refreshed every second by
/// `use_heartbeat`).
#[function_component(ConnectionPanel)]
pub fn connection_panel() -> Html {
    let socket = use_socket();
    let beat = use_heartbeat();
    let stats = socket.stats();
    let status = socket.status();
    let rtt = beat
        .last_rtt
        .map(|ms| format!("{ms} ms"))
        .unwrap_or_else(|| "–".to_owned());
    let history = socket.rtt_history();
    // Which of the deployment's servers is in use (it changes on a failover).
    let endpoints = socket.endpoints();
    html! {
        <section class="panel" aria-labelledby="connection-heading">
            <h2 id="connection-heading">{ "Connection" }</h2>
            <dl class="panel__facts">
                <dt>{ "State" }</dt>
                <dd class="panel__state" data-open={status.is_open().to_string()}>{ status.to_string() }</dd>
                <dt>{ "Server" }</dt>
                <dd class="panel__server" data-endpoint={endpoints.index().to_string()}>
                    <code>{ socket.url() }</code>
                    if endpoints.len() > 1 {
                        <span class="panel__server-of" title={endpoints.to_string()}>
                            { format!(" (server {} of {})", endpoints.index() + 1, endpoints.len()) }
                        </span>
                    }
                </dd>
                <dt>{ "Transport" }</dt>
                <dd class="panel__transport" data-testid="transport" data-transport={socket.transport().as_str()}>
                    { socket.transport().to_string() }
                    if stats.fallbacks > 0 {
                        <span class="panel__transport-moves">
                            { format!(" (fallbacks: {}, back to WebSocket: {})", stats.fallbacks, stats.upgrades) }
                        </span>
                    }
                </dd>
                if let Some(share) = socket.share() {
                    <dt>{ "Tabs" }</dt>
                    <dd class="panel__share" data-testid="share"
                        data-role={if share.leading() { "leader" } else { "follower" }}
                        data-tab={share.tab.clone()}
                        data-leader={share.leader.clone()}
                        data-tabs={share.tabs.to_string()}>
                        { share_line(&share) }
                    </dd>
                }
                <dt>{ "Round trip" }</dt>
                <dd class="panel__rtt">
                    <span>{ rtt }</span>
                    <Sparkline values={history} capacity={RTT_WINDOW} label="Round-trip time, recent pings" />
                </dd>
                <dt>{ "Reconnects" }</dt>
                <dd>{ stats.reconnects }</dd>
                if endpoints.len() > 1 {
                    <dt>{ "Server switches" }</dt>
                    <dd>{ stats.failovers }</dd>
                }
                <dt>{ "Waiting to send" }</dt>
                <dd>{ stats.queued + stats.in_flight }</dd>
                <dt>{ "Frames in / out" }</dt>
                <dd>{ format!("{} / {}", stats.frames_in, stats.frames_out) }</dd>
                <dt>{ "Bytes in / out" }</dt>
                <dd>{ format!("{} / {}", bytes(stats.bytes_in as f64), bytes(stats.bytes_out as f64)) }</dd>
                <dt>{ "Frames refused" }</dt>
                <dd>{ stats.invalid_frames }</dd>
            </dl>
        </section>
    }
}
