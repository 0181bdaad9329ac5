//! `/ws` transport: admission (Origin, limits), then per connection a send
//! task and a receive task, joined by `tokio::select!`.
//!
//! The send task owns the socket's write half: it drains the connection's
//! bounded queue, sends RFC 6455 Pings, enforces the idle timeout and writes
//! the close frame. The receive task rate-limits the client's frames and
//! hands them to the protocol's session (`session.rs`).
//! Anything else (rooms, the metrics sampler, the store) reaches the
//! connection only through its [`Peer`] handle.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, body::Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use heartline_protocol::{Limits, ServerMessage, close_code};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::limits::{ConnectionGuard, Refusal, TokenBucket};
use crate::peer::{CloseReason, Outbound, Peer};
use crate::session::Session;
use crate::state::AppState;

/// Bytes tungstenite reads from the socket at a time: small, so an idle
/// connection costs little memory (the default is 128 KiB).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes of outgoing frames collected before a write (default 128 KiB).
const WRITE_BUFFER: usize = 8 * 1024;
/// Frames written before one flush.
const MAX_WRITE_BATCH: usize = 256;
/// How long a close handshake may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The `/ws` route: checks `Origin` and the connection limits, then upgrades.
pub async fn ws_handler(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if !origin_allowed(&state, &headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "websocket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if state.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let ip = connect_info.map(|Extension(ConnectInfo(addr))| addr.ip());
    let max = max_frame_bytes(state.config());
    let ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"));
    match state.limiter().admit(ip) {
        Ok(guard) => ws.on_upgrade(move |socket| run(socket, state, guard, ip)),
        // Upgrade and close with a code, so the client knows to back off
        // (a browser cannot read an HTTP status of a failed handshake).
        Err(refusal) => {
            tracing::warn!(?ip, ?refusal, "websocket refused: connection limit");
            let reason = match refusal {
                Refusal::PerIp => "too many connections from this address",
                Refusal::Total => "too many connections",
            };
            ws.on_upgrade(move |socket| refuse(socket, close_code::TRY_AGAIN_LATER, reason))
        }
    }
}

/// Whether the request's `Origin` is one the server serves. A request
/// without `Origin` (a native client) is allowed. Shared by `/ws` and the
/// long-poll endpoints.
pub(crate) fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    headers.get(header::ORIGIN).is_none_or(|origin| {
        origin
            .to_str()
            .is_ok_and(|origin| state.origins().allows(origin))
    })
}

/// The `limits` frame every connection gets first, before anything the
/// client could trigger (sockets and poll sessions alike).
pub(crate) fn limits_frame(config: &Config) -> Outbound {
    frame(&ServerMessage::Limits(Limits {
        rate: config.rate,
        burst: config.burst,
        max_frame_bytes: max_frame_bytes(config),
    }))
}

/// The largest frame a client may send, bytes (at least 1 KiB).
pub(crate) fn max_frame_bytes(config: &Config) -> usize {
    config.max_frame_bytes.max(1024)
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    if socket.send(close).await.is_ok() {
        // Wait for the client's close reply, briefly.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = socket.recv().await {}
        })
        .await;
    }
}

/// Serves one connection until it closes.
async fn run(socket: WebSocket, state: AppState, guard: ConnectionGuard, ip: Option<IpAddr>) {
    let conn_id = state.next_conn_id();
    let config = state.config().clone();
    let (tx, rx) = mpsc::channel(config.send_queue.max(8));
    let (ctl, ctl_rx) = watch::channel(None);
    let peer = Peer::new(conn_id, tx, Arc::new(ctl));
    let counters = state.counters().clone();
    counters.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn_id, ?ip, "connected");

    // The limits go first, before anything the client could trigger.
    peer.push(limits_frame(&config));
    let last_seen = Arc::new(LastSeen::new());
    let (sink, stream) = socket.split();
    let send = SendLoop {
        sink,
        rx,
        ctl: ctl_rx,
        shutdown: state.shutdown_signal(),
        ping_every: config.ping_interval(),
        idle_timeout: config.idle_timeout(),
        last_seen: last_seen.clone(),
        counters: counters.clone(),
    };
    let reader = Reader {
        session: Session::new(state.clone(), peer.clone()),
        admission: Admission::new(&config),
        state: state.clone(),
        peer: peer.clone(),
        last_seen,
    };
    let mut send_task = tokio::spawn(send.run());
    let mut recv_task = tokio::spawn(reader.run(stream));
    tokio::select! {
        _ = &mut send_task => {
            // Closed by the server: let the reader see the client's close
            // reply, so the handshake completes cleanly.
            if tokio::time::timeout(CLOSE_GRACE, &mut recv_task).await.is_err() {
                recv_task.abort();
            }
        }
        _ = &mut recv_task => {
            // The client left, or the reader asked for a close (oversized
            // frame): let the writer send it, if any.
            peer.close(CloseReason { abrupt: true, ..CloseReason::new(1000, "") });
            if tokio::time::timeout(CLOSE_GRACE, &mut send_task).await.is_err() {
                send_task.abort();
            }
        }
    }

    for room in state.hub().leave_all(conn_id) {
        state.hub().presence_changed(&room, None);
    }
    state.metrics().unsubscribe(conn_id);
    state.directory().unsubscribe(conn_id);
    counters.connections.fetch_sub(1, Ordering::Relaxed);
    drop(guard);
    tracing::debug!(conn_id, "disconnected");
}

/// The write half and what drives it.
struct SendLoop {
    sink: SplitSink<WebSocket, Message>,
    rx: mpsc::Receiver<Outbound>,
    ctl: watch::Receiver<Option<CloseReason>>,
    shutdown: watch::Receiver<bool>,
    ping_every: Duration,
    idle_timeout: Duration,
    last_seen: Arc<LastSeen>,
    counters: Arc<crate::metrics::Counters>,
}

/// When the client last sent anything, shared by the two halves: the reader
/// touches it on every frame, the writer sleeps until it is too long ago.
#[derive(Debug)]
struct LastSeen {
    start: Instant,
    /// Microseconds after `start`.
    micros: AtomicU64,
}

impl LastSeen {
    fn new() -> Self {
        LastSeen {
            start: Instant::now(),
            micros: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.micros.store(micros, Ordering::Relaxed);
    }

    /// When the connection is idle for `timeout`, as things stand.
    fn idle_at(&self, timeout: Duration) -> Instant {
        self.start + Duration::from_micros(self.micros.load(Ordering::Relaxed)) + timeout
    }
}

enum Event {
    Control(bool),
    Shutdown,
    Out(Option<Outbound>),
    Ping,
    IdleCheck,
}

enum Step {
    Continue,
    Close(CloseReason),
    /// The socket is gone: stop without a close frame.
    Stop,
}

impl SendLoop {
    async fn run(mut self) {
        let mut ping = tokio::time::interval_at(Instant::now() + self.ping_every, self.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Wakes at the moment the client would have been silent for the idle
        // timeout; a frame since then moves the moment on.
        let idle = tokio::time::sleep_until(self.last_seen.idle_at(self.idle_timeout));
        tokio::pin!(idle);
        let reason = loop {
            // Pick an event first, then act on it: the branches' futures
            // borrow `self` until the select is over.
            let event = tokio::select! {
                biased;
                changed = self.ctl.changed() => Event::Control(changed.is_ok()),
                _ = self.shutdown.wait_for(|down| *down) => Event::Shutdown,
                out = self.rx.recv() => Event::Out(out),
                _ = ping.tick() => Event::Ping,
                () = &mut idle => Event::IdleCheck,
            };
            let step = match event {
                Event::Control(alive) => close_requested(&mut self.ctl, alive),
                Event::Shutdown => Step::Close(CloseReason::new(1001, "server shutting down")),
                Event::Out(Some(out)) => self.write(out).await,
                Event::Out(None) => Step::Stop,
                Event::Ping => self.ping().await,
                Event::IdleCheck => {
                    let at = self.last_seen.idle_at(self.idle_timeout);
                    if at <= Instant::now() {
                        tracing::debug!(timeout = ?self.idle_timeout, "idle timeout");
                        Step::Close(CloseReason::new(close_code::IDLE_TIMEOUT, "idle timeout"))
                    } else {
                        idle.as_mut().reset(at);
                        Step::Continue
                    }
                }
            };
            match step {
                Step::Continue => {}
                Step::Close(reason) => break reason,
                Step::Stop => return,
            }
        };
        if !reason.abrupt {
            tracing::debug!(code = reason.code, reason = %reason.reason, "closing");
            let frame = Message::Close(Some(CloseFrame {
                code: reason.code,
                reason: Utf8Bytes::from(reason.reason),
            }));
            // What was queued before the close (acks, replies) goes first.
            let drain_then_close = async {
                let mut n = 0;
                while n < MAX_WRITE_BATCH * 4 {
                    match self.rx.try_recv() {
                        Ok(out) => n += feed(&mut self.sink, out).await?,
                        Err(_) => break,
                    }
                }
                self.counters
                    .frames_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.sink.send(frame).await
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, drain_then_close).await;
        }
    }

    /// Writes `first` and whatever else is queued, then flushes. A close
    /// request or a write that takes longer than the idle timeout (a client
    /// that stopped reading) interrupts it.
    async fn write(&mut self, first: Outbound) -> Step {
        let counters = self.counters.clone();
        let write = async {
            let mut n = feed(&mut self.sink, first).await?;
            // Let the other connections' tasks run once before draining: a
            // broadcast wakes every member, and frames that arrive while they
            // run then go out in this one write instead of one write each
            // (as Node's cork per event-loop turn does).
            tokio::task::yield_now().await;
            while n < MAX_WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(out) => n += feed(&mut self.sink, out).await?,
                    Err(_) => break,
                }
            }
            self.sink.flush().await?;
            counters.frames_out.fetch_add(n as u64, Ordering::Relaxed);
            Ok::<(), axum::Error>(())
        };
        tokio::select! {
            biased;
            changed = self.ctl.changed() => close_requested(&mut self.ctl, changed.is_ok()),
            r = write => if r.is_ok() { Step::Continue } else { Step::Stop },
            _ = tokio::time::sleep(self.idle_timeout) => {
                Step::Close(CloseReason { abrupt: true, ..CloseReason::new(1008, "write timeout") })
            }
        }
    }

    /// Sends an RFC 6455 Ping (a browser answers it, which keeps an idle but
    /// healthy tab alive).
    async fn ping(&mut self) -> Step {
        let ping = self.sink.send(Message::Ping(Bytes::new()));
        tokio::select! {
            biased;
            changed = self.ctl.changed() => close_requested(&mut self.ctl, changed.is_ok()),
            r = ping => if r.is_ok() { Step::Continue } else { Step::Stop },
            _ = tokio::time::sleep(self.idle_timeout) => Step::Stop,
        }
    }
}

fn close_requested(ctl: &mut watch::Receiver<Option<CloseReason>>, alive: bool) -> Step {
    if !alive {
        return Step::Stop;
    }
    match ctl.borrow_and_update().clone() {
        Some(reason) => Step::Close(reason),
        None => Step::Continue,
    }
}

async fn feed(
    sink: &mut SplitSink<WebSocket, Message>,
    out: Outbound,
) -> Result<usize, axum::Error> {
    match out {
        Outbound::Text(text) => {
            sink.feed(Message::Text(text)).await?;
            Ok(1)
        }
        Outbound::Batch(frames) => {
            let n = frames.len();
            for text in frames {
                sink.feed(Message::Text(text)).await?;
            }
            Ok(n)
        }
    }
}

/// The read half: admits frames through the token bucket and hands them to
/// the session.
struct Reader {
    session: Session,
    state: AppState,
    peer: Peer,
    admission: Admission,
    last_seen: Arc<LastSeen>,
}

impl Reader {
    async fn run(mut self, mut stream: SplitStream<WebSocket>) {
        while let Some(frame) = stream.next().await {
            // Anything the client sends, Pongs included, shows it is alive.
            self.last_seen.touch();
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    self.read_failed(e);
                    return;
                }
            };
            if self.peer.is_closing() {
                // Closing: only wait for the client's close reply.
                continue;
            }
            match frame {
                Message::Text(text) => {
                    self.count_in();
                    if self.admission.admit(&self.peer, text.as_str()) {
                        self.session.on_text(text.as_str()).await;
                    }
                }
                Message::Binary(_) => {
                    self.count_in();
                    if self.admission.admit(&self.peer, "") {
                        self.session.on_binary().await;
                    }
                }
                // tungstenite answers Pings itself; a Close ends the stream.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
            }
        }
    }

    fn read_failed(&self, e: axum::Error) {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = e.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(e)) => {
                tracing::debug!(error = %e, "frame too big");
                self.peer.close(CloseReason::new(1009, "message too big"));
            }
            Some(WsError::Protocol(e)) => {
                tracing::debug!(error = %e, "protocol error");
                self.peer.close(CloseReason::new(1002, "protocol error"));
            }
            Some(WsError::Utf8(_)) => {
                self.peer.close(CloseReason::new(1007, "invalid UTF-8"));
            }
            _ => tracing::debug!(error = %inner, "read failed"),
        }
    }

    fn count_in(&self) {
        self.state
            .counters()
            .frames_in
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The rate limit on a connection's frames, the same for a socket's and a
/// poll session's: a token bucket, and strikes for refusals in a row.
#[derive(Debug)]
pub(crate) struct Admission {
    bucket: TokenBucket,
    strikes: u32,
    /// Refusals in a row that close the connection (more than the burst: a
    /// client keeping its window under the burst never gets there).
    max_strikes: u32,
}

impl Admission {
    /// A full bucket of `config.burst` tokens refilled at `config.rate`.
    pub(crate) fn new(config: &Config) -> Self {
        Admission {
            bucket: TokenBucket::new(config.rate, config.burst, std::time::Instant::now()),
            strikes: 0,
            max_strikes: config.burst,
        }
    }

    /// Takes a token from the bucket. Without one the frame is refused
    /// with `rate_limited` (pushed to `peer`), naming its id and when a
    /// token will be there; more than `max_strikes` refusals in a row close
    /// the connection.
    pub(crate) fn admit(&mut self, peer: &Peer, text: &str) -> bool {
        let now = std::time::Instant::now();
        if self.bucket.try_take(now) {
            self.strikes = 0;
            return true;
        }
        self.strikes += 1;
        if self.strikes > self.max_strikes {
            tracing::info!(conn = peer.id, "closing: rate limit exceeded");
            peer.close(CloseReason::new(
                close_code::RATE_LIMITED,
                "rate limit exceeded",
            ));
        } else {
            // Not awaited: a flooding client must not make us wait on it.
            let wait = self.bucket.retry_after(now);
            peer.push(frame(&crate::session::rate_limited(text, wait)));
        }
        false
    }
}

fn frame(msg: &ServerMessage) -> Outbound {
    Outbound::Text(Utf8Bytes::from(msg.to_json()))
}
