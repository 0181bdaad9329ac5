//! The accept loop: HTTP/1.1 with hyper, so a connection's life before its
//! WebSocket upgrade is bounded.
//!
//! `axum::serve` has no deadline for the request head: a client that opens a
//! connection and never finishes its headers holds a file descriptor
//! forever, and enough of them lock everyone out. Here:
//!
//! - every request head must arrive within `--header-timeout-ms` (on a new
//!   connection, and between requests on a kept-alive one), else the
//!   connection is closed;
//! - one IP address may hold at most `--max-pending-per-ip` connections
//!   that have not upgraded; beyond that a new one gets a bare 503 and is
//!   closed at once, before any read. Upgraded sockets count separately
//!   (`--max-connections-per-ip`).
//!
//! Each request carries [`ConnectInfo<SocketAddr>`] like axum's
//! `into_make_service_with_connect_info` does.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use crate::limits::ConnectionGuard;
use crate::state::AppState;

/// What a connection over the per-IP pending cap is told before it is closed.
const OVER_CAP_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Pause after an accept error that is not about one connection (e.g. out
/// of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections and serves `router` on them until `shutdown`
/// resolves; then stops accepting, asks every HTTP connection to finish its
/// request and waits up to the shutdown grace for them. Upgraded WebSockets
/// are not waited for here.
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config().header_timeout());
    let (closing_tx, closing) = watch::channel(false);
    // Every connection task holds a sender: `recv` returns `None` once all
    // of them are done.
    let (done_tx, mut all_done) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(guard) = state.pending().admit(Some(remote.ip())) else {
            tracing::warn!(ip = %remote.ip(), "refused: too many HTTP connections from this address");
            // Never waits: a client that does not read just misses it.
            let _ = tcp.try_write(OVER_CAP_RESPONSE);
            continue;
        };
        let conn = Conn {
            builder: builder.clone(),
            router: router.clone(),
            closing: closing.clone(),
            _pending: guard,
            _done: done_tx.clone(),
        };
        tokio::spawn(conn.serve(tcp, remote));
    }
    drop(listener);
    tracing::info!("shutting down: closing connections");
    state.begin_shutdown();
    closing_tx.send_replace(true);
    drop(done_tx);
    let grace = state.config().shutdown_grace();
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        tracing::warn!(
            open = state.pending().open(),
            "HTTP connections still open after the grace period"
        );
    }
}

/// One accepted connection, until it upgrades or closes.
struct Conn {
    builder: http1::Builder,
    router: Router,
    closing: watch::Receiver<bool>,
    /// Its place under the per-IP pending cap, freed when the HTTP phase
    /// ends (the upgrade hands the socket over).
    _pending: ConnectionGuard,
    _done: mpsc::Sender<()>,
}

impl Conn {
    async fn serve(mut self, tcp: TcpStream, remote: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(req)
        });
        let conn = self
            .builder
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        tokio::pin!(conn);
        // The guard `wait_for` returns is not `Send`: drop it inside.
        let closing = async {
            let _ = self.closing.wait_for(|closing| *closing).await;
        };
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = closing => {
                // Finish the request in flight, take no other.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            // Header timeouts, resets, malformed requests: the client's
            // business, not an error of ours.
            tracing::debug!(%remote, error = %e, "HTTP connection ended");
        }
    }
}

/// Errors about one connection that came and went, not about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
