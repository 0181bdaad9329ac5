//! A private `redis-server` for tests: on a free loopback port, in its own
//! temporary directory, without persistence, killed when dropped.
//!
//! ```ignore
//! let Some(mut redis) = common::redis::start() else { return }; // skipped
//! let url = redis.url();
//! redis.kill();    // SIGKILL, like a crash
//! redis.restart(); // the same port, empty
//! ```
//!
//! If `redis-server` is not on `PATH`, [`start`] prints
//! "skipped: redis-server not installed" and returns `None`, unless
//! `HEARTLINE_REQUIRE_SERVICES=1`, when it panics: CI must not pass by
//! skipping.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server may take to answer `PING`.
const STARTUP: Duration = Duration::from_secs(10);

/// A running (or killed) private redis-server.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Whether `redis-server` can be run.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the environment demands real services (`HEARTLINE_REQUIRE_SERVICES=1`).
pub fn required() -> bool {
    std::env::var("HEARTLINE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Starts a server, or returns `None` (after saying so) when redis-server
/// is not installed and not required. Panics if it is required and
/// missing, or if it does not come up.
pub fn start() -> Option<RedisServer> {
    if !installed() {
        assert!(
            !required(),
            "HEARTLINE_REQUIRE_SERVICES=1 but redis-server is not installed \
             (apt-get install -y redis-server)"
        );
        // Straight to stderr: the test harness captures `eprintln!` of
        // passing tests, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: redis-server not installed (set HEARTLINE_REQUIRE_SERVICES=1 to fail instead)"
        );
        return None;
    }
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir for redis-server");
    let mut server = RedisServer {
        port,
        dir,
        child: None,
    };
    server.spawn();
    Some(server)
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Whether the process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL (a crash: no goodbye to clients) and
    /// reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, and starts a fresh, empty one on the
    /// same port; returns once it answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("redis.log");
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("redis log file");
        let stderr = stdout.try_clone().expect("redis log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while !self.answers_ping() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!(
                    "redis-server exited with {status} on port {}:\n{}",
                    self.port,
                    tail(&log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {} within {STARTUP:?}:\n{}",
                self.port,
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One `PING` over a raw connection.
    fn answers_ping(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
        else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        if conn.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        conn.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
