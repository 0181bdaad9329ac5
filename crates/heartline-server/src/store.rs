//! Chat history in SQLite, owned by one dedicated thread (an actor) so no
//! blocking database call ever runs on the async runtime.
//!
//! Requests queue up on a channel; the thread takes whatever is waiting (up
//! to [`MAX_BATCH`]) and handles it in one transaction, each request in its
//! own savepoint, then commits once (group commit: a busy room costs one
//! fsync per batch, not per message). Only after the commit does it publish
//! new messages, run join hand-offs and answer — so an ack always means "on
//! disk", and a message is broadcast only once it is stored.
//!
//! The schema is created on open. De-duplication of re-sent messages is a
//! UNIQUE (user, client id) constraint, so it holds across reconnects and
//! restarts.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;

use heartline_protocol::ChatMessage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

/// Most requests handled in one transaction.
pub const MAX_BATCH: usize = 256;

/// A user's identity: the row behind a session token.
pub type UserId = i64;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The room does not exist.
    #[error("unknown room")]
    UnknownRoom,
    /// The store's thread is gone (shutting down).
    #[error("the store is closed")]
    Closed,
}

/// Outcome of storing a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored (and published).
    New(ChatMessage),
    /// The same (user, id) was stored before: nothing was written.
    Duplicate(ChatMessage),
}

/// Runs on the store thread after the commit that saw the history: queues
/// the history for the joining client and registers it as a member.
pub type JoinHandoff = Box<dyn FnOnce(Vec<ChatMessage>, u64) -> bool + Send>;

/// Called on the store thread for each newly committed message, in order.
pub type Publisher = Arc<dyn Fn(&ChatMessage) + Send + Sync>;

enum Request {
    User {
        token: String,
        reply: oneshot::Sender<Result<UserId, StoreError>>,
    },
    CreateRoom {
        room: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Rooms {
        reply: oneshot::Sender<Result<Vec<String>, StoreError>>,
    },
    Insert {
        user: UserId,
        client_id: String,
        room: String,
        from: String,
        text: String,
        at: i64,
        reply: oneshot::Sender<Result<Stored, StoreError>>,
    },
    Join {
        room: String,
        since: Option<u64>,
        limit: usize,
        handoff: JoinHandoff,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// What to do after the commit, in request order.
enum After {
    Reply(Box<dyn FnOnce() + Send>),
    Publish(ChatMessage, Box<dyn FnOnce() + Send>),
}

/// Handle to the store thread. Cloning is cheap; the thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Store {
    tx: std_mpsc::Sender<Request>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` (`:memory:` for a throwaway
    /// one) on a new thread and creates the schema.
    pub async fn open(path: &str, publisher: Publisher) -> Result<Store, StoreError> {
        let (tx, rx) = std_mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let path = path.to_string();
        thread::Builder::new()
            .name("heartline-db".into())
            .spawn(move || match open_db(&path) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    run(conn, rx, publisher);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|_| StoreError::Closed)?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Store { tx })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The user behind a token, registering the token if it is new.
    pub async fn user(&self, token: &str) -> Result<UserId, StoreError> {
        let token = token.to_string();
        self.call(|reply| Request::User { token, reply }).await
    }

    /// Creates a room (no-op if it exists).
    pub async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::CreateRoom { room, reply }).await
    }

    /// All stored rooms.
    pub async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        self.call(|reply| Request::Rooms { reply }).await
    }

    /// Stores a chat message unless this user stored `client_id` before.
    /// Returns after the commit; a new message has been published by then.
    pub async fn insert(
        &self,
        user: UserId,
        client_id: &str,
        room: &str,
        from: &str,
        text: &str,
        at: i64,
    ) -> Result<Stored, StoreError> {
        let (client_id, room, from, text) = (
            client_id.to_string(),
            room.to_string(),
            from.to_string(),
            text.to_string(),
        );
        self.call(|reply| Request::Insert {
            user,
            client_id,
            room,
            from,
            text,
            at,
            reply,
        })
        .await
    }

    /// Creates `room` if needed, reads its history after `since` (or the `limit` most recent
    /// messages when `since` is `None`) and hands it, with the room's last
    /// seq, to `handoff` on the store thread — after every earlier message was
    /// published and before any later one is. Returns what `handoff` returned.
    pub async fn join(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
        handoff: JoinHandoff,
    ) -> Result<bool, StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::Join {
            room,
            since,
            limit,
            handoff,
            reply,
        })
        .await
    }

    /// Moves the write-ahead log into the database file (used at shutdown).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.call(|reply| Request::Checkpoint { reply }).await
    }
}

fn open_db(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // WAL with synchronous=NORMAL: a commit is in the OS once `COMMIT`
    // returns, so killing the process loses nothing acked (only a power cut
    // could lose the last transactions). `:memory:` ignores both.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (
             id         INTEGER PRIMARY KEY,
             token      TEXT NOT NULL UNIQUE,
             created_at INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS rooms (
             name       TEXT PRIMARY KEY,
             last_seq   INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS messages (
             room      TEXT NOT NULL REFERENCES rooms(name),
             seq       INTEGER NOT NULL,
             user_id   INTEGER NOT NULL REFERENCES users(id),
             client_id TEXT NOT NULL,
             sender    TEXT NOT NULL,
             text      TEXT NOT NULL,
             at        INTEGER NOT NULL,
             PRIMARY KEY (room, seq),
             UNIQUE (user_id, client_id)
         );",
    )?;
    Ok(conn)
}

fn run(mut conn: Connection, rx: std_mpsc::Receiver<Request>, publisher: Publisher) {
    // Ends when every `Store` handle is dropped.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        handle_batch(&mut conn, batch, &publisher);
    }
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    tracing::debug!("store thread stopped");
}

fn handle_batch(conn: &mut Connection, batch: Vec<Request>, publisher: &Publisher) {
    let mut after: Vec<After> = Vec::with_capacity(batch.len());
    let mut checkpoints = Vec::new();
    let committed = (|| -> Result<(), rusqlite::Error> {
        let mut tx = conn.transaction()?;
        for req in batch {
            match req {
                Request::Checkpoint { reply } => checkpoints.push(reply),
                req => after.push(handle(&mut tx, req)),
            }
        }
        tx.commit()
    })();
    match committed {
        Ok(()) => {
            for a in after {
                match a {
                    After::Reply(f) => f(),
                    After::Publish(msg, f) => {
                        publisher(&msg);
                        f();
                    }
                }
            }
        }
        Err(e) => {
            // Dropping the closures drops their reply senders: every caller
            // of this batch sees an error, none sees an ack.
            tracing::error!(error = %e, "commit failed; batch refused");
            drop(after);
        }
    }
    for reply in checkpoints {
        let r = conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .map_err(StoreError::from);
        let _ = reply.send(r);
    }
}

/// Runs `f` in a savepoint: its writes are kept only if it succeeds.
fn savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let sp = tx.savepoint()?;
    let out = f(&sp)?;
    sp.commit()?;
    Ok(out)
}

fn reply<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    value: Result<T, StoreError>,
) -> After {
    After::Reply(Box::new(move || {
        let _ = reply.send(value);
    }))
}

fn handle(tx: &mut Transaction<'_>, req: Request) -> After {
    match req {
        Request::User { token, reply: r } => {
            let v = savepoint(tx, |c| {
                c.execute(
                    "INSERT OR IGNORE INTO users (token, created_at) VALUES (?1, ?2)",
                    params![token, crate::now_ms()],
                )?;
                Ok(c.query_row(
                    "SELECT id FROM users WHERE token = ?1",
                    params![token],
                    |row| row.get(0),
                )?)
            });
            reply(r, v)
        }
        Request::CreateRoom { room, reply: r } => {
            let v = savepoint(tx, |c| {
                c.execute(
                    "INSERT OR IGNORE INTO rooms (name, created_at) VALUES (?1, ?2)",
                    params![room, crate::now_ms()],
                )?;
                Ok(())
            });
            reply(r, v)
        }
        Request::Rooms { reply: r } => {
            let v = (|| {
                let mut stmt = tx.prepare_cached("SELECT name FROM rooms ORDER BY name")?;
                let rows = stmt.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<Result<Vec<String>, _>>()?)
            })();
            reply(r, v)
        }
        Request::Insert {
            user,
            client_id,
            room,
            from,
            text,
            at,
            reply: r,
        } => {
            let v = savepoint(tx, |c| insert(c, user, &client_id, &room, &from, &text, at));
            match v {
                Ok(Stored::New(msg)) => {
                    let answer = Stored::New(msg.clone());
                    After::Publish(
                        msg,
                        Box::new(move || {
                            let _ = r.send(Ok(answer));
                        }),
                    )
                }
                other => reply(r, other),
            }
        }
        Request::Join {
            room,
            since,
            limit,
            handoff,
            reply: r,
        } => match savepoint(tx, |c| {
            // Joining is how users create rooms (the hub enforced the limit).
            c.prepare_cached("INSERT OR IGNORE INTO rooms (name, created_at) VALUES (?1, ?2)")?
                .execute(params![room, crate::now_ms()])?;
            history(c, &room, since, limit)
        }) {
            Ok((messages, last_seq)) => After::Reply(Box::new(move || {
                let ok = handoff(messages, last_seq);
                let _ = r.send(Ok(ok));
            })),
            Err(e) => reply(r, Err(e)),
        },
        // Handled by the caller, outside the transaction.
        Request::Checkpoint { reply: r } => reply(r, Ok(())),
    }
}

fn insert(
    c: &Connection,
    user: UserId,
    client_id: &str,
    room: &str,
    from: &str,
    text: &str,
    at: i64,
) -> Result<Stored, StoreError> {
    let existing = c
        .prepare_cached(
            "SELECT room, seq, sender, text, at FROM messages WHERE user_id = ?1 AND client_id = ?2",
        )?
        .query_row(params![user, client_id], |row| {
            Ok(ChatMessage {
                stream: row.get(0)?,
                epoch: 0,
                seq: row.get(1)?,
                id: client_id.to_string(),
                from: row.get(2)?,
                text: row.get(3)?,
                at: row.get(4)?,
            })
        })
        .optional()?;
    if let Some(msg) = existing {
        return Ok(Stored::Duplicate(msg));
    }
    let seq: u64 = c
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = ?1 RETURNING last_seq",
        )?
        .query_row(params![room], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::UnknownRoom)?;
    c.prepare_cached(
        "INSERT INTO messages (room, seq, user_id, client_id, sender, text, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![room, seq, user, client_id, from, text, at])?;
    Ok(Stored::New(ChatMessage {
        stream: room.to_string(),
        epoch: 0,
        seq,
        id: client_id.to_string(),
        from: from.to_string(),
        text: text.to_string(),
        at,
    }))
}

fn history(
    c: &Connection,
    room: &str,
    since: Option<u64>,
    limit: usize,
) -> Result<(Vec<ChatMessage>, u64), StoreError> {
    let last_seq: u64 = c
        .prepare_cached("SELECT last_seq FROM rooms WHERE name = ?1")?
        .query_row(params![room], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::UnknownRoom)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let row_to_msg = |row: &rusqlite::Row<'_>| {
        Ok(ChatMessage {
            stream: room.to_string(),
            epoch: 0,
            seq: row.get(0)?,
            id: row.get(1)?,
            from: row.get(2)?,
            text: row.get(3)?,
            at: row.get(4)?,
        })
    };
    let mut messages = match since {
        // The oldest missed first, so a capped answer has no gap.
        Some(since) => c
            .prepare_cached(
                "SELECT seq, client_id, sender, text, at FROM messages
                 WHERE room = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
            )?
            .query_map(params![room, since, limit], row_to_msg)?
            .collect::<Result<Vec<_>, _>>()?,
        None => c
            .prepare_cached(
                "SELECT seq, client_id, sender, text, at FROM messages
                 WHERE room = ?1 ORDER BY seq DESC LIMIT ?2",
            )?
            .query_map(params![room, limit], row_to_msg)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    if since.is_none() {
        messages.reverse();
    }
    Ok((messages, last_seq))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Mutex;

    fn recorder() -> (Publisher, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Arc::new(move |m: &ChatMessage| s.lock().unwrap().push(m.seq)),
            seen,
        )
    }

    #[tokio::test]
    async fn insert_dedups_and_history_is_ordered() {
        let (publisher, seen) = recorder();
        let store = Store::open(":memory:", publisher).await.unwrap();
        store.create_room("r").await.unwrap();
        let u = store.user("tok").await.unwrap();
        assert_eq!(store.user("tok").await.unwrap(), u);
        let a = store.insert(u, "a", "r", "ada", "one", 1).await.unwrap();
        let b = store.insert(u, "b", "r", "ada", "two", 2).await.unwrap();
        let again = store.insert(u, "a", "r", "ada", "one", 3).await.unwrap();
        assert!(matches!(a, Stored::New(ref m) if m.seq == 1));
        assert!(matches!(b, Stored::New(ref m) if m.seq == 2));
        assert!(matches!(again, Stored::Duplicate(ref m) if m.seq == 1));
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
        assert!(matches!(
            store.insert(u, "c", "nope", "ada", "x", 4).await,
            Err(StoreError::UnknownRoom)
        ));
        // A failed insert leaves no gap.
        let c = store.insert(u, "c", "r", "ada", "three", 5).await.unwrap();
        assert!(matches!(c, Stored::New(ref m) if m.seq == 3));

        let (tx, rx) = oneshot::channel();
        let ok = store
            .join(
                "r",
                Some(1),
                10,
                Box::new(move |msgs, last| {
                    let _ = tx.send((msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), last));
                    true
                }),
            )
            .await
            .unwrap();
        assert!(ok);
        assert_eq!(rx.await.unwrap(), (vec![2, 3], 3));

        let (tx, rx) = oneshot::channel();
        store
            .join(
                "r",
                None,
                2,
                Box::new(move |msgs, last| {
                    let _ = tx.send((msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), last));
                    true
                }),
            )
            .await
            .unwrap();
        assert_eq!(rx.await.unwrap(), (vec![2, 3], 3));
        store.checkpoint().await.unwrap();
    }
}
