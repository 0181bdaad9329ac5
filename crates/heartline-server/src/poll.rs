//! `/poll`: the HTTP long-poll fallback, for networks that refuse the
//! WebSocket upgrade but pass plain HTTP.
//!
//! The wire format is [`heartline::core::poll`] (the drivers' side of the
//! same contract); this module is only its server transport. A poll
//! session is one connection, exactly like a socket: it gets a [`Peer`]
//! and a [`Session`], so rooms, presence, typing, acks and errors are the
//! same as on `/ws`, and a poll client and a socket client in one room see
//! each other. What differs is how frames move:
//!
//! - `POST /poll/open` admits a session (the `/ws` Origin check and
//!   connection limits; the limiter's place is held as long as the session
//!   is), and answers [`PollOpened`]. Its first frame is `limits`, as on a
//!   socket.
//! - `POST /poll/send?session=S`: the body is a frame array
//!   ([`decode_frames`]). Each frame takes a token of the same rate limit as
//!   a socket's frame ([`Admission`]), then goes to [`Session::on_text`], in
//!   order; the sends of one session are handled one at a time. `204`.
//! - `GET /poll/recv?session=S&after=N`: acknowledges (drops) the frames up
//!   to `N` and answers a [`PollBatch`] of those above it (at most
//!   [`MAX_RECV_FRAMES`]), holding the request up to `--poll-hold-ms` while
//!   there are none. A newer `recv` answers a held older one at once
//!   (empty). Once the server closed the session, the batch that empties
//!   the buffer carries the close code and reason, and the session is gone.
//! - `POST /poll/close?session=S`: ends the session at once. `204`.
//!
//! Each session has one task (its *pump*, [`PollSession::run`]) that moves
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
//! Every refusal is a 4xx/5xx with a [`PollError`] JSON body; see
//! `crates/heartline-server/README.md` for the table.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::ws::Utf8Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use heartline::core::poll::{
    PollBatch, PollClose, PollError, PollOpened, decode_frames, error_code,
};
use heartline_protocol::close_code;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::limits::{ConnectionGuard, Refusal};
use crate::peer::{CloseReason, Outbound, Peer};
use crate::session::Session;
use crate::state::AppState;
use crate::transport::{Admission, limits_frame, max_frame_bytes, origin_allowed};

/// Most frames in one `recv` answer; the rest come with the next one.
pub const MAX_RECV_FRAMES: usize = 256;

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

/// The frames the client has not acknowledged, numbered from 1.
#[derive(Debug)]
struct Buffer {
    frames: VecDeque<Retained>,
    /// The number of `frames[0]` (of the next frame when empty).
    first: u64,
    /// Queue slots the retained frames take.
    slots: usize,
    /// Most slots retained before the session is too slow.
    capacity: usize,
    /// The highest frame number answered so far (for `frames_out`).
    delivered: u64,
    /// Set once the connection ended: the close the last batch carries.
    close: Option<PollClose>,
    /// The newest `recv`: an older held one sees it changed and answers.
    recv_generation: u64,
    /// `recv`s in progress (a session with one never expires).
    receiving: usize,
    /// When the last `recv` ended (or the session opened).
    last_recv_end: Instant,
    /// Unlisted: the pump stops.
    removed: bool,
}

#[derive(Debug)]
struct Retained {
    text: Utf8Bytes,
    /// 1 for the first frame of a queue slot, 0 for the others of a batch.
    slots: usize,
}

/// The `after` of a `recv` names a frame that was never sent.
#[derive(Debug)]
struct AfterTooLarge;

impl Buffer {
    fn new(capacity: usize) -> Self {
        Buffer {
            frames: VecDeque::new(),
            first: 1,
            slots: 0,
            capacity,
            delivered: 0,
            close: None,
            recv_generation: 0,
            receiving: 0,
            last_recv_end: Instant::now(),
            removed: false,
        }
    }

    /// The number the next frame gets.
    fn next(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Appends a queue slot's frames; `false` (nothing appended) when the
    /// buffer is full and `bounded`.
    fn append(&mut self, out: Outbound, bounded: bool) -> bool {
        if bounded && self.slots >= self.capacity {
            return false;
        }
        let texts = match out {
            Outbound::Text(text) => vec![text],
            Outbound::Batch(texts) => texts,
        };
        for (index, text) in texts.into_iter().enumerate() {
            let slots = usize::from(index == 0);
            self.slots += slots;
            self.frames.push_back(Retained { text, slots });
        }
        true
    }

    /// Drops the frames up to `after`.
    fn ack(&mut self, after: u64) -> Result<(), AfterTooLarge> {
        if after >= self.next() {
            return Err(AfterTooLarge);
        }
        while self.first <= after {
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            self.slots = self.slots.saturating_sub(frame.slots);
            self.first += 1;
        }
        Ok(())
    }

    /// Whether a `recv` after `after` has something to answer now.
    fn ready(&self, after: u64) -> bool {
        after.saturating_add(1).max(self.first) < self.next() || self.close.is_some()
    }

    /// The frames above `after` (at most [`MAX_RECV_FRAMES`]), and the
    /// close when they are the last ones.
    fn answer(&mut self, after: u64) -> (u64, Vec<Utf8Bytes>, Option<PollClose>) {
        let start = after.saturating_add(1).max(self.first);
        let skip = usize::try_from(start - self.first).unwrap_or(usize::MAX);
        let frames: Vec<Utf8Bytes> = self
            .frames
            .iter()
            .skip(skip)
            .take(MAX_RECV_FRAMES)
            .map(|frame| frame.text.clone())
            .collect();
        let end = start + frames.len() as u64;
        let close = if end == self.next() {
            self.close.clone()
        } else {
            None
        };
        (start, frames, close)
    }
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

// ---------------------------------------------------------------------------
// Handlers.

/// A refusal: the status and a [`PollError`] body.
fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = PollError::new(code, message).to_json();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn unknown_session() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        error_code::UNKNOWN_SESSION,
        "no such session (it expired or was closed)",
    )
}

fn bad_query(rejection: &QueryRejection) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        error_code::BAD_REQUEST,
        format!("bad query: {}", rejection.body_text()),
    )
}

/// The refusal of a request whose `Origin` `/ws` would refuse, if it is one.
fn origin_refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    if origin_allowed(state, headers) {
        return None;
    }
    tracing::warn!(origin = ?headers.get(header::ORIGIN), "poll refused: origin not allowed");
    Some(refusal(
        StatusCode::FORBIDDEN,
        error_code::ORIGIN_NOT_ALLOWED,
        "origin not allowed",
    ))
}

/// `?session=S`.
#[derive(Debug, Deserialize)]
struct SessionQuery {
    session: String,
}

/// `?session=S&after=N` (`after` 0 when absent).
#[derive(Debug, Deserialize)]
struct RecvQuery {
    session: String,
    #[serde(default)]
    after: u64,
}

/// A new session id: 128 bits of OS randomness, as hex.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `POST /poll/open`.
async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if let Some(refused) = origin_refusal(&state, &headers) {
        return refused;
    }
    if state.is_shutting_down() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::SHUTTING_DOWN,
            "the server is shutting down",
        );
    }
    let ip = connect_info.map(|Extension(ConnectInfo(addr))| addr.ip());
    let guard = match state.limiter().admit(ip) {
        Ok(guard) => guard,
        Err(refused) => {
            tracing::warn!(?ip, ?refused, "poll session refused: connection limit");
            let message = match refused {
                Refusal::PerIp => "too many connections from this address",
                Refusal::Total => "too many connections",
            };
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                error_code::TRY_AGAIN_LATER,
                message,
            );
        }
    };
    let Some(id) = new_session_id() else {
        tracing::error!("poll session refused: no OS randomness");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::TRY_AGAIN_LATER,
            "no session id available",
        );
    };
    let config = state.config();
    let conn_id = state.next_conn_id();
    let capacity = config.send_queue.max(8);
    let (tx, rx) = mpsc::channel(capacity);
    let (ctl, ctl_rx) = watch::channel(None);
    let peer = Peer::new(conn_id, tx, Arc::new(ctl));
    // The limits go first, before anything the client could trigger.
    peer.push(limits_frame(config));
    let session = Arc::new(PollSession {
        id: id.clone(),
        peer: peer.clone(),
        core: tokio::sync::Mutex::new(Some(Core {
            session: Session::new(state.clone(), peer),
            admission: Admission::new(config),
        })),
        buffer: Mutex::new(Buffer::new(capacity)),
        changes: watch::Sender::new(0),
        guard: Mutex::new(Some(guard)),
    });
    if !state.poll().insert(session.clone()) {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::TRY_AGAIN_LATER,
            "session id taken",
        );
    }
    state.counters().connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn_id, ?ip, "poll session opened");
    tokio::spawn(session.run(state.clone(), rx, ctl_rx));
    let opened = PollOpened {
        session: id,
        hold_ms: u64::try_from(config.poll_hold().as_millis()).unwrap_or(u64::MAX),
    };
    axum::Json(opened).into_response()
}

/// `POST /poll/send?session=S`, body: a frame array.
async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SessionQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refused) = origin_refusal(&state, &headers) {
        return refused;
    }
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let Some(session) = state.poll().get(&query.session) else {
        return unknown_session();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                error_code::TOO_LARGE,
                format!("body over {} bytes", state.config().poll_max_body_bytes()),
            );
        }
        Err(rejection) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                error_code::BAD_REQUEST,
                format!("unreadable body: {}", rejection.body_text()),
            );
        }
    };
    let frames = match std::str::from_utf8(&body).map(decode_frames) {
        Ok(Ok(frames)) => frames,
        Ok(Err(e)) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                error_code::BAD_REQUEST,
                format!("the body must be a JSON array of objects and strings: {e}"),
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                error_code::BAD_REQUEST,
                "the body is not UTF-8",
            );
        }
    };
    let max = max_frame_bytes(state.config());
    if frames.iter().any(|frame| frame.len() > max) {
        // As a socket closes on an oversized message; none of the body's
        // frames is handled.
        session
            .peer
            .close(CloseReason::new(1009, "message too big"));
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_code::TOO_LARGE,
            format!("a frame is over {max} bytes"),
        );
    }
    // Its own task: a client that hangs up mid-send does not cut a frame's
    // handling short (the frames are handed over whole, or not at all).
    let counters = state.counters().clone();
    let handed = tokio::spawn(async move {
        let mut core = session.core.lock().await;
        let Some(core) = core.as_mut() else {
            // Ended: frames after a close are dropped, as on a socket.
            return;
        };
        for text in frames {
            if session.peer.is_closing() {
                break;
            }
            counters.frames_in.fetch_add(1, Ordering::Relaxed);
            if core.admission.admit(&session.peer, &text) {
                core.session.on_text(&text).await;
            }
        }
    });
    if let Err(e) = handed.await {
        tracing::error!(error = %e, "poll send failed");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /poll/recv?session=S&after=N`.
async fn recv(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RecvQuery>, QueryRejection>,
) -> Response {
    if let Some(refused) = origin_refusal(&state, &headers) {
        return refused;
    }
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let Some(session) = state.poll().get(&query.session) else {
        return unknown_session();
    };
    let after = query.after;
    // Subscribed before looking, so no change is missed.
    let mut changes = session.changes.subscribe();
    let generation = {
        let mut buffer = session.buffer();
        if buffer.ack(after).is_err() {
            let last = buffer.next() - 1;
            drop(buffer);
            return refusal(
                StatusCode::BAD_REQUEST,
                error_code::BAD_REQUEST,
                format!("after={after} is beyond the last frame ({last})"),
            );
        }
        buffer.recv_generation += 1;
        buffer.receiving += 1;
        buffer.recv_generation
    };
    let _receiving = Receiving(&session);
    // An older held recv answers now.
    session.bump();
    let deadline = Instant::now() + state.config().poll_hold();
    let answer = loop {
        changes.borrow_and_update();
        {
            let mut buffer = session.buffer();
            if buffer.ready(after) {
                break Some(buffer.answer(after));
            }
            if buffer.recv_generation != generation {
                break None;
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(deadline) => break None,
        }
    };
    let (first, frames, close) = match answer {
        Some(answer) => answer,
        None => (session.buffer().next(), Vec::new(), None),
    };
    if let Some(last) = (first + frames.len() as u64).checked_sub(1) {
        let mut buffer = session.buffer();
        if last > buffer.delivered {
            let new = last - buffer.delivered.max(first - 1);
            buffer.delivered = last;
            state
                .counters()
                .frames_out
                .fetch_add(new, Ordering::Relaxed);
        }
    }
    if close.is_some() {
        // Its last frames and the close are fetched: the session is gone.
        state.poll().remove(&session.id);
    }
    let body = PollBatch::encode(first, frames.iter().map(Utf8Bytes::as_str), close.as_ref());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `POST /poll/close?session=S`.
async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Response {
    if let Some(refused) = origin_refusal(&state, &headers) {
        return refused;
    }
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let Some(session) = state.poll().get(&query.session) else {
        return unknown_session();
    };
    let reason = CloseReason::new(1000, "closed by the client");
    {
        // A held recv answers with it at once.
        let mut buffer = session.buffer();
        buffer.close.get_or_insert(PollClose {
            code: reason.code,
            reason: reason.reason.clone(),
        });
    }
    session.peer.close(CloseReason {
        abrupt: true,
        ..reason
    });
    state.poll().remove(&session.id);
    // The cleanup is done when we answer: presence has changed.
    session.end(&state).await;
    StatusCode::NO_CONTENT.into_response()
}

/// Any other path under `/poll`.
async fn no_such_endpoint() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        error_code::BAD_REQUEST,
        "no such poll endpoint (open, send, recv, close)",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn text(s: &'static str) -> Outbound {
        Outbound::Text(Utf8Bytes::from_static(s))
    }

    #[test]
    fn buffer_numbers_acks_and_answers_again() {
        let mut b = Buffer::new(8);
        assert!(b.append(text("a"), true));
        assert!(b.append(
            Outbound::Batch(vec![
                Utf8Bytes::from_static("b"),
                Utf8Bytes::from_static("c")
            ]),
            true
        ));
        assert_eq!(b.slots, 2);
        assert!(b.ready(0));
        let (first, frames, close) = b.answer(0);
        assert_eq!((first, frames.len(), close), (1, 3, None));
        // The same `after` gets the same frames.
        b.ack(0).unwrap();
        assert_eq!(b.answer(0).1.len(), 3);
        b.ack(2).unwrap();
        assert_eq!(b.first, 3);
        assert_eq!(b.slots, 0);
        let (first, frames, _) = b.answer(2);
        assert_eq!((first, frames[0].as_str()), (3, "c"));
        assert!(b.ack(4).is_err());
        b.ack(3).unwrap();
        assert!(!b.ready(3));
        b.close = Some(PollClose {
            code: 4002,
            reason: "rate".into(),
        });
        assert!(b.ready(3));
        assert_eq!(b.answer(3), (4, vec![], b.close.clone()));
    }

    #[test]
    fn buffer_is_bounded_in_slots_and_answers_in_pieces() {
        let mut b = Buffer::new(2);
        assert!(b.append(text("a"), true));
        assert!(b.append(text("b"), true));
        assert!(!b.append(text("c"), true));
        assert!(b.append(text("c"), false));
        let many: Vec<Utf8Bytes> = (0..MAX_RECV_FRAMES + 5)
            .map(|_| Utf8Bytes::from_static("x"))
            .collect();
        b.ack(3).unwrap();
        assert!(b.append(Outbound::Batch(many), true));
        b.close = Some(PollClose {
            code: 1008,
            reason: String::new(),
        });
        let (first, frames, close) = b.answer(3);
        assert_eq!((first, frames.len(), close), (4, MAX_RECV_FRAMES, None));
        let (first, frames, close) = b.answer(3 + MAX_RECV_FRAMES as u64);
        assert_eq!((first, frames.len()), (4 + MAX_RECV_FRAMES as u64, 5));
        assert!(close.is_some());
    }

    #[test]
    fn session_ids_are_128_bit_hex() {
        let a = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_session_id().unwrap());
    }
}
