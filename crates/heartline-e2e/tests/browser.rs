//! The browser half against a stand-in app (`fixtures/fake-app`, same
//! selectors as the real one) served by the real server through the proxy:
//! localStorage, typing, waits, colour scheme, screenshots, and the banner
//! across a cut and a server kill -9 and restart. Needs the built binaries
//! (`HEARTLINE_E2E_BIN_DIR`, e.g. `target/release`) and chromedriver; without
//! `HEARTLINE_E2E_BIN_DIR` the test only says it was skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use heartline_e2e::{Browser, ColorScheme, Db, ProxyMode, Stack, StackOptions};

const T: Duration = Duration::from_secs(15);
const OPEN: &str = r#".hl-banner[data-status="open"]"#;
const RECONNECTING: &str = r#".hl-banner[data-status="reconnecting"]"#;

fn options() -> Option<StackOptions> {
    let dir = PathBuf::from(std::env::var_os("HEARTLINE_E2E_BIN_DIR")?);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-app");
    let mut options = StackOptions::new(fixture);
    options.server_bin = dir.join("heartline-server");
    options.proxy_bin = dir.join("heartline-faultproxy");
    options.db = Db::Temp;
    Some(options)
}

async fn wait_present(browser: &Browser, css: &str) {
    browser
        .wait_until(
            css,
            &format!("return document.querySelector({css:?}) !== null;"),
            T,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn drives_the_stand_in_app() {
    let Some(options) = options() else {
        eprintln!("skipped: set HEARTLINE_E2E_BIN_DIR to run the browser test");
        return;
    };
    let mut stack = Stack::start(options).await.expect("stack starts");
    let browser = Browser::start().await.expect("browser starts");

    browser.set_window_size(360, 740).await.expect("size");
    let width = browser
        .execute("return window.innerWidth;", Vec::new())
        .await
        .expect("innerWidth");
    assert_eq!(width, 360);

    browser
        .goto(&stack.app_url("/chat/lobby"))
        .await
        .expect("goto");
    browser
        .set_local_storage("heartline.name", "\"ada\"")
        .await
        .expect("set storage");
    assert_eq!(
        browser.local_storage("heartline.name").await.expect("get"),
        Some("\"ada\"".to_owned())
    );
    browser.reload().await.expect("reload");
    browser
        .type_into("#composer-text", "hello", T)
        .await
        .expect("type");
    browser
        .press_enter("#composer-text", T)
        .await
        .expect("enter");
    let messages = browser
        .wait_for_count(".message", 1, T)
        .await
        .expect("message");
    assert_eq!(messages[0].text().await.expect("text"), "hello");

    browser
        .set_color_scheme(ColorScheme::Dark)
        .await
        .expect("dark");
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("chat.png");
    browser.screenshot(&png).await.expect("screenshot");
    let bytes = std::fs::read(&png).expect("png written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");

    // The link cut, then back.
    wait_present(&browser, OPEN).await;
    stack.set_mode(ProxyMode::Cut).await.expect("cut");
    browser
        .wait_for(RECONNECTING, T)
        .await
        .expect("reconnecting");
    stack.set_mode(ProxyMode::Pass).await.expect("restore");
    wait_present(&browser, OPEN).await;

    // The server killed, then restarted on the same address.
    stack.kill_server().await.expect("kill");
    browser
        .wait_for(RECONNECTING, T)
        .await
        .expect("reconnecting after kill");
    stack.restart_server().await.expect("restart");
    wait_present(&browser, OPEN).await;

    browser.quit().await.expect("quit");
}
