use heartline::core::{ConnectionStatus, Transport};
use heartline::yew::{use_heartbeat, use_socket};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::route::Route;

/// Props of [`AppHeader`].
#[derive(Properties, PartialEq, Debug)]
pub struct AppHeaderProps {
    /// Our display name.
    pub name: AttrValue,
    /// Asks to change it.
    pub on_change_name: Callback<()>,
}

/// The app name, the pages, the link's health (a dot and the round-trip
/// time) and who we are.
#[function_component(AppHeader)]
pub fn app_header(props: &AppHeaderProps) -> Html {
    let socket = use_socket();
    let beat = use_heartbeat();
    let route = use_route::<Route>();
    let status = socket.status();
    let (dot, dot_label) = match status {
        ConnectionStatus::Open { degraded: true, .. } => ("degraded", "connected, slow"),
        ConnectionStatus::Open {
            transport: Transport::LongPoll,
            ..
        } => ("live", "live, long-polling"),
        ConnectionStatus::Open { .. } => ("live", "live"),
        ConnectionStatus::Offline => ("offline", "offline"),
        ConnectionStatus::Failed(_) | ConnectionStatus::Closed => ("down", "disconnected"),
        _ => ("connecting", "connecting"),
    };
    let rtt = beat
        .last_rtt
        .filter(|_| status.is_open())
        .map(|ms| format!("{ms} ms"));
    let on_chat = matches!(
        route,
        Some(Route::Chat { .. } | Route::Home | Route::ChatHome)
    );
    let link = |to: Route, label: &'static str, current: bool| {
        html! {
            <Link<Route> {to} classes={classes!("nav__link", current.then_some("nav__link--current"))}>
                <span aria-current={current.then_some("page")}>{ label }</span>
            </Link<Route>>
        }
    };
    let on_change_name = props.on_change_name.clone();
    html! {
        <header class="header">
            <Link<Route> to={Route::Home} classes="header__brand">
                <svg class="header__logo" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M2 13h4l2-5 3 10 3-8 2 3h6" />
                </svg>
                <span>{ "Heartline" }</span>
            </Link<Route>>
            <nav class="nav" aria-label="Pages">
                { link(Route::ChatHome, "Chat", on_chat) }
                { link(Route::Dashboard, "Dashboard", route == Some(Route::Dashboard)) }
                { link(Route::Connection, "Connection", route == Some(Route::Connection)) }
            </nav>
            <div class="header__status" title={status.to_string()}>
                <span class={classes!("dot", format!("dot--{dot}"))} role="img" aria-label={dot_label}></span>
                if let Some(rtt) = rtt {
                    <span class="header__rtt" aria-label="round-trip time">{ rtt }</span>
                }
            </div>
            <button class="header__who link-button" onclick={move |_| on_change_name.emit(())}
                title="Change your name">
                { &props.name }
            </button>
        </header>
    }
}
