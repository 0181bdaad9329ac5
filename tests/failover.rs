//! Several server URLs in a real browser: the app reads the list from the
//! page (`?ws=`, the `<meta name="heartline-ws">` tag), and a provider whose
//! first server cannot be reached moves to the next one, which the
//! Connection page names.

#![cfg(target_arch = "wasm32")]

mod support;

use std::time::Duration;

use heartline::yew::SocketProvider;
use heartline_app::config::{SOCKET_URL_META, SocketUrls, socket_urls};
use heartline_app::pages::connection::ConnectionPage;
use heartline_app::session::hello;
use support::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;
use yew::prelude::*;
use yew_router::Router;
use yew_router::history::{AnyHistory, MemoryHistory};

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: Duration = Duration::from_secs(20);

/// Sets the page's query string without a reload.
fn set_query(query: &str) {
    let window = web_sys::window().expect("a window");
    let history = window.history().expect("a history");
    let path = window.location().pathname().expect("a path");
    history
        .replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}{query}")))
        .expect("replaceState");
}

#[wasm_bindgen_test]
fn the_server_list_comes_from_the_link_then_the_meta_tag() {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a document");
    let meta = document.create_element("meta").expect("a meta element");
    meta.set_attribute("name", SOCKET_URL_META).expect("name");
    meta.set_attribute("content", " wss://a.example/ws , wss://b.example/ws ")
        .expect("content");
    document
        .head()
        .expect("a head")
        .append_child(&meta)
        .expect("append the meta tag");

    set_query("");
    assert_eq!(
        socket_urls(),
        SocketUrls {
            urls: vec!["wss://a.example/ws".into(), "wss://b.example/ws".into()],
            from_link: false,
        }
    );

    // `?ws=` wins, percent-encoded as a link would carry it.
    set_query("?room=x&ws=ws%3A%2F%2F127.0.0.1%3A3001%2Fws%2Cws%3A%2F%2F127.0.0.1%3A3002%2Fws");
    assert_eq!(
        socket_urls(),
        SocketUrls {
            urls: vec![
                "ws://127.0.0.1:3001/ws".into(),
                "ws://127.0.0.1:3002/ws".into()
            ],
            from_link: true,
        }
    );

    // An empty `?ws=` falls through to the meta tag.
    set_query("?ws=");
    assert!(!socket_urls().from_link);

    set_query("");
    meta.remove();
}

#[derive(Properties, PartialEq)]
struct PageProps {
    url: AttrValue,
    fallback_urls: Vec<AttrValue>,
}

#[function_component(Page)]
fn page(props: &PageProps) -> Html {
    let history = use_memo((), |_| AnyHistory::from(MemoryHistory::new()));
    let name = use_memo((), |_| unique("fo-"));
    let greeting = {
        let name = name.clone();
        Callback::from(move |()| serde_json::to_value(hello(&name, "heartline.test.fo")).ok())
    };
    html! {
        <Router history={(*history).clone()}>
            <SocketProvider
                url={props.url.clone()}
                fallback_urls={props.fallback_urls.clone()}
                config={fast_config()}
                {greeting}
            >
                <ConnectionPage />
            </SocketProvider>
        </Router>
    }
}

#[wasm_bindgen_test]
async fn the_connection_page_names_the_server_in_use_after_a_failover() {
    let good = server_ws_url();
    // The same server at a path that is no socket: every attempt fails.
    let dead = good.replace("/ws", "/no-socket-here");
    let root = mount_point();
    let handle = yew::Renderer::<Page>::with_root_and_props(
        root.clone(),
        PageProps {
            url: AttrValue::from(dead.clone()),
            fallback_urls: vec![AttrValue::from(good)],
        },
    )
    .render();

    wait_until("the link to open on the second server", WAIT, || {
        attr_of(&root, ".panel__state", "data-open").as_deref() == Some("true")
    })
    .await;
    let server = text_of(&root, ".panel__server").unwrap_or_default();
    assert!(server.contains(good), "{server}");
    assert!(server.contains("(server 2 of 2)"), "{server}");
    assert_eq!(
        attr_of(&root, ".panel__server", "data-endpoint").as_deref(),
        Some("1")
    );
    let timeline = root.text_content().unwrap_or_default();
    assert!(
        timeline.contains(&format!("switching to {good}")),
        "{timeline}"
    );
    handle.destroy();
}
