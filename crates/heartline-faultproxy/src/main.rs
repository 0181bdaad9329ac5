//! `heartline-faultproxy`: run the fault-injecting loopback proxy from the
//! command line. See the library documentation for the modes and the control
//! API.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use heartline_faultproxy::{Config, Proxy};
use tracing_subscriber::EnvFilter;

/// A fault-injecting TCP proxy for tests: forwards loopback TCP to an upstream
/// server and lets a control API cut, stall (half-open) or delay the link.
#[derive(Debug, Parser)]
#[command(name = "heartline-faultproxy", version, about)]
struct Cli {
    /// Address clients connect to (loopback only; port 0 picks a free port).
    #[arg(long, env = "HEARTLINE_PROXY_LISTEN", default_value = "127.0.0.1:0", value_parser = parse_addr)]
    listen: SocketAddr,

    /// Server to forward to, e.g. 127.0.0.1:3000 (loopback only).
    #[arg(long, env = "HEARTLINE_PROXY_UPSTREAM", value_parser = parse_addr)]
    upstream: SocketAddr,

    /// Address of the HTTP control API (loopback only; port 0 picks a free port).
    #[arg(long, env = "HEARTLINE_PROXY_CONTROL", default_value = "127.0.0.1:0", value_parser = parse_addr)]
    control: SocketAddr,

    /// Once both listeners are bound, write
    /// {"listen":"127.0.0.1:P1","control":"127.0.0.1:P2"} and a newline to
    /// this file, atomically (temporary file, then rename). Removed on a clean exit.
    #[arg(long, env = "HEARTLINE_PROXY_READY_FILE")]
    ready_file: Option<PathBuf>,
}

/// Parses `IP:PORT`, also taking `localhost:PORT` as `127.0.0.1:PORT`.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in {text:?}"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("expected IP:PORT (e.g. 127.0.0.1:3000), got {text:?}"))
}

/// Writes `line` to `path` through a temporary file in the same directory, so
/// a reader sees either no file or the whole line.
fn write_ready_file(path: &Path, line: &str) -> std::io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::other(
            "the ready file path has no file name",
        ));
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, format!("{line}\n"))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Waits for Ctrl-C or, on Unix, SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let cli = Cli::parse();
    let config = Config {
        listen: cli.listen,
        upstream: cli.upstream,
        control: cli.control,
    };
    let proxy = match Proxy::start(config).await {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("heartline-faultproxy: {error}");
            return ExitCode::from(2);
        }
    };

    let line = proxy.ready_line();
    if let Some(path) = &cli.ready_file
        && let Err(error) = write_ready_file(path, &line)
    {
        eprintln!(
            "heartline-faultproxy: cannot write the ready file {}: {error}",
            path.display()
        );
        proxy.shutdown().await;
        return ExitCode::FAILURE;
    }
    println!("{line}");

    stop_signal().await;
    proxy.shutdown().await;
    if let Some(path) = &cli.ready_file {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::SUCCESS
}
