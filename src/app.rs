//! The app shell: the name gate, one socket provider for the whole app, the
//! header with the connection's health, the banner, and the pages.

use heartline::yew::{ConnectionBanner, SocketProvider, resolve_against_page};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::components::app_header::AppHeader;
use crate::components::name_prompt::NamePrompt;
use crate::config::{socket_config, socket_url};
use crate::hooks::use_display_name::use_display_name;
use crate::pages::chat::ChatPage;
use crate::pages::connection::ConnectionPage;
use crate::pages::dashboard::DashboardPage;
use crate::route::{DEFAULT_ROOM, Route};
use crate::session::{SessionKeeper, hello, outbox_key, session_token_key};

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
    // Resolved once here so the storage keys name the server actually
    // dialled (the provider resolves the same way).
    let url = use_memo((), |_| resolve_against_page(&socket_url()));
    let config = use_memo((), |_| socket_config());
    let token_key = AttrValue::from(session_token_key(&url));
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
            url={AttrValue::from((*url).clone())}
            config={(*config).clone()}
            greeting={greeting}
            persist_key={AttrValue::from(outbox_key(&url))}
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
