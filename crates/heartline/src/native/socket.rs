//! One tokio-tungstenite socket as the driver sees it: a connect future, then
//! a read half polled by the driver task and a write half owned by a writer
//! task fed through a channel.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::poll::{PollEvent, PollLink};
use crate::core::SocketId;

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a socket let go of may take to write what it holds and its close
/// frame before its task is aborted (a peer that stopped reading must not
/// keep a socket alive).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the driver's socket slot holds: at most one socket, connecting or
/// open.
#[derive(Default)]
pub(super) enum SocketSlot {
    #[default]
    Empty,
    Connecting {
        id: SocketId,
        connect: LocalBoxFuture<'static, Result<Box<Ws>, WsError>>,
    },
    Open(LiveSocket),
    /// A long-poll session, opening or open (it says which by its events).
    Polling(PollLink),
}

/// Something that happened to the socket in the slot.
pub(super) enum SocketEvent {
    /// The handshake finished (the socket is boxed: it is large), or
    /// failed.
    Connected(SocketId, Result<Box<Ws>, WsError>),
    /// The read half yielded (`None`: the stream ended).
    Read(SocketId, Option<Result<Message, WsError>>),
    /// The writer emptied its backlog.
    Drained(SocketId),
    /// The poll link raised an event (`None`: its task is gone).
    Poll(SocketId, Option<PollEvent>),
}

impl SocketSlot {
    pub(super) fn connect(id: SocketId, url: String) -> SocketSlot {
        SocketSlot::Connecting {
            id,
            connect: Box::pin(async move {
                tokio_tungstenite::connect_async(url)
                    .await
                    .map(|(ws, _response)| Box::new(ws))
            }),
        }
    }

    /// The id of the socket in the slot, connecting or open.
    pub(super) fn id(&self) -> Option<SocketId> {
        match self {
            SocketSlot::Empty => None,
            SocketSlot::Connecting { id, .. } => Some(*id),
            SocketSlot::Open(live) => Some(live.id),
            SocketSlot::Polling(link) => Some(link.id),
        }
    }

    /// Queues a frame on the open link, if it is `socket`; false when there
    /// is no such link or it has stopped.
    pub(super) fn send(&mut self, socket: SocketId, text: String) -> Option<bool> {
        match self {
            SocketSlot::Open(live) if live.id == socket => Some(live.writer.send(text)),
            SocketSlot::Polling(link) if link.id == socket => Some(link.send(text)),
            _ => None,
        }
    }

    /// Bytes queued on the open link and not yet on their way.
    pub(super) fn backlog(&self) -> Option<(SocketId, u64)> {
        match self {
            SocketSlot::Open(live) => Some((live.id, live.writer.backlog())),
            SocketSlot::Polling(link) => Some((link.id, link.backlog())),
            _ => None,
        }
    }

    /// Waits for the next event of the socket in the slot; pending forever
    /// when empty. Cancel-safe: the connect future stays in the slot, and a
    /// read or a drain notice not taken stays where it was.
    pub(super) async fn next_event(&mut self) -> SocketEvent {
        match self {
            SocketSlot::Empty => std::future::pending().await,
            SocketSlot::Connecting { id, connect } => SocketEvent::Connected(*id, connect.await),
            SocketSlot::Open(live) => {
                let id = live.id;
                tokio::select! {
                    biased;
                    read = live.read.next() => SocketEvent::Read(id, read),
                    () = live.writer.drained.notified() => SocketEvent::Drained(id),
                }
            }
            SocketSlot::Polling(link) => {
                let id = link.id;
                let drained = Rc::clone(&link.drained);
                tokio::select! {
                    biased;
                    event = link.next_event() => SocketEvent::Poll(id, event),
                    () = drained.notified() => SocketEvent::Drained(id),
                }
            }
        }
    }

    /// Empties the slot, letting go of its socket: a connecting one is
    /// abandoned, an open one writes what it holds, then `close` (when
    /// given), within a grace period.
    pub(super) fn release(&mut self, close: Option<(u16, String)>) {
        match std::mem::take(self) {
            // Dropping the read half here; the writer task drops the write
            // half, and with it the TCP stream, when it ends.
            SocketSlot::Open(live) => live.writer.finish(close),
            SocketSlot::Polling(link) => link.finish(),
            SocketSlot::Empty | SocketSlot::Connecting { .. } => {}
        }
    }
}

/// An open socket: the read half (polled by the driver) and its writer.
pub(super) struct LiveSocket {
    pub(super) id: SocketId,
    read: SplitStream<Ws>,
    pub(super) writer: Writer,
}

impl LiveSocket {
    /// Splits an open socket and starts its writer on the current `LocalSet`.
    pub(super) fn start(id: SocketId, ws: Box<Ws>) -> LiveSocket {
        let (sink, read) = (*ws).split();
        LiveSocket {
            id,
            read,
            writer: Writer::start(sink),
        }
    }
}

enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// The write half's task and what the driver knows of it.
pub(super) struct Writer {
    frames: mpsc::UnboundedSender<Outgoing>,
    /// Bytes handed to the writer and not yet flushed to the TCP socket: the
    /// native `bufferedAmount`.
    backlog: Rc<Cell<u64>>,
    drained: Rc<Notify>,
    task: JoinHandle<()>,
}

impl Writer {
    fn start(sink: SplitSink<Ws, Message>) -> Writer {
        let (frames, queue) = mpsc::unbounded_channel();
        let backlog = Rc::new(Cell::new(0));
        let drained = Rc::new(Notify::new());
        let task = tokio::task::spawn_local(write_loop(
            sink,
            queue,
            Rc::clone(&backlog),
            Rc::clone(&drained),
        ));
        Writer {
            frames,
            backlog,
            drained,
            task,
        }
    }

    /// Queues a text frame; false when the writer has stopped (its socket
    /// failed).
    pub(super) fn send(&self, text: String) -> bool {
        let len = text.len() as u64;
        if self.frames.send(Outgoing::Text(text)).is_err() {
            return false;
        }
        self.backlog.set(self.backlog.get().saturating_add(len));
        true
    }

    /// Bytes queued and not yet written to the TCP socket.
    pub(super) fn backlog(&self) -> u64 {
        self.backlog.get()
    }

    /// Lets the writer finish on its own (queued frames, then the close
    /// frame if any), and aborts it if that takes longer than the grace.
    fn finish(self, close: Option<(u16, String)>) {
        if let Some((code, reason)) = close {
            // A writer that already stopped has nothing left to close.
            let _ = self.frames.send(Outgoing::Close(code, reason));
        }
        drop(self.frames);
        let abort = self.task.abort_handle();
        let task = self.task;
        tokio::task::spawn_local(async move {
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        });
    }
}

/// Writes queued frames in batches (one flush per batch), keeps the backlog
/// count, and says when it reaches zero.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    backlog: Rc<Cell<u64>>,
    drained: Rc<Notify>,
) {
    while let Some(first) = queue.recv().await {
        let mut written = 0u64;
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outgoing::Text(text) => {
                    written += text.len() as u64;
                    if sink.feed(Message::text(text)).await.is_err() {
                        return; // the read half reports the failure
                    }
                }
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    };
                    // `send` flushes what was fed before the close frame.
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
            next = queue.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
        backlog.set(backlog.get().saturating_sub(written));
        if backlog.get() == 0 {
            drained.notify_one();
        }
    }
    // The driver let go without a close of its own (the peer closed or the
    // link failed): finish the closing handshake if there is one to finish.
    let _ = sink.close().await;
}

/// A WebSocket opened only to learn whether the upgrade works again (while
/// the link long-polls). It sends nothing and is closed as soon as it opens.
pub(super) struct Probe {
    pub(super) id: SocketId,
    connect: LocalBoxFuture<'static, bool>,
}

impl Probe {
    pub(super) fn start(id: SocketId, url: String) -> Probe {
        Probe {
            id,
            connect: Box::pin(async move {
                match tokio_tungstenite::connect_async(url).await {
                    Ok((mut ws, _response)) => {
                        // Say goodbye properly, without holding anyone up.
                        tokio::task::spawn_local(async move {
                            let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
                        });
                        true
                    }
                    Err(_) => false,
                }
            }),
        }
    }

    /// Waits for the probe in `slot` to open (true) or fail; pending forever
    /// when there is none. Cancel-safe: the attempt stays in the slot.
    pub(super) async fn outcome(slot: &mut Option<Probe>) -> (SocketId, bool) {
        match slot {
            Some(probe) => {
                let opened = (&mut probe.connect).await;
                (probe.id, opened)
            }
            None => std::future::pending().await,
        }
    }
}
