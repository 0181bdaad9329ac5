//! The long-poll fallback as the native driver sees it: one session of the
//! [poll endpoints](crate::core::poll) that raises the same events as a
//! socket (opened, frames, closed) and takes frames to send.
//!
//! A task on the driver's `LocalSet` runs the session: `open`, then a recv
//! loop (one `GET` at a time, acknowledging what it got through `after`) and
//! a send loop (one `POST` at a time, up to
//! [`MAX_FRAMES_PER_SEND`] frames each, so frames keep their order). Any
//! HTTP or network failure ends the link as an abnormal close (1006); the
//! core reconnects with a new session, re-sends its outbox and resumes its
//! streams, as after a lost socket.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use reqwest::{Client as HttpClient, StatusCode};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::core::SocketId;
use crate::core::poll::{MAX_FRAMES_PER_SEND, PollBatch, PollOpened, encode_frames};

/// Close code reported when the link fails without the server's word.
const CLOSE_ABNORMAL: u16 = 1006;
/// Slack over the server's hold before a `recv` counts as lost.
const RECV_SLACK: Duration = Duration::from_secs(10);
/// How long `open` and `send` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the farewell `close` may take (nobody waits for it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failed send waits for the server's close reason.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What happened to a poll link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PollEvent {
    /// The session exists: the link is open.
    Opened,
    /// One frame of a batch, in order.
    Frame(String),
    /// The link ended: the server's close, or 1006 on a failure.
    Closed { code: u16, reason: String },
}

/// A live poll session (or one being opened).
pub(super) struct PollLink {
    pub(super) id: SocketId,
    events: mpsc::UnboundedReceiver<PollEvent>,
    frames: mpsc::UnboundedSender<String>,
    /// Bytes handed over and not yet accepted by the server: the native
    /// `bufferedAmount`.
    backlog: Rc<Cell<u64>>,
    pub(super) drained: Rc<Notify>,
    /// The session id, once opened (for the farewell `close`).
    session: Rc<RefCell<Option<String>>>,
    base: String,
    http: HttpClient,
    task: JoinHandle<()>,
}

impl PollLink {
    /// Starts a session at `base` (a [poll base](crate::core::poll::poll_base))
    /// on the current `LocalSet`. A fresh HTTP client per link: no pooled
    /// connection of a dead link is reused by the next one.
    pub(super) fn start(id: SocketId, base: String) -> PollLink {
        let http = HttpClient::new();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (frames, queue) = mpsc::unbounded_channel();
        let backlog = Rc::new(Cell::new(0));
        let drained = Rc::new(Notify::new());
        let session = Rc::new(RefCell::new(None));
        let run = Session {
            http: http.clone(),
            base: base.clone(),
            events: events_tx,
            backlog: Rc::clone(&backlog),
            drained: Rc::clone(&drained),
            session: Rc::clone(&session),
        };
        let task = tokio::task::spawn_local(run.run(queue));
        PollLink {
            id,
            events,
            frames,
            backlog,
            drained,
            session,
            base,
            http,
            task,
        }
    }

    /// The next event; `None` once the session task is gone without saying
    /// why (treated as an abnormal close). Cancel-safe.
    pub(super) async fn next_event(&mut self) -> Option<PollEvent> {
        self.events.recv().await
    }

    /// Queues a frame; false when the link has stopped.
    pub(super) fn send(&self, text: String) -> bool {
        let len = text.len() as u64;
        if self.frames.send(text).is_err() {
            return false;
        }
        self.backlog.set(self.backlog.get().saturating_add(len));
        true
    }

    /// Bytes queued and not yet accepted by the server.
    pub(super) fn backlog(&self) -> u64 {
        self.backlog.get()
    }

    /// Ends the link: the task stops at once, and the server is told the
    /// session is over (best effort, in the background), so it leaves its
    /// rooms now rather than at its idle timeout.
    pub(super) fn finish(self) {
        self.task.abort();
        let Some(session) = self.session.borrow_mut().take() else {
            return;
        };
        let request = self
            .http
            .post(format!("{}/close?session={session}", self.base))
            .timeout(CLOSE_TIMEOUT)
            .send();
        tokio::task::spawn_local(async move {
            // Nothing to do if it fails: the session expires on its own.
            let _ = request.await;
        });
    }
}

impl Drop for PollLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The session task's side.
struct Session {
    http: HttpClient,
    base: String,
    events: mpsc::UnboundedSender<PollEvent>,
    backlog: Rc<Cell<u64>>,
    drained: Rc<Notify>,
    session: Rc<RefCell<Option<String>>>,
}

/// Why the link ended.
struct Ended {
    code: u16,
    reason: String,
}

impl Ended {
    fn failed(reason: impl Into<String>) -> Self {
        Ended {
            code: CLOSE_ABNORMAL,
            reason: reason.into(),
        }
    }
}

impl Session {
    async fn run(self, queue: mpsc::UnboundedReceiver<String>) {
        let ended = match self.open().await {
            Ok(opened) => {
                let hold = Duration::from_millis(opened.hold_ms);
                *self.session.borrow_mut() = Some(opened.session.clone());
                let _ = self.events.send(PollEvent::Opened);
                let recv = self.recv_loop(&opened.session, hold);
                let send = self.send_loop(&opened.session, queue);
                tokio::pin!(recv, send);
                tokio::select! {
                    ended = &mut recv => ended,
                    // A send refused because the server ended the session
                    // (an auth refusal, say): its reason comes in the last
                    // batch, so let the recv loop say it if it can.
                    ended = &mut send => tokio::time::timeout(CLOSE_GRACE, &mut recv)
                        .await
                        .unwrap_or(ended),
                }
            }
            Err(ended) => ended,
        };
        let _ = self.events.send(PollEvent::Closed {
            code: ended.code,
            reason: ended.reason,
        });
    }

    async fn open(&self) -> Result<PollOpened, Ended> {
        let response = self
            .http
            .post(format!("{}/open", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| Ended::failed(format!("open: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| Ended::failed(format!("open: {e}")))?;
        if status != StatusCode::OK {
            return Err(Ended::failed(format!("open: {status}: {body}")));
        }
        let opened: PollOpened =
            serde_json::from_str(&body).map_err(|e| Ended::failed(format!("open: {e}")))?;
        // It goes into query strings as it is.
        let url_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if opened.session.is_empty() || !opened.session.chars().all(url_safe) {
            return Err(Ended::failed("open: the session id is not URL-safe"));
        }
        Ok(opened)
    }

    async fn recv_loop(&self, session: &str, hold: Duration) -> Ended {
        let mut after = 0u64;
        loop {
            let answer = self
                .http
                .get(format!(
                    "{}/recv?session={session}&after={after}",
                    self.base
                ))
                .timeout(hold + RECV_SLACK)
                .send()
                .await;
            let response = match answer {
                Ok(response) => response,
                Err(e) => return Ended::failed(format!("recv: {e}")),
            };
            let status = response.status();
            let body = match response.text().await {
                Ok(body) => body,
                Err(e) => return Ended::failed(format!("recv: {e}")),
            };
            if status != StatusCode::OK {
                return Ended::failed(format!("recv: {status}: {body}"));
            }
            let batch = match PollBatch::parse(&body) {
                Ok(batch) => batch,
                Err(e) => return Ended::failed(format!("recv: malformed batch: {e}")),
            };
            if let Some(last) = batch.last() {
                // A batch that does not go on from `after` would skip or
                // repeat frames: treat it as a broken link.
                if batch.first != after + 1 {
                    return Ended::failed(format!(
                        "recv: batch starts at {} after {after}",
                        batch.first
                    ));
                }
                after = last;
            }
            for frame in batch.frames {
                if self.events.send(PollEvent::Frame(frame)).is_err() {
                    return Ended::failed("driver gone");
                }
            }
            if let Some(close) = batch.close {
                return Ended {
                    code: close.code,
                    reason: close.reason,
                };
            }
        }
    }

    async fn send_loop(&self, session: &str, mut queue: mpsc::UnboundedReceiver<String>) -> Ended {
        let mut batch = Vec::with_capacity(MAX_FRAMES_PER_SEND);
        loop {
            if queue.recv_many(&mut batch, MAX_FRAMES_PER_SEND).await == 0 {
                // The driver let go; the task is being stopped.
                return Ended::failed("driver gone");
            }
            let bytes: u64 = batch.iter().map(|frame| frame.len() as u64).sum();
            let body = encode_frames(batch.iter().map(String::as_str));
            batch.clear();
            let answer = self
                .http
                .post(format!("{}/send?session={session}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
                .body(body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Ended::failed(format!("send: {status}: {body}"));
                }
                Err(e) => return Ended::failed(format!("send: {e}")),
            }
            self.backlog.set(self.backlog.get().saturating_sub(bytes));
            if self.backlog.get() == 0 {
                self.drained.notify_one();
            }
        }
    }
}
