//! Helpers shared by the browser tests: a fresh mount point per test and
//! polling with a deadline (never a fixed sleep).

#![allow(dead_code)]

use std::time::Duration;

use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};

/// The demo server's socket URL, given at compile time by `scripts/test`
/// (which starts the server on a free port and stops it afterwards).
pub fn server_ws_url() -> &'static str {
    match option_env!("HEARTLINE_TEST_WS_URL") {
        Some(url) => url,
        None => panic!("HEARTLINE_TEST_WS_URL is set by scripts/test; run the browser tests through it"),
    }
}

/// A new, empty `<div>` appended to `<body>`, so each test renders in
/// isolation (never into the shared `#output`).
pub fn mount_point() -> Element {
    let document = gloo_document();
    let div = document.create_element("div").expect("create div");
    document
        .body()
        .expect("document has a body")
        .append_child(&div)
        .expect("append mount point");
    div
}

fn gloo_document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("tests run in a browser document")
}

/// Polls `condition` every 20 ms until it holds, or panics with `what` after
/// `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = js_sys::Date::now() + timeout.as_millis() as f64;
    loop {
        if condition() {
            return;
        }
        if js_sys::Date::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        TimeoutFuture::new(20).await;
    }
}

/// The text of the first element matching `selector` under `root`.
pub fn text_of(root: &Element, selector: &str) -> Option<String> {
    root.query_selector(selector)
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        .map(|e| e.inner_text())
}

/// An attribute of the first element matching `selector` under `root`.
pub fn attr_of(root: &Element, selector: &str, attr: &str) -> Option<String> {
    root.query_selector(selector)
        .ok()
        .flatten()
        .and_then(|e| e.get_attribute(attr))
}
