//! The `heartline-faultproxy` binary: environment configuration, the ready
//! file, and the loopback-only guard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use common::{DEADLINE, Echo, http, roundtrip, wait_until};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_heartline-faultproxy");

/// A fresh, empty directory for this test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "heartline-faultproxy-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn binary_writes_the_ready_file_and_forwards() {
    let echo = Echo::start().await;
    let dir = scratch_dir("ready");
    let ready = dir.join("proxy.ready.json");
    let mut child = Command::new(BIN)
        .env("HEARTLINE_PROXY_UPSTREAM", echo.addr.to_string())
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    wait_until("the ready file exists", || ready.exists()).await;
    let text = std::fs::read_to_string(&ready).unwrap();
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listen: SocketAddr = json["listen"].as_str().unwrap().parse().unwrap();
    let control: SocketAddr = json["control"].as_str().unwrap().parse().unwrap();
    assert!(listen.ip().is_loopback() && listen.port() != 0);
    assert!(control.ip().is_loopback() && control.port() != 0);
    // Only the ready file: the temporary one was renamed.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let mut a = timeout(DEADLINE, TcpStream::connect(listen))
        .await
        .unwrap()
        .unwrap();
    roundtrip(&mut a, b"through the binary").await;
    let status = http(control, "GET", "/status", &[]).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["open_connections"], 1);

    child.start_kill().unwrap();
    timeout(DEADLINE, child.wait()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn binary_refuses_non_loopback_addresses() {
    let dir = scratch_dir("refuse");
    let ready = dir.join("proxy.ready.json");
    for args in [
        vec!["--upstream", "10.1.2.3:3000"],
        vec!["--upstream", "127.0.0.1:3000", "--listen", "0.0.0.0:0"],
        vec!["--upstream", "127.0.0.1:3000", "--control", "192.168.0.1:0"],
    ] {
        let out = timeout(
            DEADLINE,
            Command::new(BIN)
                .args(&args)
                .arg("--ready-file")
                .arg(&ready)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("loopback"), "{args:?}: {stderr}");
        assert!(!ready.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
