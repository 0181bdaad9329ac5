//! The demo server and the fault proxy in front of it, as child processes on
//! free loopback ports.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::http::{HttpResponse, http_request};
use crate::{Error, POLL, Result, free_port};

/// Attempts at binding freshly found ports before giving up (another process
/// may take a port between finding and binding it).
const PORT_ATTEMPTS: usize = 3;
/// Deadline of one control or health request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the server keeps chat history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Db {
    /// A file in the stack's temporary directory: kept across
    /// [`Stack::restart_server`], removed with the stack.
    #[default]
    Temp,
    /// `:memory:`: history is lost on every restart.
    Memory,
    /// This file, kept after the stack stops.
    File(PathBuf),
}

/// How a [`Stack`] is started.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The `heartline-server` binary.
    pub server_bin: PathBuf,
    /// The `heartline-faultproxy` binary.
    pub proxy_bin: PathBuf,
    /// The built app (trunk's `dist/`), served by the server.
    pub dist: PathBuf,
    /// Where chat history is kept.
    pub db: Db,
    /// Extra server flags, e.g. `--metrics-interval-ms 500`.
    pub server_args: Vec<OsString>,
    /// Deadline for each process to write its ready file.
    pub start_timeout: Duration,
}

impl StackOptions {
    /// Serves `dist` with the binaries found beside the running executable
    /// (the same cargo target directory), a temporary database and a 30 s
    /// start deadline.
    pub fn new(dist: impl Into<PathBuf>) -> Self {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        StackOptions {
            server_bin: dir.join("heartline-server"),
            proxy_bin: dir.join("heartline-faultproxy"),
            dist: dist.into(),
            db: Db::Temp,
            server_args: Vec::new(),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// What the fault proxy does to the link (its control API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Reset every connection and refuse new ones.
    Cut,
    /// Keep connections open but forward nothing (half-open). Connections
    /// stalled are reset when the stall ends.
    Stall,
    /// Forward with this latency added in each direction.
    Delay(Duration),
}

impl ProxyMode {
    fn path(self) -> String {
        match self {
            ProxyMode::Pass => "/restore".to_owned(),
            ProxyMode::Cut => "/cut".to_owned(),
            ProxyMode::Stall => "/stall".to_owned(),
            ProxyMode::Delay(d) => format!("/delay?ms={}", d.as_millis()),
        }
    }
}

/// The release demo server behind the fault proxy. Everything is killed when
/// the stack is dropped.
#[derive(Debug)]
pub struct Stack {
    options: StackOptions,
    dir: tempfile::TempDir,
    db: String,
    server_addr: SocketAddr,
    proxy_addr: SocketAddr,
    control_addr: SocketAddr,
    server: Option<Child>,
    proxy: Child,
}

impl Stack {
    /// Starts the server and the proxy on free loopback ports and waits until
    /// both are ready. The server allows the proxy's and its own origins.
    pub async fn start(options: StackOptions) -> Result<Stack> {
        let dir = tempfile::Builder::new()
            .prefix("heartline-e2e.")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let db = match &options.db {
            Db::Temp => dir.path().join("history.db").display().to_string(),
            Db::Memory => ":memory:".to_owned(),
            Db::File(path) => path.display().to_string(),
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let proxy_port = free_port()?;
            let server_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let origins = origins(&[proxy_port, server_addr.port()]);
            let server = match spawn_server(&options, dir.path(), server_addr, &db, &origins).await
            {
                Ok(child) => child,
                Err(error @ Error::Exited { .. }) => {
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return Err(error),
            };
            match spawn_proxy(&options, dir.path(), proxy_port, server_addr).await {
                Ok((proxy, proxy_addr, control_addr)) => {
                    return Ok(Stack {
                        options,
                        dir,
                        db,
                        server_addr,
                        proxy_addr,
                        control_addr,
                        server: Some(server),
                        proxy,
                    });
                }
                Err(error @ Error::Exited { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
            // `server` is dropped here and killed (kill_on_drop).
        }
        Err(last_error.unwrap_or_else(|| Error::Other("no attempt to start the stack".into())))
    }

    /// The server's own address (bypassing the proxy).
    pub fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    /// The address browsers should use: the proxy's.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// The proxy's control API address.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// `http://<proxy>/<path>`: a page of the app, through the proxy (which
    /// forwards plain HTTP as well as the WebSocket).
    pub fn app_url(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.proxy_addr,
            path.trim_start_matches('/')
        )
    }

    /// `http://<server>/<path>`: a page of the app straight from the server.
    pub fn server_url(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.server_addr,
            path.trim_start_matches('/')
        )
    }

    /// The directory holding the logs (`server.log`, `proxy.log`) and the
    /// temporary database; removed with the stack.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of the server's and the proxy's logs, for
    /// failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        ["server.log", "proxy.log"]
            .iter()
            .map(|name| format!("--- {name}\n{}", tail(&self.dir.path().join(name), lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Switches the proxy's mode; answers the proxy's status (JSON).
    pub async fn set_mode(&self, mode: ProxyMode) -> Result<serde_json::Value> {
        let answer = http_request(self.control_addr, "POST", &mode.path(), REQUEST_TIMEOUT).await?;
        json_answer(&answer, &mode.path())
    }

    /// Makes the proxy refuse WebSocket upgrades (403) while it forwards
    /// plain HTTP, as some corporate proxies do, or allow them again;
    /// answers the proxy's status (JSON).
    pub async fn refuse_upgrades(&self, refuse: bool) -> Result<serde_json::Value> {
        let path = if refuse {
            "/refuse-upgrades"
        } else {
            "/allow-upgrades"
        };
        let answer = http_request(self.control_addr, "POST", path, REQUEST_TIMEOUT).await?;
        json_answer(&answer, path)
    }

    /// The proxy's status (JSON: mode, open and total connections, ...).
    pub async fn proxy_status(&self) -> Result<serde_json::Value> {
        let answer = http_request(self.control_addr, "GET", "/status", REQUEST_TIMEOUT).await?;
        json_answer(&answer, "/status")
    }

    /// `GET /healthz` on the server itself.
    pub async fn healthz(&self) -> Result<HttpResponse> {
        http_request(self.server_addr, "GET", "/healthz", REQUEST_TIMEOUT).await
    }

    /// Whether the server process is running (started and not killed).
    pub fn server_running(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The server's process id while it runs (for reading its
    /// `/proc/<pid>/status`), `None` after [`Stack::kill_server`].
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(Child::id)
    }

    /// `kill -9` the server: no shutdown, sockets reset by the kernel.
    pub async fn kill_server(&mut self) -> Result<()> {
        let Some(mut child) = self.server.take() else {
            return Ok(());
        };
        child
            .start_kill()
            .map_err(|e| Error::io("killing the server", e))?;
        child
            .wait()
            .await
            .map_err(|e| Error::io("waiting for the killed server", e))?;
        Ok(())
    }

    /// Starts the server again on the same address and database (after
    /// [`Stack::kill_server`]); a running server is killed first.
    pub async fn restart_server(&mut self) -> Result<()> {
        self.kill_server().await?;
        let origins = origins(&[self.proxy_addr.port(), self.server_addr.port()]);
        let child = spawn_server(
            &self.options,
            self.dir.path(),
            self.server_addr,
            &self.db,
            &origins,
        )
        .await?;
        self.server = Some(child);
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_mut() {
            let _ = server.start_kill();
        }
        let _ = self.proxy.start_kill();
    }
}

fn origins(ports: &[u16]) -> String {
    ports
        .iter()
        .flat_map(|port| {
            [
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ]
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn json_answer(answer: &HttpResponse, path: &str) -> Result<serde_json::Value> {
    if !answer.is_success() {
        return Err(Error::Http(format!(
            "{path} answered {}: {}",
            answer.status,
            answer.body.trim()
        )));
    }
    serde_json::from_str(&answer.body).map_err(|e| {
        Error::Http(format!(
            "{path} answered malformed JSON ({e}): {}",
            answer.body
        ))
    })
}

fn log_file(path: &Path) -> Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let copy = file
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    Ok((Stdio::from(file), Stdio::from(copy)))
}

async fn spawn_server(
    options: &StackOptions,
    dir: &Path,
    addr: SocketAddr,
    db: &str,
    origins: &str,
) -> Result<Child> {
    let ready = dir.join("server.ready");
    let _ = std::fs::remove_file(&ready);
    let log = dir.join("server.log");
    let (stdout, stderr) = log_file(&log)?;
    let mut child = Command::new(&options.server_bin)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--dist")
        .arg(&options.dist)
        .arg("--db")
        .arg(db)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--allowed-origins")
        .arg(origins)
        .args(&options.server_args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", options.server_bin.display()), e))?;
    wait_ready(
        &mut child,
        &ready,
        "the server",
        &log,
        options.start_timeout,
    )
    .await?;
    Ok(child)
}

async fn spawn_proxy(
    options: &StackOptions,
    dir: &Path,
    port: u16,
    upstream: SocketAddr,
) -> Result<(Child, SocketAddr, SocketAddr)> {
    let ready = dir.join("proxy.ready");
    let _ = std::fs::remove_file(&ready);
    let log = dir.join("proxy.log");
    let (stdout, stderr) = log_file(&log)?;
    let mut child = Command::new(&options.proxy_bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(upstream.to_string())
        .arg("--ready-file")
        .arg(&ready)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", options.proxy_bin.display()), e))?;
    let text = wait_ready(
        &mut child,
        &ready,
        "the fault proxy",
        &log,
        options.start_timeout,
    )
    .await?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("the proxy's ready file is not JSON ({e}): {text}")))?;
    let addr = |key: &str| -> Result<SocketAddr> {
        json[key]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Other(format!("the proxy's ready file has no {key:?}: {text}")))
    };
    let listen = addr("listen")?;
    let control = addr("control")?;
    Ok((child, listen, control))
}

/// Polls until `ready` holds a whole line; fails if the child exits first or
/// the deadline passes. Answers the file's content.
async fn wait_ready(
    child: &mut Child,
    ready: &Path,
    what: &str,
    log: &Path,
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        // Both processes write the file atomically (write, then rename).
        if let Ok(text) = std::fs::read_to_string(ready)
            && !text.trim().is_empty()
        {
            return Ok(text.trim().to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Exited {
                what: what.to_owned(),
                status,
                log: format!("\n{}", tail(log, 20)),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::timeout(
                format!("{what} to be ready (log: {})", log.display()),
                timeout,
            ));
        }
        tokio::time::sleep(POLL / 5).await;
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
