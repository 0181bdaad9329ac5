//! Browser tests of the connection probe: rendered into their own element, in
//! headless Chromium, against the real demo server started by `scripts/test`.

#![cfg(target_arch = "wasm32")]

mod support;

use std::time::Duration;

use heartline_app::components::connection_probe::{ConnectionProbe, ConnectionProbeProps};
use support::{attr_of, mount_point, server_ws_url, text_of, wait_until};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn probe_shows_disconnected_when_nothing_listens() {
    let root = mount_point();
    // Port 9 (discard) on loopback: nothing listens there, the open fails.
    let props = ConnectionProbeProps {
        url: "ws://127.0.0.1:9/ws".into(),
    };
    let _app = yew::Renderer::<ConnectionProbe>::with_root_and_props(root.clone(), props).render();
    wait_until("the probe to give up", Duration::from_secs(10), || {
        attr_of(&root, "[role=status]", "data-state").as_deref() == Some("Disconnected")
    })
    .await;
    assert_eq!(text_of(&root, "[role=status]").as_deref(), Some("Disconnected"));
}

#[wasm_bindgen_test]
async fn probe_connects_to_the_real_server() {
    let root = mount_point();
    let props = ConnectionProbeProps {
        url: server_ws_url().into(),
    };
    let _app = yew::Renderer::<ConnectionProbe>::with_root_and_props(root.clone(), props).render();
    wait_until("the probe to connect", Duration::from_secs(10), || {
        attr_of(&root, "[role=status]", "data-state").as_deref() == Some("Connected")
    })
    .await;
    assert_eq!(text_of(&root, "[role=status]").as_deref(), Some("Connected"));
}
