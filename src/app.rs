//! The app shell: the name gate, one socket provider for the whole app, the
//! header with the connection's health, the banner, and the pages.

use heartline::yew::{ConnectionBanner, SocketProvider, resolve_against_page};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::components::app_header::AppHeader;
use crate::components::name_prompt::NamePrompt;
use crate::config::{share_options, socket_config, socket_urls};
use crate::hooks::use_display_name::use_display_name;
use crate::pages::chat::ChatPage;
use crate::pages::connection::ConnectionPage;
use crate::pages::dashboard::DashboardPage;
use crate::route::{DEFAULT_ROOM, Route};
use crate::session::{SessionKeeper, StorageKeys, hello};

/// The root component: routes, then a name, then the connected app.
#[function_component(App)]
pub fn app() -> Html {
    html! {
        <BrowserRouter>
            <Root />
        </BrowserRouter>
    }
}

/// Asks for a name on the first visit (and when changing it), then shows
/// the app.
#[function_component(Root)]
fn root() -> Html {
    let name = use_display_name();
    let changing = use_state(|| false);
    let on_done = {
        let name = name.clone();
        let changing = changing.clone();
        Callback::from(move |chosen: String| {
            // Already validated by the prompt.
            let _ = name.set(&chosen);
            changing.set(false);
        })
    };
    match name.name() {
        Some(current) if !*changing => {
            let on_change_name = {
                let changing = changing.clone();
                Callback::from(move |()| changing.set(true))
            };
            html! { <Connected name={AttrValue::from(current)} {on_change_name} /> }
        }
        current => {
            let on_cancel = current.is_some().then(|| {
                let changing = changing.clone();
                Callback::from(move |()| changing.set(false))
            });
            html! {
                <main class="welcome">
                    <h1 class="welcome__brand">{ "Heartline" }</h1>
                    <NamePrompt {on_done} initial={current.map(AttrValue::from)} {on_cancel} />
                </main>
            }
        }
    }
}

#[derive(Properties, PartialEq, Debug)]
struct ConnectedProps {
    name: AttrValue,
    on_change_name: Callback<()>,
}

/// The app on one socket: the provider, the shell and the page of the URL.
#[function_component(Connected)]
fn connected(props: &ConnectedProps) -> Html {
    // Resolved once here so the storage keys name the servers actually
    // dialled (the provider resolves the same way). The keys stay those of
    // the list whichever server is in use, so the identity and the saved
    // outbox survive a failover.
    let servers = use_memo((), |_| {
        let servers = socket_urls();
        let urls: Vec<String> = servers
            .urls
            .iter()
            .map(|url| resolve_against_page(url))
            .collect();
        let keys = StorageKeys::for_servers(&urls, servers.from_link);
        (urls, keys)
    });
    let (urls, keys) = &*servers;
    let url = AttrValue::from(urls.first().cloned().unwrap_or_default());
    let fallback_urls: Vec<AttrValue> = urls.iter().skip(1).cloned().map(AttrValue::from).collect();
    let config = use_memo((), |_| socket_config());
    let token_key = AttrValue::from(keys.token.clone());
    let greeting = {
        let name = props.name.clone();
        let token_key = token_key.clone();
        Callback::from(move |()| serde_json::to_value(hello(&name, &token_key)).ok())
    };
    let me = props.name.clone();
    let render = move |route: Route| match route {
        Route::Home | Route::ChatHome => {
            html! { <Redirect<Route> to={Route::Chat { room: DEFAULT_ROOM.into() }} /> }
        }
        Route::Chat { room } => html! { <ChatPage room={AttrValue::from(room)} me={me.clone()} /> },
        Route::Dashboard => html! { <DashboardPage /> },
        Route::Connection => html! { <ConnectionPage /> },
        Route::NotFound => html! {
            <section class="page not-found">
                <h2>{ "Nothing here" }</h2>
                <p><Link<Route> to={Route::Home}>{ "Back to the chat" }</Link<Route>></p>
            </section>
        },
    };
    html! {
        <SocketProvider
            {url}
            {fallback_urls}
            config={(*config).clone()}
            greeting={greeting}
            persist_key={AttrValue::from(keys.outbox.clone())}
            share={share_options(&keys.outbox)}
        >
            <SessionKeeper token_key={token_key} />
            <div class="shell">
                <AppHeader name={props.name.clone()} on_change_name={props.on_change_name.clone()} />
                <div class="shell__banner"><ConnectionBanner /></div>
                <main class="shell__main">
                    <Switch<Route> render={render} />
                </main>
            </div>
        </SocketProvider>
    }
}
