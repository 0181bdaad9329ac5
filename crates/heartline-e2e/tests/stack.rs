//! The stack's own checks: start, health, proxy modes, kill -9 and restart on
//! the same address and database. Needs the built binaries: set
//! `HEARTLINE_E2E_BIN_DIR` to the directory holding `heartline-server` and
//! `heartline-faultproxy` (e.g. `target/release`); without it the test only
//! says it was skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use heartline_e2e::{Db, ProxyMode, Stack, StackOptions, http_request};

fn options() -> Option<StackOptions> {
    let dir = PathBuf::from(std::env::var_os("HEARTLINE_E2E_BIN_DIR")?);
    let mut options = StackOptions::new(std::env::temp_dir().join("heartline-e2e-no-dist"));
    options.server_bin = dir.join("heartline-server");
    options.proxy_bin = dir.join("heartline-faultproxy");
    options.db = Db::Temp;
    Some(options)
}

#[tokio::test]
async fn start_modes_kill_restart() {
    let Some(options) = options() else {
        eprintln!("skipped: set HEARTLINE_E2E_BIN_DIR to run the stack test");
        return;
    };
    let mut stack = Stack::start(options).await.expect("stack starts");
    let health = stack.healthz().await.expect("healthz answers");
    assert!(health.is_success(), "{health:?}");

    // HTTP passes through the proxy.
    let through = http_request(
        stack.proxy_addr(),
        "GET",
        "/healthz",
        Duration::from_secs(5),
    )
    .await
    .expect("healthz through the proxy");
    assert!(through.is_success(), "{through:?}");

    let status = stack.set_mode(ProxyMode::Cut).await.expect("cut");
    assert_eq!(status["mode"], "cut");
    assert!(
        http_request(
            stack.proxy_addr(),
            "GET",
            "/healthz",
            Duration::from_secs(5)
        )
        .await
        .is_err(),
        "a cut link refuses"
    );
    let status = stack
        .set_mode(ProxyMode::Delay(Duration::from_millis(50)))
        .await
        .expect("delay");
    assert_eq!(status["delay_ms"], 50);
    let status = stack.set_mode(ProxyMode::Pass).await.expect("restore");
    assert_eq!(status["mode"], "pass");
    assert_eq!(stack.proxy_status().await.expect("status")["mode"], "pass");

    let addr = stack.server_addr();
    stack.kill_server().await.expect("kill");
    assert!(!stack.server_running());
    assert!(stack.healthz().await.is_err(), "a killed server is gone");
    stack.restart_server().await.expect("restart");
    assert!(stack.server_running());
    assert_eq!(stack.server_addr(), addr);
    assert!(
        stack
            .healthz()
            .await
            .expect("healthz after restart")
            .is_success()
    );
}
