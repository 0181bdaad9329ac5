//! `/poll`: the HTTP long-poll fallback, for networks that refuse the
//! WebSocket upgrade but pass plain HTTP.
//!
//! The wire format is [`heartline::core::poll`] (the drivers' side of the
//! same contract); this module is only its server transport. A poll
//! session is one connection, exactly like a socket: it gets a [`Peer`]
//! and a `Session` (`session.rs`), so rooms, presence, typing, acks and errors are the
//! same as on `/ws`, and a poll client and a socket client in one room see
//! each other. What differs is how frames move:
//!
//! - `POST /poll/open` admits a session (the `/ws` Origin check and
//!   connection limits; the limiter's place is held as long as the session
//!   is), and answers [`PollOpened`](heartline::core::poll::PollOpened). Its first frame is `limits`, as on a
//!   socket.
//! - `POST /poll/send?session=S`: the body is a frame array
//!   ([`decode_frames`](heartline::core::poll::decode_frames)). Each frame takes a token of the same rate limit as
//!   a socket's frame (`transport::Admission`), then goes to `Session::on_text`, in
//!   order; the sends of one session are handled one at a time. `204`.
//! - `GET /poll/recv?session=S&after=N`: acknowledges (drops) the frames up
//!   to `N` and answers a [`PollBatch`](heartline::core::poll::PollBatch) of those above it (at most
//!   [`MAX_RECV_FRAMES`]), holding the request up to `--poll-hold-ms` while
//!   there are none. A newer `recv` answers a held older one at once
//!   (empty). Once the server closed the session, the batch that empties
//!   the buffer carries the close code and reason, and the session is gone.
//! - `POST /poll/close?session=S`: ends the session at once. `204`.
//!
//! Each session has one task (its *pump*, `PollSession::run`) that moves
//! the peer's queued frames into a numbered buffer, the way a socket's send
//! loop writes them. The buffer keeps what the client has not acknowledged,
//! up to `--send-queue` queue slots (a `Batch`, e.g. a join's history,
//! takes one slot as on a socket); a client that does not poll while it
//! overflows is closed as too slow (1008). The pump also ends the session
//! when the client stops polling: with no `recv` in progress and the last
//! one over for `--idle-timeout-ms`, the session expires. Shutting down
//! closes every session with 1001 (a held `recv` gets the close).
//!
//! When a session ends, its connection's cleanup runs once (leave every
//! room with a presence change, unsubscribe metrics and the directory, the
//! `connections` counter) — as at the end of a socket's `run`. A session
//! closed by the server (auth refusal, rate limit, too slow) stays listed,
//! holding its limiter place, until a `recv` has fetched its last frames
//! and close, or it expires.
//!
//! Every refusal is a 4xx/5xx with a [`PollError`](heartline::core::poll::PollError) JSON body; see
//! `crates/heartline-server/README.md` for the table.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{any, get, post};
use heartline::core::poll::PollClose;
use heartline_protocol::close_code;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::limits::ConnectionGuard;
use crate::peer::{CloseReason, Outbound, Peer};
use crate::session::Session;
use crate::state::AppState;
use crate::transport::Admission;

mod buffer;
mod handlers;

use buffer::Buffer;
pub use buffer::MAX_RECV_FRAMES;
use handlers::{close, no_such_endpoint, open, recv, send};

/// The `/poll` routes, with CORS for the origins `/ws` accepts (the app may
/// be served from another origin than the server) and the body limit of
/// `send`.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let origins = state.origins().clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _parts| {
                origin.to_str().is_ok_and(|origin| origins.allows(origin))
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/poll/open", post(open))
        .route("/poll/send", post(send))
        .route("/poll/recv", get(recv))
        .route("/poll/close", post(close))
        .route("/poll/{*rest}", any(no_such_endpoint))
        .layer(DefaultBodyLimit::max(state.config().poll_max_body_bytes()))
        .layer(cors)
}

/// The open poll sessions, by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<String, Arc<PollSession>>>,
}

impl Registry {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<PollSession>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions listed now (`poll_sessions` in `/healthz`).
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// `recv`s held or being answered now, over all sessions.
    pub(crate) fn recvs_in_progress(&self) -> usize {
        let sessions: Vec<Arc<PollSession>> = self.map().values().cloned().collect();
        sessions.iter().map(|s| s.buffer().receiving).sum()
    }

    fn get(&self, id: &str) -> Option<Arc<PollSession>> {
        self.map().get(id).cloned()
    }

    /// Lists a new session; `false` if the id is taken (never, in practice).
    fn insert(&self, session: Arc<PollSession>) -> bool {
        match self.map().entry(session.id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(session);
                true
            }
        }
    }

    /// Unlists a session: its id is unknown from now on, its limiter place
    /// is freed and its pump stops.
    fn remove(&self, id: &str) {
        let removed = self.map().remove(id);
        if let Some(session) = removed {
            session.buffer().removed = true;
            session
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            session.bump();
        }
    }
}

/// One poll session: a connection whose frames travel over HTTP.
#[derive(Debug)]
pub(crate) struct PollSession {
    id: String,
    peer: Peer,
    /// The protocol state and the rate limit; `None` once the connection
    /// ended. A `send` holds it while it hands its frames over, so the
    /// sends of one session are handled one at a time.
    core: tokio::sync::Mutex<Option<Core>>,
    buffer: Mutex<Buffer>,
    /// Bumped on every change a held `recv` or the pump waits for.
    changes: watch::Sender<u64>,
    /// The session's place under the connection limits, until it is
    /// unlisted.
    guard: Mutex<Option<ConnectionGuard>>,
}

#[derive(Debug)]
struct Core {
    session: Session,
    admission: Admission,
}

/// What woke the pump.
enum Event {
    Control(bool),
    Shutdown,
    Out(Option<Outbound>),
    IdleCheck,
    Changed,
}

impl PollSession {
    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// When the session expires if nothing changes: never while a `recv`
    /// is in progress (checked again an idle timeout later), else an idle
    /// timeout after the last `recv` ended. `None`: it has expired.
    fn idle_at(&self, timeout: std::time::Duration) -> Option<Instant> {
        let now = Instant::now();
        let buffer = self.buffer();
        if buffer.receiving > 0 {
            return Some(now + timeout);
        }
        let at = buffer.last_recv_end + timeout;
        (at > now).then_some(at)
    }

    /// The session's pump: moves what the peer queues into the buffer until
    /// the connection ends, ends it (cleanup), then waits until it is
    /// unlisted (its last frames fetched, expired, or shutdown).
    async fn run(
        self: Arc<Self>,
        state: AppState,
        mut rx: mpsc::Receiver<Outbound>,
        mut ctl: watch::Receiver<Option<CloseReason>>,
    ) {
        let timeout = state.config().idle_timeout();
        let mut shutdown = state.shutdown_signal();
        let idle = tokio::time::sleep_until(self.idle_at(timeout).unwrap_or_else(Instant::now));
        tokio::pin!(idle);
        let (reason, unlist) = loop {
            let event = tokio::select! {
                biased;
                changed = ctl.changed() => Event::Control(changed.is_ok()),
                _ = shutdown.wait_for(|down| *down) => Event::Shutdown,
                out = rx.recv() => Event::Out(out),
                () = &mut idle => Event::IdleCheck,
            };
            match event {
                Event::Control(true) => {
                    if let Some(reason) = ctl.borrow_and_update().clone() {
                        break (reason, false);
                    }
                }
                Event::Control(false) | Event::Out(None) | Event::Changed => {
                    break (CloseReason::new(1000, ""), false);
                }
                Event::Shutdown => break (CloseReason::new(1001, "server shutting down"), true),
                Event::Out(Some(out)) => {
                    let appended = self.buffer().append(out, true);
                    if appended {
                        self.bump();
                    } else {
                        // Seen by the Control branch next.
                        tracing::debug!(conn = self.peer.id, "poll session too slow");
                        self.peer.close(CloseReason::too_slow());
                    }
                }
                Event::IdleCheck => match self.idle_at(timeout) {
                    Some(at) => idle.as_mut().reset(at),
                    None => {
                        tracing::debug!(conn = self.peer.id, ?timeout, "poll session expired");
                        let reason = CloseReason::new(close_code::IDLE_TIMEOUT, "idle timeout");
                        break (reason, true);
                    }
                },
            }
        };
        // Whatever was queued before the close (acks, the refusal) goes
        // first; then nothing more is taken (a reply waiting for room in
        // the queue fails at once instead of waiting for us).
        self.peer.close(reason.clone());
        {
            let mut buffer = self.buffer();
            while let Ok(out) = rx.try_recv() {
                buffer.append(out, false);
            }
            buffer.close.get_or_insert(PollClose {
                code: reason.code,
                reason: reason.reason.clone(),
            });
        }
        drop(rx);
        self.bump();
        tracing::debug!(conn = self.peer.id, code = reason.code, reason = %reason.reason, "poll session closed");
        self.end(&state).await;
        if unlist {
            state.poll().remove(&self.id);
            return;
        }
        // Closed by the server: kept until a recv fetched the close.
        let mut changes = self.changes.subscribe();
        loop {
            if self.buffer().removed {
                return;
            }
            let event = tokio::select! {
                _ = changes.changed() => Event::Changed,
                _ = shutdown.wait_for(|down| *down) => Event::Shutdown,
                () = &mut idle => Event::IdleCheck,
            };
            match event {
                Event::IdleCheck => match self.idle_at(timeout) {
                    Some(at) => idle.as_mut().reset(at),
                    None => break,
                },
                Event::Shutdown => break,
                _ => {}
            }
        }
        state.poll().remove(&self.id);
    }

    /// The end of the connection, once: drops the protocol session (after
    /// a `send` in progress stopped), leaves its rooms (with a presence
    /// change), unsubscribes metrics and the directory, counts it closed.
    /// The same cleanup as at the end of a socket's `run`.
    async fn end(&self, state: &AppState) {
        let mut core = self.core.lock().await;
        let Some(ended) = core.take() else {
            return;
        };
        drop(ended);
        let conn_id = self.peer.id;
        for room in state.hub().leave_all(conn_id) {
            state.hub().presence_changed(&room, None);
        }
        state.metrics().unsubscribe(conn_id);
        state.directory().unsubscribe(conn_id);
        state.counters().connections.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(conn_id, "poll session ended");
    }
}

/// A `recv` in progress: the session does not expire meanwhile. Dropped
/// when it is answered or the client went away.
struct Receiving<'a>(&'a PollSession);

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        let mut buffer = self.0.buffer();
        buffer.receiving = buffer.receiving.saturating_sub(1);
        buffer.last_recv_end = Instant::now();
    }
}
