//! A small fault-injecting TCP proxy for Heartline's browser component tests
//! and whole-app tests.
//!
//! The proxy sits between the browser and the demo server and forwards raw TCP,
//! so HTTP and WebSocket upgrades pass through untouched. A test changes the
//! link's [`Mode`] at any time, either in-process with [`Proxy::set_mode`] or
//! over the plain-HTTP control API (see below), and the change applies at once
//! to every existing connection:
//!
//! - [`Mode::Pass`] (the default): forward both ways.
//! - [`Mode::Cut`]: abortively close (TCP RST) both sides of every current
//!   connection, and refuse new ones (accept, then close at once with RST)
//!   until the mode changes.
//! - [`Mode::Stall`]: a half-open link. Current and new connections stay open
//!   but nothing is forwarded either way, and nothing is ever closed towards
//!   the client: it sees silence, not a close. New connections accepted while
//!   stalled are not connected upstream at all.
//! - [`Mode::Delay`]: forward with the given latency added to every chunk in
//!   each direction (so a round trip gains twice the delay).
//!
//! **Restore after a stall.** A real half-open link never recovers, so every
//! connection that was stalled is closed abortively (RST on both sides) when the
//! stall ends, whatever the new mode is. Connections opened after the stall
//! ended are forwarded normally. Switching between pass and delay never closes
//! anything.
//!
//! # Control API
//!
//! Plain HTTP on its own port, with permissive CORS
//! (`Access-Control-Allow-Origin: *` on every answer, `OPTIONS` preflights
//! answered `204`) so that wasm tests in a browser on another origin can call
//! it with `fetch`. Every mode endpoint accepts `POST` and `GET` and answers
//! with the new status:
//!
//! | request                | effect                                  |
//! |------------------------|-----------------------------------------|
//! | `POST /cut`            | [`Mode::Cut`]                           |
//! | `POST /stall`          | [`Mode::Stall`]                         |
//! | `POST /restore`        | [`Mode::Pass`]                          |
//! | `POST /delay?ms=N`     | [`Mode::Delay`] of `N` ms (`0..=3600000`) |
//! | `POST /refuse-upgrades` | answer WebSocket upgrades with a 403, pass plain HTTP (any mode) |
//! | `POST /allow-upgrades` | forward upgrades again (the default)    |
//! | `GET /status`          | the [`Status`], unchanged               |
//!
//! The status is JSON, for example
//! `{"mode":"delay","delay_ms":200,"open_connections":1,"total_connections":3,"refused_connections":0,"refuse_upgrades":false,"refused_upgrades":0}`.
//!
//! **Refusing upgrades** is orthogonal to the mode: like a corporate proxy
//! that passes plain HTTP but not WebSocket, the proxy reads the first
//! request head of each new connection and, if it carries
//! `Upgrade: websocket`, answers `403 Forbidden` and closes; any other
//! request is forwarded as usual. Connections already upgraded are left
//! alone.
//!
//! # Safety net
//!
//! The proxy only ever binds and connects to loopback addresses:
//! [`Proxy::start`] refuses any other listen, control or upstream address.

#![warn(missing_docs)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod conn;
mod control;

/// The largest delay the proxy accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// How the proxy treats the link between the client and the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward both ways.
    #[default]
    Pass,
    /// Close every connection abortively and refuse new ones.
    Cut,
    /// Keep every connection open but forward nothing (a half-open link).
    Stall,
    /// Forward with this much latency added in each direction.
    Delay(Duration),
}

impl Mode {
    /// The mode's name as the control API reports it: `pass`, `cut`,
    /// `stall` or `delay`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::Cut => "cut",
            Mode::Stall => "stall",
            Mode::Delay(_) => "delay",
        }
    }

    /// The added latency in milliseconds when the mode is [`Mode::Delay`].
    pub fn delay_ms(&self) -> Option<u64> {
        match self {
            Mode::Delay(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Delay(d) => write!(f, "delay {}ms", d.as_millis()),
            other => f.write_str(other.name()),
        }
    }
}

/// A snapshot of the proxy's state, as `GET /status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The current mode's name: `pass`, `cut`, `stall` or `delay`.
    pub mode: String,
    /// The added latency when `mode` is `delay`, else `null`.
    pub delay_ms: Option<u64>,
    /// Client connections the proxy currently holds open.
    pub open_connections: u64,
    /// Client connections accepted since start, refused ones included.
    pub total_connections: u64,
    /// Client connections refused (closed at once) because the link was cut.
    pub refused_connections: u64,
    /// Whether WebSocket upgrades are refused (see [`Proxy::refuse_upgrades`]).
    #[serde(default)]
    pub refuse_upgrades: bool,
    /// Upgrade requests answered with a 403 since start.
    #[serde(default)]
    pub refused_upgrades: u64,
}

/// Where the proxy listens and where it forwards to. Every address must be a
/// loopback address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The address clients connect to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The server the proxy forwards to.
    pub upstream: SocketAddr,
    /// The address of the HTTP control API (port 0 picks a free port).
    pub control: SocketAddr,
}

impl Config {
    /// A config forwarding to `upstream`, with the proxy and its control API
    /// on free ports of `127.0.0.1`.
    pub fn new(upstream: SocketAddr) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            listen: any_port,
            upstream,
            control: any_port,
        }
    }

    /// Checks that every address is a loopback address.
    pub fn validate(&self) -> Result<(), Error> {
        for (role, addr) in [
            ("listen", self.listen),
            ("upstream", self.upstream),
            ("control", self.control),
        ] {
            if !addr.ip().to_canonical().is_loopback() {
                return Err(Error::NotLoopback { role, addr });
            }
        }
        Ok(())
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address is not a loopback address; the proxy never targets anything else.
    #[error(
        "the {role} address {addr} is not a loopback address; heartline-faultproxy only works on loopback"
    )]
    NotLoopback {
        /// Which address: `listen`, `upstream` or `control`.
        role: &'static str,
        /// The refused address.
        addr: SocketAddr,
    },
    /// A listener could not be bound.
    #[error("cannot bind the {role} address {addr}: {source}")]
    Bind {
        /// Which listener: `listen` or `control`.
        role: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// The link's state as every connection watches it. The generations let a
/// connection notice a cut or a stall even if the mode changed again before
/// it looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct LinkState {
    mode: Mode,
    /// Bumped on every change to [`Mode::Cut`].
    cut_gen: u64,
    /// Bumped on every change to [`Mode::Stall`].
    stall_gen: u64,
    /// Answer requests carrying `Upgrade: websocket` with a 403, as proxies
    /// that pass plain HTTP only do.
    refuse_upgrades: bool,
}

/// State shared by the accept loop, the connections and the control API.
#[derive(Debug)]
struct Shared {
    state: watch::Sender<LinkState>,
    open: AtomicU64,
    total: AtomicU64,
    refused: AtomicU64,
    refused_upgrades: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            state: watch::Sender::new(LinkState::default()),
            open: AtomicU64::new(0),
            total: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            refused_upgrades: AtomicU64::new(0),
        }
    }

    fn set_refuse_upgrades(&self, refuse: bool) {
        self.state.send_modify(|s| s.refuse_upgrades = refuse);
        tracing::info!(refuse, "WebSocket upgrades refused: {refuse}");
    }

    fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    fn set_mode(&self, mode: Mode) {
        let mode = match mode {
            Mode::Delay(d) => Mode::Delay(d.min(MAX_DELAY)),
            other => other,
        };
        self.state.send_modify(|s| {
            match mode {
                Mode::Cut => s.cut_gen = s.cut_gen.wrapping_add(1),
                Mode::Stall => s.stall_gen = s.stall_gen.wrapping_add(1),
                Mode::Pass | Mode::Delay(_) => {}
            }
            s.mode = mode;
        });
        tracing::info!(%mode, "link mode changed");
    }

    fn status(&self) -> Status {
        let mode = self.mode();
        Status {
            mode: mode.name().to_owned(),
            delay_ms: mode.delay_ms(),
            open_connections: self.open.load(Ordering::SeqCst),
            total_connections: self.total.load(Ordering::SeqCst),
            refused_connections: self.refused.load(Ordering::SeqCst),
            refuse_upgrades: self.state.borrow().refuse_upgrades,
            refused_upgrades: self.refused_upgrades.load(Ordering::SeqCst),
        }
    }
}

/// A running proxy: its listener, its connections and its control API.
///
/// Dropping it stops the proxy (like [`Proxy::shutdown`], without waiting).
#[derive(Debug)]
pub struct Proxy {
    listen_addr: SocketAddr,
    control_addr: SocketAddr,
    upstream_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
    control_task: JoinHandle<()>,
}

#[derive(Serialize)]
struct Ready {
    listen: String,
    control: String,
}

impl Proxy {
    /// Validates `config`, binds both listeners and starts serving on the
    /// current tokio runtime, in [`Mode::Pass`].
    ///
    /// Once this returns, both listeners are bound and accept connections.
    pub async fn start(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                role: "listen",
                addr: config.listen,
                source,
            })?;
        let control_listener =
            TcpListener::bind(config.control)
                .await
                .map_err(|source| Error::Bind {
                    role: "control",
                    addr: config.control,
                    source,
                })?;
        let listen_addr = listener.local_addr()?;
        let control_addr = control_listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let accept_task = tokio::spawn(conn::accept_loop(
            listener,
            config.upstream,
            Arc::clone(&shared),
        ));
        let control_task = tokio::spawn(control::serve(control_listener, Arc::clone(&shared)));
        tracing::info!(%listen_addr, %control_addr, upstream = %config.upstream, "fault proxy started");
        Ok(Self {
            listen_addr,
            control_addr,
            upstream_addr: config.upstream,
            shared,
            accept_task,
            control_task,
        })
    }

    /// The address clients connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address of the HTTP control API.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// The server the proxy forwards to.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream_addr
    }

    /// Changes the link's mode; existing connections follow at once.
    /// A delay above [`MAX_DELAY`] is clamped to it.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.set_mode(mode);
    }

    /// Refuses (`true`) or allows again (`false`) WebSocket upgrades on
    /// new connections; plain HTTP passes either way.
    ///
    /// ```no_run
    /// # async fn demo(proxy: heartline_faultproxy::Proxy) {
    /// proxy.refuse_upgrades(true);
    /// assert!(proxy.status().refuse_upgrades);
    /// # }
    /// ```
    pub fn refuse_upgrades(&self, refuse: bool) {
        self.shared.set_refuse_upgrades(refuse);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// The current status, as `GET /status` reports it.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The one-line JSON readiness record,
    /// `{"listen":"127.0.0.1:P1","control":"127.0.0.1:P2"}`, without a newline.
    pub fn ready_line(&self) -> String {
        let ready = Ready {
            listen: self.listen_addr.to_string(),
            control: self.control_addr.to_string(),
        };
        serde_json::to_string(&ready).unwrap_or_default()
    }

    /// Stops accepting, closes every connection and stops the control API,
    /// then waits until the listeners are closed.
    pub async fn shutdown(mut self) {
        self.accept_task.abort();
        self.control_task.abort();
        // Aborted tasks end with a cancellation error, which is what we asked for.
        let _ = (&mut self.accept_task).await;
        let _ = (&mut self.control_task).await;
        tracing::info!("fault proxy stopped");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.control_task.abort();
    }
}
