use gloo_timers::callback::Timeout;
use yew::prelude::*;
use yew_hooks::{use_interval, use_update};

use crate::core::{ConnectionStatus, Transport};
use crate::yew::hooks::use_socket;

/// Props of [`ConnectionBanner`].
///
/// ```
/// use heartline::yew::ConnectionBannerProps;
/// let props = yew::props!(ConnectionBannerProps {});
/// assert_eq!(props.connected_for_ms, 2_500);
/// ```
#[derive(Properties, PartialEq, Debug)]
pub struct ConnectionBannerProps {
    /// How long "Connected" stays visible after the link comes up, in ms.
    #[prop_or(2_500)]
    pub connected_for_ms: u32,
}

/// A short machine-readable name of a status, for CSS and tests.
fn status_key(status: &ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::Idle => "idle",
        ConnectionStatus::Connecting { .. } => "connecting",
        ConnectionStatus::Open {
            degraded: false, ..
        } => "open",
        ConnectionStatus::Open { degraded: true, .. } => "degraded",
        ConnectionStatus::Reconnecting { .. } => "reconnecting",
        ConnectionStatus::Offline => "offline",
        ConnectionStatus::Closed => "closed",
        ConnectionStatus::Failed(_) => "failed",
    }
}

/// The connection's state for people: connecting, connected (briefly, then
/// it hides), reconnecting with a live countdown and the attempt number,
/// offline, failed with the reason in words; a "Retry now" button while
/// waiting or stopped; and how many messages wait to be sent. It is a
/// `role="status"` live region, so screen readers announce changes (the
/// ticking countdown itself is hidden from them to avoid chatter).
///
/// ```no_run
/// use heartline::yew::{ConnectionBanner, SocketProvider};
/// use yew::prelude::*;
///
/// #[function_component(App)]
/// fn app() -> Html {
///     html! {
///         <SocketProvider url="/ws">
///             <ConnectionBanner connected_for_ms={2_000} />
///         </SocketProvider>
///     }
/// }
/// ```
#[function_component(ConnectionBanner)]
pub fn connection_banner(props: &ConnectionBannerProps) -> Html {
    let socket = use_socket();
    let status = socket.status();
    let key = status_key(&status);

    // Re-render four times a second while a countdown runs.
    let update = use_update();
    let counting_down = matches!(status, ConnectionStatus::Reconnecting { .. });
    use_interval(move || update(), if counting_down { 250 } else { 0 });

    // "Connected" shows for a moment after each (re)connect, then hides.
    let just_connected = use_state(|| false);
    {
        let just_connected = just_connected.clone();
        let show_for = props.connected_for_ms;
        use_effect_with(key, move |key| {
            let timeout = (*key == "open").then(|| {
                just_connected.set(true);
                let just_connected = just_connected.clone();
                Timeout::new(show_for, move || just_connected.set(false))
            });
            move || drop(timeout)
        });
    }

    let stats = socket.stats();
    let waiting = stats.queued + stats.in_flight;
    let now = js_sys::Date::now().max(0.0) as u64;
    let (message, countdown) = match &status {
        ConnectionStatus::Reconnecting { attempt, at } => {
            let seconds = at.saturating_sub(now).div_ceil(1_000);
            (
                format!("Connection lost. Reconnecting (attempt {attempt})"),
                Some(format!(" in {seconds} s")),
            )
        }
        ConnectionStatus::Offline => (
            "You are offline. Reconnecting when the network is back".to_owned(),
            None,
        ),
        ConnectionStatus::Failed(reason) => (format!("Connection failed: {reason}"), None),
        other => (other.description(now), None),
    };
    let can_retry = matches!(
        status,
        ConnectionStatus::Reconnecting { .. }
            | ConnectionStatus::Failed(_)
            | ConnectionStatus::Closed
    );
    // On the long-poll fallback the banner stays up: the link works, but
    // through a network that refuses WebSocket, and the user should know.
    let transport = socket.transport();
    let hidden =
        key == "open" && !*just_connected && waiting == 0 && transport == Transport::WebSocket;
    let onclick = {
        let socket = socket.clone();
        Callback::from(move |_: MouseEvent| socket.retry_now())
    };
    // With a shared connection: which tab this is and which one leads.
    let share = socket.share();
    let share_role = share
        .as_ref()
        .map(|info| if info.leading() { "leader" } else { "follower" });

    html! {
        <div
            class={classes!("hl-banner", format!("hl-banner--{key}"))}
            role="status"
            aria-live="polite"
            aria-atomic="true"
            data-status={key}
            data-transport={transport.as_str()}
            data-waiting={waiting.to_string()}
            data-share={share_role}
            data-tab={share.as_ref().map(|info| info.tab.clone())}
            data-leader={share.as_ref().and_then(|info| info.leader.clone())}
            hidden={hidden}
        >
            <span class="hl-banner__message">{ message }</span>
            if let Some(countdown) = countdown {
                <span class="hl-banner__countdown" aria-hidden="true">{ countdown }</span>
            }
            if waiting > 0 {
                <span class="hl-banner__waiting">
                    { if waiting == 1 {
                        "1 message waiting to be sent".to_owned()
                    } else {
                        format!("{waiting} messages waiting to be sent")
                    } }
                </span>
            }
            if can_retry {
                <button type="button" class="hl-banner__retry" {onclick}>{ "Retry now" }</button>
            }
        </div>
    }
}
