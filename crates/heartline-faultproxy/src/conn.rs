//! The accept loop and the per-connection forwarding.
//!
//! Each connection runs in one task: two directions, each a reader and a
//! writer joined by a small bounded queue of `(deliver_at, bytes)` chunks, raced
//! against a "kill" future that watches the link state for a cut or the end of
//! a stall. Each queue holds at most `QUEUE_CHUNKS` chunks and `QUEUE_BYTES`
//! bytes, so memory per connection is bounded; a full queue stops the reader,
//! which pushes back on the sender through TCP flow control.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{LinkState, Mode, Shared};

/// The largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// How many chunks may wait in one direction's queue (for the delay): many,
/// so that a long delay does not throttle a stream of small WebSocket frames.
const QUEUE_CHUNKS: usize = 1024;
/// How many bytes may wait in one direction's queue.
const QUEUE_BYTES: usize = 1024 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Counts a client connection as open for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection is being closed on purpose.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The link was cut.
    Cut,
    /// The connection was stalled and the stall ended.
    StallEnded,
    /// The proxy is going away.
    Shutdown,
}

/// Accepts clients forever; connection tasks live in a `JoinSet`, so aborting
/// this task closes every connection too.
pub(crate) async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    shared.total.fetch_add(1, Ordering::SeqCst);
                    // Subscribing marks the current state as seen: the connection
                    // notices every later change.
                    let mut rx = shared.state.subscribe();
                    let start = *rx.borrow_and_update();
                    if start.mode == Mode::Cut {
                        shared.refused.fetch_add(1, Ordering::SeqCst);
                        tracing::debug!(%peer, "refused a connection: the link is cut");
                        abort_close(client);
                        continue;
                    }
                    let guard = OpenGuard::new(Arc::clone(&shared));
                    let counters = Arc::clone(&shared);
                    tasks.spawn(async move {
                        let _guard = guard;
                        handle(client, peer, upstream, rx, start, &counters).await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "a connection task failed");
                }
            }
        }
    }
}

/// The answer to a refused upgrade, as a proxy that passes only plain HTTP
/// gives it.
const REFUSED_UPGRADE: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 31\r\nConnection: close\r\n\r\nWebSocket upgrades are refused\n";

/// Longest request head read ahead.
const MAX_HEAD: usize = 16 * 1024;

/// Longest wait for a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads until the end of the first request head (`\r\n\r\n`), at most
/// [`MAX_HEAD`] bytes within [`HEAD_TIMEOUT`]; returns every byte read
/// (maybe some of a body too), or `None` if the client went away or took
/// too long. A head that is too long is returned as it is (forwarded
/// unchecked: the upstream server refuses it).
async fn read_head(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 2048];
        while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Ok(true) => Some(head),
        _ => None,
    }
}

/// Whether a request head asks for a WebSocket upgrade.
fn is_websocket_upgrade(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.strip_prefix("upgrade:")
            .is_some_and(|value| value.contains("websocket"))
    })
}

/// Closes a socket with a TCP RST instead of a FIN.
fn abort_close(stream: TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "cannot set SO_LINGER 0; closing normally");
    }
    drop(stream);
}

/// Resolves when this connection must be closed: the link was cut after the
/// connection started, or the connection was stalled (at start or later) and
/// the stall has ended.
async fn kill_signal(mut rx: watch::Receiver<LinkState>, start: LinkState) -> Kill {
    loop {
        {
            let now = rx.borrow_and_update();
            if now.cut_gen != start.cut_gen {
                return Kill::Cut;
            }
            let was_stalled = start.mode == Mode::Stall || now.stall_gen != start.stall_gen;
            if was_stalled && now.mode != Mode::Stall {
                return Kill::StallEnded;
            }
        }
        if rx.changed().await.is_err() {
            return Kill::Shutdown;
        }
    }
}

/// Waits while the link is stalled.
async fn wait_unstalled(rx: &mut watch::Receiver<LinkState>) -> io::Result<()> {
    match rx.wait_for(|s| s.mode != Mode::Stall).await {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other("the proxy is shutting down")),
    }
}

async fn handle(
    mut client: TcpStream,
    peer: SocketAddr,
    upstream_addr: SocketAddr,
    rx: watch::Receiver<LinkState>,
    start: LinkState,
    shared: &Shared,
) {
    if let Err(error) = client.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on the client side");
    }
    let mut kill = pin!(kill_signal(rx.clone(), start));

    if start.mode == Mode::Stall {
        // A half-open link: hold the client, reach nobody, say nothing.
        tracing::debug!(%peer, "connection accepted while stalled: holding it silent");
        let reason = kill.await;
        tracing::debug!(%peer, ?reason, "closing a connection that was stalled");
        abort_close(client);
        return;
    }

    // The first request head, read ahead when upgrades are refused (then
    // forwarded first if it is plain HTTP).
    let mut head = Vec::new();
    if start.refuse_upgrades {
        let Some(read) = read_head(&mut client).await else {
            abort_close(client);
            return;
        };
        if is_websocket_upgrade(&read) {
            shared.refused_upgrades.fetch_add(1, Ordering::SeqCst);
            tracing::debug!(%peer, "refused a WebSocket upgrade");
            let _ = client.write_all(REFUSED_UPGRADE).await;
            let _ = client.shutdown().await;
            return;
        }
        head = read;
    }

    let mut upstream = tokio::select! {
        connected = TcpStream::connect(upstream_addr) => match connected {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::warn!(%peer, %upstream_addr, %error, "cannot reach the upstream server");
                abort_close(client);
                return;
            }
        },
        reason = &mut kill => {
            tracing::debug!(%peer, ?reason, "closing a connection before it reached upstream");
            abort_close(client);
            return;
        }
    };
    if let Err(error) = upstream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on the upstream side");
    }
    if !head.is_empty()
        && let Err(error) = upstream.write_all(&head).await
    {
        tracing::debug!(%peer, %error, "cannot forward the request head");
        abort_close(client);
        abort_close(upstream);
        return;
    }
    tracing::debug!(%peer, "forwarding a new connection");

    let outcome = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let both_ways = async {
            tokio::try_join!(
                pipe(client_read, upstream_write, rx.clone()),
                pipe(upstream_read, client_write, rx.clone()),
            )
        };
        tokio::select! {
            done = both_ways => done.map(|_| ()).map_err(Ok),
            reason = &mut kill => Err(Err(reason)),
        }
    };

    match outcome {
        Ok(()) => {
            tracing::debug!(%peer, "connection closed by its ends");
        }
        Err(Ok(error)) => {
            // A stalled client must see silence, not a close: keep both
            // sockets until the stall ends (or a cut comes).
            let stalled = rx.borrow().mode == Mode::Stall;
            if stalled {
                let reason = kill.await;
                tracing::debug!(%peer, %error, ?reason, "connection failed while stalled");
            } else {
                tracing::debug!(%peer, %error, "connection failed");
            }
            abort_close(client);
            abort_close(upstream);
        }
        Err(Err(reason)) => {
            tracing::debug!(%peer, ?reason, "closing a connection on purpose");
            abort_close(client);
            abort_close(upstream);
        }
    }
}

/// Forwards `reader` to `writer` until EOF, following the link mode: nothing
/// moves while stalled, and each chunk is held back by the delay in force when
/// it was read. EOF is passed on as a write shutdown (a FIN), never while
/// stalled.
async fn pipe<R, W>(mut reader: R, mut writer: W, rx: watch::Receiver<LinkState>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (queue_tx, mut queue_rx) =
        mpsc::channel::<(Instant, Vec<u8>, OwnedSemaphorePermit)>(QUEUE_CHUNKS);
    let queued_bytes = Arc::new(Semaphore::new(QUEUE_BYTES));
    let mut read_rx = rx.clone();
    let mut write_rx = rx;

    let read_side = async move {
        let mut buf = vec![0_u8; CHUNK];
        loop {
            wait_unstalled(&mut read_rx).await?;
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                // Dropping the queue's sender tells the writer about the EOF.
                return Ok::<(), io::Error>(());
            }
            let delay = match read_rx.borrow().mode {
                Mode::Delay(delay) => delay,
                _ => Duration::ZERO,
            };
            let deliver_at = Instant::now() + delay;
            let chunk = buf.get(..n).unwrap_or_default().to_vec();
            // n <= CHUNK, far below both u32::MAX and QUEUE_BYTES.
            let permits = u32::try_from(n).unwrap_or(u32::MAX);
            let Ok(permit) = Arc::clone(&queued_bytes).acquire_many_owned(permits).await else {
                return Ok(());
            };
            if queue_tx.send((deliver_at, chunk, permit)).await.is_err() {
                return Ok(());
            }
        }
    };

    let write_side = async move {
        while let Some((deliver_at, chunk, _permit)) = queue_rx.recv().await {
            if deliver_at > Instant::now() {
                tokio::time::sleep_until(deliver_at).await;
            }
            wait_unstalled(&mut write_rx).await?;
            writer.write_all(&chunk).await?;
        }
        wait_unstalled(&mut write_rx).await?;
        writer.shutdown().await
    };

    tokio::try_join!(read_side, write_side).map(|_| ())
}
