//! The long-poll link: the browser side of [`core::poll`](crate::core::poll),
//! used where the WebSocket upgrade is refused
//! ([`Transport::LongPoll`](crate::core::Transport::LongPoll)). To the core
//! it is one more socket: it reports the same `Opened`, `Frame` and `Closed`
//! events, tagged with its [`SocketId`].
//!
//! - `POST open`, then `Opened`.
//! - One `GET recv` outstanding at a time, `after` = the last frame number
//!   seen (0 at first): every frame of every batch is fed in order; a batch
//!   with `close` ends the link with the server's code and reason.
//! - Frames to send wait in a queue; at most one `POST send` is in flight,
//!   with at most [`MAX_FRAMES_PER_SEND`] frames, the next one starting when
//!   it answered: frames reach the server in the order they were queued.
//! - Any HTTP or network error, or an unexpected status, ends the link as
//!   a 1006 close, once.
//!
//! The link's futures hold its shared state, not the link: dropping the
//! link marks the state dead (every future checks after each await) and
//! aborts the outstanding fetches, so they finish at once and free it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use gloo_net::http::{Request, RequestBuilder};
use wasm_bindgen_futures::spawn_local;
use web_sys::{AbortController, RequestCache};

use crate::core::poll::{MAX_FRAMES_PER_SEND, PollBatch, PollError, PollOpened, encode_frames};
use crate::core::{Event as CoreEvent, FrameData, SocketId};

use super::driver::{Driver, SocketCounts, feed_weak};

/// Close code reported when the link fails (as a WebSocket's abnormal
/// close).
const CLOSE_ABNORMAL: u16 = 1006;

/// The body type of every POST: a CORS "simple" content type, so no
/// preflight doubles each request's latency.
const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

/// One long-poll session. Dropping it stops it: outstanding fetches are
/// aborted, nothing more is reported, and a known session is closed on the
/// server with a best-effort `POST close`.
pub(super) struct PollLink {
    shared: Rc<Shared>,
    counts: Rc<Cell<SocketCounts>>,
}

/// What the link's futures share with it.
struct Shared {
    id: SocketId,
    base: String,
    driver: Weak<Driver>,
    /// False once the link ended (its `Closed` was reported) or was dropped.
    /// Checked after every await, so nothing is reported after that.
    alive: Cell<bool>,
    /// Aborts every outstanding fetch of the link at once. `None` only if
    /// the browser refused to make one; the alive flag still stops it.
    abort: Option<AbortController>,
    /// Set once `open` answered.
    session: OnceCell<String>,
    /// The server already forgot the session (it closed it, or said it is
    /// unknown): no `POST close` is needed.
    ended_on_server: Cell<bool>,
    /// Frames queued and not yet in a `send`.
    queue: RefCell<VecDeque<String>>,
    /// A `send` is in flight.
    sending: Cell<bool>,
    /// Bytes queued or in flight, not yet acknowledged by a 204: this link's
    /// `bufferedAmount`.
    unacked_bytes: Cell<u64>,
}

impl PollLink {
    /// Starts a session at `base` (a [poll base](crate::core::poll::poll_base))
    /// reporting to `driver` as `id`.
    pub(super) fn open(
        base: String,
        id: SocketId,
        driver: &Weak<Driver>,
        counts: &Rc<Cell<SocketCounts>>,
    ) -> PollLink {
        let shared = Rc::new(Shared {
            id,
            base,
            driver: driver.clone(),
            alive: Cell::new(true),
            abort: AbortController::new().ok(),
            session: OnceCell::new(),
            ended_on_server: Cell::new(false),
            queue: RefCell::default(),
            sending: Cell::new(false),
            unacked_bytes: Cell::new(0),
        });
        spawn_local(run(Rc::clone(&shared)));
        // A poll session is the connection's link as a WebSocket would be:
        // it counts the same, so `live <= 1` still holds.
        let mut c = counts.get();
        c.created += 1;
        c.live += 1;
        counts.set(c);
        PollLink {
            shared,
            counts: Rc::clone(counts),
        }
    }

    pub(super) fn id(&self) -> SocketId {
        self.shared.id
    }

    /// Queues a frame; it goes out in order with the ones before it.
    pub(super) fn send(&self, text: String) {
        let shared = &self.shared;
        if !shared.alive.get() {
            // Ended: the core hears of it through `Closed`.
            return;
        }
        let bytes = u64::try_from(text.len()).unwrap_or(u64::MAX);
        shared
            .unacked_bytes
            .set(shared.unacked_bytes.get().saturating_add(bytes));
        if let Ok(mut queue) = shared.queue.try_borrow_mut() {
            queue.push_back(text);
        }
        start_send(shared);
    }

    /// Bytes not yet acknowledged by the server.
    pub(super) fn buffered_amount(&self) -> u64 {
        self.shared.unacked_bytes.get()
    }
}

impl Drop for PollLink {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.alive.set(false);
        if let Some(abort) = &shared.abort {
            abort.abort();
        }
        if !shared.ended_on_server.get()
            && let Some(session) = shared.session.get()
        {
            // Nobody waits for it: the server would expire the session
            // anyway, this only frees it (and its rooms) sooner.
            spawn_local(close_session(shared.base.clone(), session.clone()));
        }
        if let Ok(mut queue) = shared.queue.try_borrow_mut() {
            queue.clear();
        }
        let mut c = self.counts.get();
        c.live = c.live.saturating_sub(1);
        self.counts.set(c);
    }
}

impl Shared {
    fn url(&self, endpoint: &str) -> String {
        format!("{}/{endpoint}", self.base)
    }

    fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        let signal = self.abort.as_ref().map(AbortController::signal);
        builder.abort_signal(signal.as_ref())
    }

    fn report(&self, event: CoreEvent) {
        // Never while a borrow of the link's state is held: the driver may
        // drop the link from inside this call.
        feed_weak(&self.driver, event);
    }

    /// Ends the link once: stops its other fetches and reports the close.
    fn end(&self, code: u16, reason: String, was_clean: bool) {
        if !self.alive.replace(false) {
            return;
        }
        if let Some(abort) = &self.abort {
            abort.abort();
        }
        self.report(CoreEvent::Closed {
            socket: self.id,
            code,
            reason,
            was_clean,
        });
    }

    /// Ends the link after a failed request.
    fn fail(&self, failure: Failure) {
        if failure.unknown_session {
            self.ended_on_server.set(true);
        }
        self.end(CLOSE_ABNORMAL, failure.reason, false);
    }
}

/// Why a request failed, as a close reason.
struct Failure {
    reason: String,
    /// The server answered 404 `unknown_session`.
    unknown_session: bool,
}

impl Failure {
    fn network(what: &str, error: &gloo_net::Error) -> Failure {
        Failure {
            reason: format!("poll {what}: {error}"),
            unknown_session: false,
        }
    }
}

/// Sends a request and reads its answer's text when the status is `want`
/// (or any 2xx when `want` is `None`). Anything else is a [`Failure`] with
/// the [`PollError`] code when the body has one.
async fn fetch(
    what: &str,
    builder: RequestBuilder,
    body: Option<String>,
    want: Option<u16>,
) -> Result<String, Failure> {
    let response = match body {
        Some(body) => match builder.header("Content-Type", TEXT_PLAIN).body(body) {
            Ok(request) => request.send().await,
            Err(error) => Err(error),
        },
        None => builder.send().await,
    }
    .map_err(|error| Failure::network(what, &error))?;
    let status = response.status();
    let expected = match want {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    let text = response.text().await;
    if expected {
        return text.map_err(|error| Failure::network(what, &error));
    }
    let error = text
        .ok()
        .and_then(|text| serde_json::from_str::<PollError>(&text).ok());
    let unknown_session = status == 404
        && error
            .as_ref()
            .is_some_and(|e| e.code == crate::core::poll::error_code::UNKNOWN_SESSION);
    let code = error.map(|e| e.code).unwrap_or_default();
    Err(Failure {
        reason: format!("poll {what}: {status} {code}")
            .trim_end()
            .to_owned(),
        unknown_session,
    })
}

/// The link's life: open the session, then receive until it ends.
async fn run(shared: Rc<Shared>) {
    let builder = shared.request(Request::post(&shared.url("open")));
    let answer = fetch("open", builder, Some(String::new()), Some(200)).await;
    if !shared.alive.get() {
        // Dropped while the answer was read: the server may have made the
        // session, and the link no longer can close it.
        if let Ok(Ok(opened)) = answer.map(|text| serde_json::from_str::<PollOpened>(&text)) {
            spawn_local(close_session(shared.base.clone(), opened.session));
        }
        return;
    }
    let opened = match answer.map(|text| serde_json::from_str::<PollOpened>(&text)) {
        Ok(Ok(opened)) => opened,
        Ok(Err(_)) => {
            return shared.fail(Failure {
                reason: "poll open: malformed answer".to_owned(),
                unknown_session: false,
            });
        }
        Err(failure) => return shared.fail(failure),
    };
    // Set before `Opened`: the core writes its greeting from inside it.
    let _ = shared.session.set(opened.session);
    shared.report(CoreEvent::Opened { socket: shared.id });
    // Anything queued before the session was known.
    start_send(&shared);
    receive(&shared).await;
}

/// The receive loop: one `recv` at a time, each acknowledging the frames
/// already fed.
async fn receive(shared: &Rc<Shared>) {
    let Some(session) = shared.session.get().cloned() else {
        return;
    };
    let mut after: u64 = 0;
    while shared.alive.get() {
        let builder = Request::get(&shared.url("recv"))
            .query([("session", session.as_str()), ("after", &after.to_string())])
            // Two polls with the same `after` must both reach the server.
            .cache(RequestCache::NoStore);
        let answer = fetch("recv", shared.request(builder), None, Some(200)).await;
        if !shared.alive.get() {
            return;
        }
        let batch = match answer.map(|text| PollBatch::parse(&text)) {
            Ok(Ok(batch)) => batch,
            Ok(Err(_)) => {
                return shared.fail(Failure {
                    reason: "poll recv: malformed batch".to_owned(),
                    unknown_session: false,
                });
            }
            Err(failure) => return shared.fail(failure),
        };
        let mut number = batch.first;
        for text in batch.frames {
            // A frame already fed (the server answered from before
            // `after`) is skipped, so none is delivered twice.
            if number > after {
                after = number;
                shared.report(CoreEvent::Frame {
                    socket: shared.id,
                    data: FrameData::Text(text),
                });
                // The core may have closed the link on this frame.
                if !shared.alive.get() {
                    return;
                }
            }
            number = number.saturating_add(1);
        }
        if let Some(close) = batch.close {
            shared.ended_on_server.set(true);
            return shared.end(close.code, close.reason, true);
        }
    }
}

/// Starts the next `send` if none is in flight and frames wait.
fn start_send(shared: &Rc<Shared>) {
    if !shared.alive.get() || shared.sending.get() {
        return;
    }
    let Some(session) = shared.session.get().cloned() else {
        return;
    };
    let frames: Vec<String> = match shared.queue.try_borrow_mut() {
        Ok(mut queue) => {
            let take = queue.len().min(MAX_FRAMES_PER_SEND);
            queue.drain(..take).collect()
        }
        Err(_) => return,
    };
    if frames.is_empty() {
        return;
    }
    let bytes = frames
        .iter()
        .map(|frame| u64::try_from(frame.len()).unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    let body = encode_frames(frames.iter().map(String::as_str));
    shared.sending.set(true);
    let shared = Rc::clone(shared);
    spawn_local(async move {
        let builder = Request::post(&shared.url("send")).query([("session", session.as_str())]);
        let answer = fetch("send", shared.request(builder), Some(body), Some(204)).await;
        if !shared.alive.get() {
            return;
        }
        if let Err(failure) = answer {
            return shared.fail(failure);
        }
        shared.sending.set(false);
        let left = shared.unacked_bytes.get().saturating_sub(bytes);
        shared.unacked_bytes.set(left);
        // Keep the pipe busy before telling the core, which may queue more.
        start_send(&shared);
        shared.report(CoreEvent::BufferedAmount {
            socket: shared.id,
            bytes: shared.unacked_bytes.get(),
        });
    });
}

/// `POST close`, best effort: its answer or failure changes nothing.
async fn close_session(base: String, session: String) {
    let builder = Request::post(&format!("{base}/close")).query([("session", session.as_str())]);
    let _ = fetch("close", builder, Some(String::new()), None).await;
}
