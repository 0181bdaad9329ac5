//! `heartline-server`: the demo server binary. See `--help`.

use std::io::IsTerminal;
use std::path::Path;

use clap::Parser;
use heartline_server::{AppState, config::Config, serve};
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // `--workers`; else tokio's own default (TOKIO_WORKER_THREADS, or one
    // thread per core).
    if let Some(workers) = config.workers {
        runtime.worker_threads(usize::from(workers));
    }
    runtime.build()?.block_on(run(config))
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        .init();

    if config.idle_timeout_ms <= config.ping_interval_ms {
        // Browsers only answer Pings: with no Ping before the timeout, an
        // idle but healthy tab would be dropped.
        tracing::warn!(
            idle_timeout_ms = config.idle_timeout_ms,
            ping_interval_ms = config.ping_interval_ms,
            "the idle timeout should be longer than the ping interval"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    if !config.dist.join("index.html").is_file() {
        tracing::warn!(dist = %config.dist.display(), "no index.html: the app is not built");
    }
    let ready_file = config.ready_file.clone();
    let state = AppState::new(config, addr).await?;
    tracing::info!(%addr, "listening");
    if let Some(path) = ready_file {
        write_ready_file(&path, &addr.to_string())?;
    }
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Writes then renames, so a reader never sees a half-written address.
fn write_ready_file(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT"),
        _ = terminate => tracing::info!("SIGTERM"),
    }
}
