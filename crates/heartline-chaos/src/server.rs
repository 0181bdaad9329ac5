//! The demo server as a child process: started on a fixed loopback address
//! and a database (a file, or a PostgreSQL URL shared by a cluster, with its
//! bus), killed with SIGKILL, started again on the same address and database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a start may take before the run gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often the ready file is looked for.
const POLL: Duration = Duration::from_millis(10);

/// What is needed to (re)start the server the same way every time.
#[derive(Debug)]
pub struct ServerProcess {
    binary: PathBuf,
    addr: SocketAddr,
    db: String,
    bus: Option<String>,
    no_dist: PathBuf,
    ready_file: PathBuf,
    log: PathBuf,
    history_max: usize,
    child: Option<Child>,
}

impl ServerProcess {
    /// Server `name` on `addr`, keeping its files in `dir`, on database
    /// `db` (`None`: a SQLite file of its own in `dir`) and `bus`.
    pub fn new(
        binary: PathBuf,
        addr: SocketAddr,
        dir: &Path,
        name: &str,
        (db, bus): (Option<String>, Option<String>),
        history_max: usize,
    ) -> Self {
        let db = db.unwrap_or_else(|| dir.join(format!("{name}.db")).display().to_string());
        ServerProcess {
            binary,
            addr,
            db,
            bus,
            no_dist: dir.join("no-dist"),
            ready_file: dir.join(format!("{name}.ready")),
            log: dir.join(format!("{name}.log")),
            history_max,
            child: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the server and waits until it listens; returns when it does.
    pub async fn start(&mut self) -> Result<Instant, String> {
        let _ = std::fs::remove_file(&self.ready_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("server log {}: {e}", self.log.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("server log: {e}"))?;
        let mut command = Command::new(&self.binary);
        if let Some(bus) = &self.bus {
            command.arg("--bus").arg(bus);
        }
        let child = command
            .arg("--addr")
            .arg(self.addr.to_string())
            .arg("--db")
            .arg(&self.db)
            .arg("--ready-file")
            .arg(&self.ready_file)
            .arg("--dist")
            .arg(&self.no_dist)
            .arg("--history-max")
            .arg(self.history_max.to_string())
            .env(
                "RUST_LOG",
                std::env::var("HEARTLINE_CHAOS_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if std::fs::read_to_string(&self.ready_file).is_ok_and(|s| !s.trim().is_empty()) {
                return Ok(Instant::now());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "the server exited at start ({status}); see {}",
                    self.log.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not listen within {START_DEADLINE:?}; see {}",
                    self.log.display()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kill -9`: no shutdown, no checkpoint, sockets reset by the kernel.
    pub async fn kill(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child
            .start_kill()
            .map_err(|e| format!("kill failed: {e}"))?;
        child
            .wait()
            .await
            .map_err(|e| format!("wait after kill failed: {e}"))?;
        Ok(())
    }
}
