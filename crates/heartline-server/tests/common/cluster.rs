//! Two or more real server processes sharing PostgreSQL and Redis.
//!
//! PostgreSQL is the one `HEARTLINE_TEST_PG_URL` names (`scripts/test`
//! starts a private one); each test gets a fresh database on it. Without it
//! the cluster tests are skipped, with a note, unless
//! `HEARTLINE_REQUIRE_SERVICES=1`, which makes them fail instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// The PostgreSQL server the tests may use, if any.
pub fn pg_admin_url() -> Option<String> {
    match std::env::var("HEARTLINE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HEARTLINE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "HEARTLINE_REQUIRE_SERVICES=1 but HEARTLINE_TEST_PG_URL is not set"
            );
            eprintln!("skipped: HEARTLINE_TEST_PG_URL not set (scripts/test sets it)");
            None
        }
    }
}

/// A client of the test PostgreSQL server's database `url`.
pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// A new, empty database on the test server; returns its URL.
pub async fn fresh_database(admin_url: &str) -> String {
    let name = format!(
        "heartline_cluster_{}_{}",
        std::process::id(),
        heartline_server::ids::new_epoch()
    );
    pg_client(admin_url)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// A `heartline-server` process; killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the release-or-debug binary cargo built for these tests on a
    /// free port, with `db` and `bus`, and waits until it listens.
    pub async fn start(db: &str, bus: &str) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready");
        let log = dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_heartline-server"))
            .args(["--addr", "127.0.0.1:0", "--db", db, "--bus", bus])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--dist")
            .arg(dir.path().join("no-dist"))
            // Test clients read only when they expect something: they
            // answer pings late, so give them time.
            .args(["--ping-interval-ms", "1000", "--idle-timeout-ms", "60000"])
            .args(["--rooms", "lobby", "--shutdown-grace-ms", "500"])
            .env("RUST_LOG", "info,heartline_server=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn heartline-server");
        let mut server = ServerProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && let Ok(addr) = text.trim().parse()
            {
                server.addr = addr;
                return server;
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "server exited ({status}) before listening:\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `ws://…/ws` of this process.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no goodbye, no `Gone` on the bus.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // The test failed: what the server saw is the first clue.
            let log = self.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("tokio_postgres"))
                .collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- server {} log (last {} lines) ---\n{}",
                self.addr,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}
