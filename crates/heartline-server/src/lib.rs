//! The Heartline demo server: one port with `/ws` (chat with SQLite history,
//! live host metrics, a hardened WebSocket endpoint), its HTTP long-poll
//! fallback under `/poll` ([`poll`]), `/healthz` and the built single-page
//! app.
//!
//! Tests and embedders mount [`app`] on any listener; [`serve`] adds what
//! the binary does around it (connection addresses, graceful shutdown).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use heartline_server::{AppState, config::Config, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let state = AppState::new(Config::for_tests(), listener.local_addr()?).await?;
//! serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod accept;
pub mod bus;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod directory;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod peer;
pub mod poll;
mod session;
pub mod state;
pub mod static_files;
pub mod store;
pub mod sync;
pub mod transport;

use std::future::Future;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use state::{AppState, StartError};

/// The whole HTTP surface: `/ws`, `/poll/*`, `/healthz` and the SPA from
/// `dist/`.
///
/// Connection limits per IP need the peer address: serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or with [`serve`],
/// which also bounds the HTTP phase (header timeout, per-IP cap).
pub fn app(state: AppState) -> Router {
    let spa = static_files::router(&state.config().dist);
    Router::new()
        .route("/ws", get(transport::ws_handler))
        .route("/healthz", get(healthz))
        .merge(poll::router(&state))
        .with_state(state)
        .fallback_service(spa)
        .layer(TraceLayer::new_for_http())
}

/// Counts only, no user data: readable from any origin, so a dashboard or a
/// browser test on another origin can poll it.
async fn healthz(
    State(state): State<AppState>,
) -> (
    [(axum::http::HeaderName, &'static str); 1],
    Json<serde_json::Value>,
) {
    let cors = [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    (
        cors,
        Json(json!({
            "status": if state.is_shutting_down() { "shutting_down" } else { "ok" },
            "connections": state.open_connections(),
            "poll_sessions": state.poll_sessions(),
            "poll_recvs": state.poll_recvs(),
            "http_connections": state.pending().open(),
            "rooms": state.hub().room_count(),
            "metrics_sampling": state.metrics().is_sampling(),
            "metrics_subscribers": state.metrics().subscriber_count(),
            "metrics_samples": state.metrics().samples_taken(),
            "uptime_secs": state.uptime().as_secs(),
            // A cluster's bus: counters and whether the link is up.
            "bus": state.bus().map(|bus| bus.stats()),
        })),
    )
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then shuts down
/// gracefully: stops accepting, closes every WebSocket and poll session
/// with 1001, waits up
/// to the configured grace for them to go, and checkpoints the database.
///
/// Before its upgrade a connection must send each request head within
/// `--header-timeout-ms`, and one IP address may hold at most
/// `--max-pending-per-ip` such connections (see the `accept` module).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    accept::serve_http(listener, app(state.clone()), state.clone(), shutdown).await;
    // Upgraded connections are no longer hyper's: wait for them here.
    if !state
        .wait_connections_closed(state.config().shutdown_grace())
        .await
    {
        tracing::warn!(
            open = state.open_connections(),
            "connections still open after the grace period"
        );
    }
    if let Some(bus) = state.bus() {
        // Tells the other processes to forget our presence now.
        bus.close(Duration::from_secs(1)).await;
    }
    match store::ChatStore::checkpoint(state.store()).await {
        Ok(()) => tracing::info!("database flushed"),
        Err(e) => tracing::error!(error = %e, "database flush failed"),
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
