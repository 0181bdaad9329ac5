//! Server configuration: command-line flags, each also read from a
//! `HEARTLINE_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Highest `--metrics-load-rate`, samples a second.
pub const MAX_METRICS_LOAD_RATE: u32 = 20_000;

/// Every knob of the demo server. `Config::default()` is what the binary runs
/// with when given no flags; tests start from it and shorten the intervals.
#[derive(Debug, Clone, Parser)]
#[command(name = "heartline-server", version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (see --ready-file).
    #[arg(long, env = "HEARTLINE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Chat history: a SQLite file (`:memory:` keeps it in memory), or a
    /// PostgreSQL URL (`postgres://user@host:port/db`) that several server
    /// processes can share.
    #[arg(long, env = "HEARTLINE_DB", default_value = "heartline.db")]
    pub db: String,

    /// Fan-out across server processes: a Redis URL (`redis://host:port`).
    /// Needs a PostgreSQL `--db`, shared by the processes. Without it,
    /// fan-out stays in this process.
    #[arg(long, env = "HEARTLINE_BUS")]
    pub bus: Option<String>,

    /// Processes share rooms when they share the database and this prefix
    /// of the bus's channel.
    #[arg(long, env = "HEARTLINE_BUS_PREFIX", default_value = "heartline")]
    pub bus_prefix: String,

    /// Directory of the built single-page app (trunk's `dist/`).
    #[arg(long, env = "HEARTLINE_DIST", default_value = "dist")]
    pub dist: PathBuf,

    /// Once listening, write the bound address (e.g. `127.0.0.1:43125`) to this
    /// file, so a script that started the server on port 0 can find it.
    #[arg(long, env = "HEARTLINE_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// Comma-separated allowed `Origin`s for `/ws`. An entry may end in `:*`
    /// (any port) or be `*` (any origin). Default: the server's own origins
    /// and trunk's dev server (http://127.0.0.1:8080, http://localhost:8080).
    /// Requests without an `Origin` header (native clients) are always allowed.
    #[arg(long, env = "HEARTLINE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,

    /// Rooms that always exist.
    #[arg(
        long,
        env = "HEARTLINE_ROOMS",
        value_delimiter = ',',
        default_value = "lobby,random,help"
    )]
    pub rooms: Vec<String>,

    /// Interval between RFC 6455 Ping frames sent to each client, ms.
    #[arg(long, env = "HEARTLINE_PING_INTERVAL_MS", default_value_t = 15_000)]
    pub ping_interval_ms: u64,

    /// A client that has sent nothing (not even a Pong) for this long is
    /// closed with 4005, ms. Kept per connection: the drop comes this long
    /// after the client's last frame.
    #[arg(long, env = "HEARTLINE_IDLE_TIMEOUT_MS", default_value_t = 45_000)]
    pub idle_timeout_ms: u64,

    /// Time a client has to send a complete HTTP request head (on a new
    /// connection, and between requests on a kept-alive one), ms.
    #[arg(long, env = "HEARTLINE_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,

    /// TCP connections from one IP address that are still speaking HTTP (not
    /// upgraded to a WebSocket yet). Beyond it, new ones are closed at once.
    #[arg(long, env = "HEARTLINE_MAX_PENDING_PER_IP", default_value_t = 32)]
    pub max_pending_per_ip: usize,

    /// Default and shortest interval between `metrics.sample` frames, ms.
    #[arg(long, env = "HEARTLINE_METRICS_INTERVAL_MS", default_value_t = 1_000)]
    pub metrics_interval_ms: u64,

    /// Load testing only: send this many `metrics.sample` frames a second
    /// (1 to 20,000) to every metrics subscriber, whatever interval it asked
    /// for: the latest host reading, re-stamped, with the server's own
    /// counters read afresh. Off by default; only the operator sets it
    /// (clients can ask for slower samples, never faster ones).
    #[arg(long, env = "HEARTLINE_METRICS_LOAD_RATE",
        value_parser = clap::value_parser!(u32).range(1..=MAX_METRICS_LOAD_RATE as i64))]
    pub metrics_load_rate: Option<u32>,

    /// Largest accepted WebSocket message, bytes; bigger ones close with 1009.
    #[arg(long, env = "HEARTLINE_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Sustained frames per second allowed per connection (token bucket rate).
    #[arg(long, env = "HEARTLINE_RATE", default_value_t = 50.0)]
    pub rate: f64,

    /// Frames a connection may send in a burst (token bucket capacity). More
    /// than this many refusals in a row close the connection with 4002.
    #[arg(long, env = "HEARTLINE_BURST", default_value_t = 100)]
    pub burst: u32,

    /// Open WebSocket connections allowed from one IP address.
    #[arg(long, env = "HEARTLINE_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// Open WebSocket connections allowed in total.
    #[arg(long, env = "HEARTLINE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Rooms that may exist, the default ones included.
    #[arg(long, env = "HEARTLINE_MAX_ROOMS", default_value_t = 100)]
    pub max_rooms: usize,

    /// A room other than the --rooms ones that has had no member and no
    /// activity for this long expires, ms; 0 never.
    #[arg(long, env = "HEARTLINE_ROOM_EXPIRY_MS", default_value_t = 86_400_000)]
    pub room_expiry_ms: u64,

    /// Keep the history of expired rooms: joining the name again continues
    /// the same stream. Without it the history is deleted and the room
    /// starts over with a new epoch.
    #[arg(long, env = "HEARTLINE_KEEP_EXPIRED_HISTORY")]
    pub keep_expired_history: bool,

    /// New rooms one user may create per minute (as many at once).
    #[arg(
        long,
        env = "HEARTLINE_ROOM_CREATIONS_PER_MINUTE",
        default_value_t = 10
    )]
    pub room_creations_per_minute: u32,

    /// An anonymous user (token) not seen in a `hello` for this long, with no
    /// stored message and not connected, is deleted, ms; 0 never. Its token
    /// is then taken as a new identity.
    #[arg(
        long,
        env = "HEARTLINE_USER_EXPIRY_MS",
        default_value_t = 2_592_000_000
    )]
    pub user_expiry_ms: u64,

    /// Frames queued for one client before it counts as too slow and is
    /// dropped (so it never stalls a room).
    #[arg(long, env = "HEARTLINE_SEND_QUEUE", default_value_t = 512)]
    pub send_queue: usize,

    /// Messages replayed on `join` without `since`.
    #[arg(long, env = "HEARTLINE_HISTORY_RECENT", default_value_t = 50)]
    pub history_recent: usize,

    /// Most messages replayed on `join` with `since` (the oldest missed first).
    #[arg(long, env = "HEARTLINE_HISTORY_MAX", default_value_t = 1_000)]
    pub history_max: usize,

    /// On shutdown, how long to wait for clients to close, ms.
    #[arg(long, env = "HEARTLINE_SHUTDOWN_GRACE_MS", default_value_t = 3_000)]
    pub shutdown_grace_ms: u64,

    /// Long-poll fallback (`/poll`): how long a `recv` with nothing to
    /// answer is held before it is answered empty, ms.
    #[arg(long, env = "HEARTLINE_POLL_HOLD_MS", default_value_t = 25_000)]
    pub poll_hold_ms: u64,

    /// Long-poll fallback: largest `send` body, bytes; bigger ones are
    /// refused with 413. Default: 64 × --max-frame-bytes.
    #[arg(long, env = "HEARTLINE_POLL_MAX_BODY_BYTES")]
    pub poll_max_body_bytes: Option<usize>,

    /// Threads that run connections (tokio worker threads). Default: one
    /// per core. On 2 cores shared with a load generator, 1 thread gave
    /// about the same p99 up to 2.5M deliveries/s and gave out at 3.5M,
    /// where 2 held (BENCHMARKS.md, issue 15), so the default stays one per
    /// core; fewer leave cores to other processes on a shared machine.
    #[arg(long, env = "HEARTLINE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        // Not `Config::parse_from([])`: that would read HEARTLINE_* from the
        // environment. A unit test checks these match the flags' defaults.
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            db: "heartline.db".into(),
            bus: None,
            bus_prefix: "heartline".into(),
            dist: PathBuf::from("dist"),
            ready_file: None,
            allowed_origins: None,
            rooms: vec!["lobby".into(), "random".into(), "help".into()],
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            header_timeout_ms: 10_000,
            max_pending_per_ip: 32,
            metrics_interval_ms: 1_000,
            metrics_load_rate: None,
            max_frame_bytes: 64 * 1024,
            rate: 50.0,
            burst: 100,
            max_connections_per_ip: 64,
            max_connections: 10_000,
            max_rooms: 100,
            room_expiry_ms: 86_400_000,
            keep_expired_history: false,
            room_creations_per_minute: 10,
            user_expiry_ms: 2_592_000_000,
            send_queue: 512,
            history_recent: 50,
            history_max: 1_000,
            shutdown_grace_ms: 3_000,
            poll_hold_ms: 25_000,
            poll_max_body_bytes: None,
            workers: None,
        }
    }
}

impl Config {
    /// A configuration for tests: an in-memory database, port 0 and short
    /// intervals.
    pub fn for_tests() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: ":memory:".into(),
            ping_interval_ms: 200,
            idle_timeout_ms: 2_000,
            metrics_interval_ms: 100,
            shutdown_grace_ms: 1_000,
            poll_hold_ms: 1_000,
            ..Config::default()
        }
    }

    /// Ping interval, at least 10 ms.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(10))
    }

    /// Idle timeout, at least 10 ms.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(10))
    }

    /// Deadline for an HTTP request head, at least 10 ms.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(10))
    }

    /// How long an empty room stays idle before it expires; `None`: never.
    pub fn room_expiry(&self) -> Option<Duration> {
        (self.room_expiry_ms > 0).then(|| Duration::from_millis(self.room_expiry_ms))
    }

    /// How long an unseen user is kept; `None`: forever.
    pub fn user_expiry(&self) -> Option<Duration> {
        (self.user_expiry_ms > 0).then(|| Duration::from_millis(self.user_expiry_ms))
    }

    /// Metrics interval, at least 50 ms (sampling costs a few /proc reads).
    pub fn metrics_interval(&self) -> Duration {
        Duration::from_millis(self.metrics_interval_ms.max(50))
    }

    /// How long a long-poll `recv` is held, at least 10 ms.
    pub fn poll_hold(&self) -> Duration {
        Duration::from_millis(self.poll_hold_ms.max(10))
    }

    /// Largest long-poll `send` body, bytes: `--poll-max-body-bytes`, or
    /// 64 frames of the largest size (at least 1 KiB).
    pub fn poll_max_body_bytes(&self) -> usize {
        self.poll_max_body_bytes
            .unwrap_or_else(|| self.max_frame_bytes.max(1024).saturating_mul(64))
            .max(1024)
    }

    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Which `Origin` headers may open `/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    rules: Vec<OriginRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Any,
    Exact(String),
    /// `scheme://host:` — any port after it.
    AnyPort(String),
}

impl OriginPolicy {
    /// Builds the policy from explicit entries, or, when `entries` is `None`,
    /// the default: the server's own origins for `local` plus trunk's dev
    /// server on port 8080.
    ///
    /// ```
    /// use heartline_server::config::OriginPolicy;
    /// let p = OriginPolicy::new(Some(&["http://127.0.0.1:*".to_string()]), "127.0.0.1:1".parse().unwrap());
    /// assert!(p.allows("http://127.0.0.1:5173"));
    /// assert!(!p.allows("http://evil.example"));
    /// ```
    pub fn new(entries: Option<&[String]>, local: SocketAddr) -> Self {
        let entries: Vec<String> = match entries {
            Some(list) => list.to_vec(),
            None => {
                let port = local.port();
                let mut list = vec![
                    format!("http://{local}"),
                    format!("http://localhost:{port}"),
                    format!("http://127.0.0.1:{port}"),
                    format!("http://[::1]:{port}"),
                    "http://127.0.0.1:8080".to_string(),
                    "http://localhost:8080".to_string(),
                ];
                list.dedup();
                list
            }
        };
        let rules = entries
            .iter()
            .map(|e| normalize(e))
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e == "*" {
                    OriginRule::Any
                } else if let Some(prefix) = e.strip_suffix('*') {
                    OriginRule::AnyPort(prefix.to_string())
                } else {
                    OriginRule::Exact(e)
                }
            })
            .collect();
        OriginPolicy { rules }
    }

    /// Whether a browser page of this origin may connect.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = normalize(origin);
        self.rules.iter().any(|rule| match rule {
            OriginRule::Any => true,
            OriginRule::Exact(o) => *o == origin,
            OriginRule::AnyPort(prefix) => origin
                .strip_prefix(prefix.as_str())
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
        })
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults_match_the_flags() {
        let parsed = Config::try_parse_from(["heartline-server"]).unwrap();
        let d = Config::default();
        // The flags' environment variables could change `parsed`; only
        // compare when none is set (others, like HEARTLINE_TEST_PG_URL,
        // don't matter).
        let command = <Config as clap::CommandFactory>::command();
        if command
            .get_arguments()
            .filter_map(|a| a.get_env())
            .any(|name| std::env::var_os(name).is_some())
        {
            return;
        }
        assert_eq!(format!("{parsed:?}"), format!("{d:?}"));
    }

    #[test]
    fn flags_parse() {
        let c = Config::try_parse_from([
            "heartline-server",
            "--addr",
            "127.0.0.1:0",
            "--allowed-origins",
            "http://a:1,http://b:*",
            "--rate",
            "5",
        ])
        .unwrap();
        assert_eq!(c.addr.port(), 0);
        assert_eq!(
            c.allowed_origins,
            Some(vec!["http://a:1".to_string(), "http://b:*".to_string()])
        );
        assert_eq!(c.rate, 5.0);
    }

    #[test]
    fn workers_take_one_to_1024_threads() {
        let parse = |n: &str| Config::try_parse_from(["heartline-server", "--workers", n]);
        assert_eq!(parse("1").unwrap().workers, Some(1));
        assert_eq!(parse("1024").unwrap().workers, Some(1024));
        for bad in ["0", "1025", "-1", "two"] {
            assert!(parse(bad).is_err(), "--workers {bad}");
        }
    }

    #[test]
    fn default_origins_are_own_and_trunk() {
        let p = OriginPolicy::new(None, "127.0.0.1:4000".parse().unwrap());
        assert!(p.allows("http://127.0.0.1:4000"));
        assert!(p.allows("http://localhost:4000"));
        assert!(p.allows("http://LOCALHOST:4000/"));
        assert!(p.allows("http://127.0.0.1:8080"));
        assert!(p.allows("http://localhost:8080"));
        assert!(!p.allows("http://127.0.0.1:4001"));
        assert!(!p.allows("https://evil.example"));
        assert!(!p.allows("null"));
    }

    #[test]
    fn wildcards() {
        let any = OriginPolicy::new(Some(&["*".to_string()]), "127.0.0.1:1".parse().unwrap());
        assert!(any.allows("http://whatever:9"));
        let port = OriginPolicy::new(
            Some(&["http://127.0.0.1:*".to_string()]),
            "127.0.0.1:1".parse().unwrap(),
        );
        assert!(port.allows("http://127.0.0.1:1234"));
        assert!(!port.allows("http://127.0.0.1:"));
        assert!(!port.allows("http://127.0.0.1:12.evil"));
        assert!(!port.allows("http://127.0.0.10:80"));
    }
}
