//! The `/poll` endpoints' handlers: admission, parameters and bodies, and
//! the answers; the sessions themselves are in the parent module.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::ws::Utf8Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use heartline::core::poll::{
    PollBatch, PollClose, PollError, PollOpened, decode_frames, error_code,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::buffer::Buffer;
use super::{Core, PollSession, Receiving};
use crate::limits::Refusal;
use crate::peer::{CloseReason, Peer};
use crate::session::Session;
use crate::state::AppState;
use crate::transport::{Admission, limits_frame, max_frame_bytes, origin_allowed};

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
pub(super) struct SessionQuery {
    session: String,
}

/// `?session=S&after=N` (`after` 0 when absent).
#[derive(Debug, Deserialize)]
pub(super) struct RecvQuery {
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
pub(super) async fn open(
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
pub(super) async fn send(
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
pub(super) async fn recv(
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
pub(super) async fn close(
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
pub(super) async fn no_such_endpoint() -> Response {
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

    #[test]
    fn session_ids_are_128_bit_hex() {
        let a = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_session_id().unwrap());
    }
}
