//! The embedded store: SQLite, owned by one dedicated thread (an actor) so
//! no blocking database call ever runs on the async runtime.
//!
//! Requests queue up on a channel; the thread takes whatever is waiting (up
//! to [`MAX_BATCH`]) and handles it in one transaction, each request in its
//! own savepoint, then commits once (group commit: a busy room costs one
//! fsync per batch, not per message). Only after the commit does it publish
//! new messages, run join hand-offs and answer — so an ack always means "on
//! disk", and a message is broadcast only once it is stored. One thread
//! means messages are published in `seq` order and a join's hand-off sits
//! exactly between two publishes.

use std::sync::mpsc as std_mpsc;
use std::thread;

use heartline_protocol::ChatMessage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::schema::open_db;
use super::{
    ChatStore, ExpiredHistory, History, HistoryQuery, JoinHandoff, JoinOutcome, Page, Publisher,
    RoomStream, StoreError, Stored, UserId,
};

/// Most requests handled in one transaction.
pub const MAX_BATCH: usize = 256;

enum Request {
    User {
        token: String,
        reply: oneshot::Sender<Result<UserId, StoreError>>,
    },
    CreateRoom {
        room: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    ExpireRooms {
        rooms: Vec<String>,
        history: ExpiredHistory,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    ExpireUsers {
        idle_before: i64,
        online: Vec<UserId>,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    Rooms {
        reply: oneshot::Sender<Result<Vec<String>, StoreError>>,
    },
    RoomStreams {
        reply: oneshot::Sender<Result<Vec<RoomStream>, StoreError>>,
    },
    Page {
        room: String,
        before: u64,
        limit: u32,
        reply: oneshot::Sender<Result<Page, StoreError>>,
    },
    UserCount {
        reply: oneshot::Sender<Result<u64, StoreError>>,
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
        query: HistoryQuery,
        handoff: JoinHandoff,
        reply: oneshot::Sender<Result<JoinOutcome, StoreError>>,
    },
    MessagesAfter {
        room: String,
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Result<History, StoreError>>,
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
pub struct SqliteStore {
    tx: std_mpsc::Sender<Request>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` (`:memory:` for a throwaway
    /// one) on a new thread and creates the schema.
    pub async fn open(path: &str, publisher: Publisher) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore { tx })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl ChatStore for SqliteStore {
    /// The user behind a token, registering the token if it is new (or its
    /// user expired), and marking it seen now.
    async fn user(&self, token: &str) -> Result<UserId, StoreError> {
        let token = token.to_string();
        self.call(|reply| Request::User { token, reply }).await
    }

    /// Creates a room (no-op if it exists).
    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::CreateRoom { room, reply }).await
    }

    /// All stored rooms that have not expired.
    async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        self.call(|reply| Request::Rooms { reply }).await
    }

    /// Every active room with its epoch and highest `seq`, sorted by name.
    async fn room_streams(&self) -> Result<Vec<RoomStream>, StoreError> {
        self.call(|reply| Request::RoomStreams { reply }).await
    }

    /// Up to `limit` messages of `room` with `seq < before`: the newest of
    /// them, returned oldest first, and whether older ones exist. One range
    /// scan of the `(room, seq)` primary key. [`StoreError::UnknownRoom`] if
    /// the room does not exist or expired.
    async fn page(&self, room: &str, before: u64, limit: u32) -> Result<Page, StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::Page {
            room,
            before,
            limit,
            reply,
        })
        .await
    }

    /// How many users (identities) are stored.
    async fn user_count(&self) -> Result<u64, StoreError> {
        self.call(|reply| Request::UserCount { reply }).await
    }

    /// Expires `rooms`, deleting or keeping their history. Queued at once,
    /// so a request made after this call returns sees the rooms expired;
    /// the returned receiver tells when it is done.
    fn expire_rooms(
        &self,
        rooms: Vec<String>,
        history: ExpiredHistory,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        // A closed store drops `reply`: the receiver then reports it.
        let _ = self.tx.send(Request::ExpireRooms {
            rooms,
            history,
            reply,
        });
        rx
    }

    /// Deletes users last seen before `idle_before` (ms since the Unix
    /// epoch) who have no stored message and are not `online`. Returns how
    /// many were deleted.
    ///
    /// Users with messages stay: their (user, id) pairs are what makes a
    /// re-sent message a duplicate, so their token must keep mapping to them.
    async fn expire_users(
        &self,
        idle_before: i64,
        online: Vec<UserId>,
    ) -> Result<usize, StoreError> {
        self.call(|reply| Request::ExpireUsers {
            idle_before,
            online,
            reply,
        })
        .await
    }

    /// Stores a chat message unless this user stored `client_id` before.
    /// Returns after the commit; a new message has been published by then.
    async fn insert(
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

    /// Creates (or reactivates) `room` if needed, reads the history `query`
    /// asks for and hands it to `handoff` on the store thread — after every
    /// earlier message was published and before any later one is. Returns
    /// what `handoff` returned.
    async fn join(
        &self,
        room: &str,
        query: HistoryQuery,
        handoff: JoinHandoff,
    ) -> Result<JoinOutcome, StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::Join {
            room,
            query,
            handoff,
            reply,
        })
        .await
    }

    async fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<History, StoreError> {
        let room = room.to_string();
        self.call(|reply| Request::MessagesAfter {
            room,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Moves the write-ahead log into the database file (used at shutdown).
    async fn checkpoint(&self) -> Result<(), StoreError> {
        self.call(|reply| Request::Checkpoint { reply }).await
    }
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
                let now = crate::now_ms();
                Ok(c.prepare_cached(
                    "INSERT INTO users (token, created_at, last_seen) VALUES (?1, ?2, ?2)
                     ON CONFLICT (token) DO UPDATE SET last_seen = excluded.last_seen
                     RETURNING id",
                )?
                .query_row(params![token, now], |row| row.get(0))?)
            });
            reply(r, v)
        }
        Request::CreateRoom { room, reply: r } => {
            let v = savepoint(tx, |c| {
                ensure_room(c, &room)?;
                Ok(())
            });
            reply(r, v)
        }
        Request::ExpireRooms {
            rooms,
            history,
            reply: r,
        } => {
            let v = savepoint(tx, |c| {
                for room in &rooms {
                    match history {
                        ExpiredHistory::Keep => {
                            c.prepare_cached("UPDATE rooms SET active = 0 WHERE name = ?1")?
                                .execute(params![room])?;
                        }
                        ExpiredHistory::Delete => {
                            c.prepare_cached("DELETE FROM messages WHERE room = ?1")?
                                .execute(params![room])?;
                            c.prepare_cached("DELETE FROM rooms WHERE name = ?1")?
                                .execute(params![room])?;
                        }
                    }
                }
                Ok(())
            });
            reply(r, v)
        }
        Request::ExpireUsers {
            idle_before,
            online,
            reply: r,
        } => {
            let v = savepoint(tx, |c| {
                let online = serde_json::to_string(&online).unwrap_or_else(|_| "[]".into());
                Ok(c.prepare_cached(
                    "DELETE FROM users
                     WHERE last_seen < ?1
                       AND NOT EXISTS (SELECT 1 FROM messages WHERE user_id = users.id)
                       AND id NOT IN (SELECT value FROM json_each(?2))",
                )?
                .execute(params![idle_before, online])?)
            });
            reply(r, v)
        }
        Request::Rooms { reply: r } => {
            let v = (|| {
                let mut stmt =
                    tx.prepare_cached("SELECT name FROM rooms WHERE active = 1 ORDER BY name")?;
                let rows = stmt.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<Result<Vec<String>, _>>()?)
            })();
            reply(r, v)
        }
        Request::RoomStreams { reply: r } => {
            let v = (|| {
                let mut stmt = tx.prepare_cached(
                    "SELECT name, epoch, last_seq FROM rooms WHERE active = 1 ORDER BY name",
                )?;
                let rows = stmt.query_map([], |row| {
                    Ok(RoomStream {
                        name: row.get(0)?,
                        epoch: row.get(1)?,
                        last_seq: row.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })();
            reply(r, v)
        }
        Request::Page {
            room,
            before,
            limit,
            reply: r,
        } => reply(r, page(tx, &room, before, limit)),
        Request::UserCount { reply: r } => {
            let v = tx
                .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
                .map_err(StoreError::from);
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
            query,
            handoff,
            reply: r,
        } => match savepoint(tx, |c| {
            // Joining is how users create rooms (the hub enforced the limit).
            ensure_room(c, &room)?;
            history(c, &room, query)
        }) {
            Ok(history) => After::Reply(Box::new(move || {
                let ok = handoff(history);
                let _ = r.send(Ok(ok));
            })),
            Err(e) => reply(r, Err(e)),
        },
        Request::MessagesAfter {
            room,
            after,
            limit,
            reply: r,
        } => reply(r, history(tx, &room, HistoryQuery::after(after, limit))),
        // Handled by the caller, outside the transaction.
        Request::Checkpoint { reply: r } => reply(r, Ok(())),
    }
}

/// Creates a room with a fresh epoch, or reactivates an expired one kept
/// with its history.
fn ensure_room(c: &Connection, room: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO rooms (name, created_at, epoch) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET active = 1 WHERE active = 0",
    )?
    .execute(params![room, crate::now_ms(), crate::ids::new_epoch()])?;
    Ok(())
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
            "SELECT m.room, r.epoch, m.seq, m.sender, m.text, m.at
             FROM messages m JOIN rooms r ON r.name = m.room
             WHERE m.user_id = ?1 AND m.client_id = ?2",
        )?
        .query_row(params![user, client_id], |row| {
            Ok(ChatMessage {
                stream: row.get(0)?,
                epoch: row.get(1)?,
                seq: row.get(2)?,
                id: client_id.to_string(),
                from: row.get(3)?,
                text: row.get(4)?,
                at: row.get(5)?,
            })
        })
        .optional()?;
    if let Some(msg) = existing {
        return Ok(Stored::Duplicate(msg));
    }
    let (seq, epoch): (u64, u64) = c
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = ?1 AND active = 1
             RETURNING last_seq, epoch",
        )?
        .query_row(params![room], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or(StoreError::UnknownRoom)?;
    c.prepare_cached(
        "INSERT INTO messages (room, seq, user_id, client_id, sender, text, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![room, seq, user, client_id, from, text, at])?;
    Ok(Stored::New(ChatMessage {
        stream: room.to_string(),
        epoch,
        seq,
        id: client_id.to_string(),
        from: from.to_string(),
        text: text.to_string(),
        at,
    }))
}

fn page(c: &Connection, room: &str, before: u64, limit: u32) -> Result<Page, StoreError> {
    let epoch: u64 = c
        .prepare_cached("SELECT epoch FROM rooms WHERE name = ?1 AND active = 1")?
        .query_row(params![room], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::UnknownRoom)?;
    // SQLite integers are i64: a larger `before` means "from the newest".
    let before = i64::try_from(before).unwrap_or(i64::MAX);
    // One more than asked tells whether older messages exist.
    let fetch = i64::from(limit).saturating_add(1);
    let mut messages = c
        .prepare_cached(
            "SELECT seq, client_id, sender, text, at FROM messages
             WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )?
        .query_map(params![room, before, fetch], |row| {
            Ok(ChatMessage {
                stream: room.to_string(),
                epoch,
                seq: row.get(0)?,
                id: row.get(1)?,
                from: row.get(2)?,
                text: row.get(3)?,
                at: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    messages.reverse();
    Ok(Page {
        epoch,
        messages,
        has_more,
    })
}

fn history(c: &Connection, room: &str, query: HistoryQuery) -> Result<History, StoreError> {
    let (last_seq, epoch): (u64, u64) = c
        .prepare_cached("SELECT last_seq, epoch FROM rooms WHERE name = ?1")?
        .query_row(params![room], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or(StoreError::UnknownRoom)?;
    // A position in another epoch means nothing here: start from seq 1.
    let since = match query.epoch {
        Some(theirs) if theirs != epoch => Some(0),
        // SQLite integers are i64: a larger `since` means "nothing missed".
        _ => query.since.map(|s| s.min(i64::MAX as u64)),
    };
    let limit = if since.is_some() {
        query.max
    } else {
        query.recent
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let row_to_msg = |row: &rusqlite::Row<'_>| {
        Ok(ChatMessage {
            stream: room.to_string(),
            epoch,
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
    Ok(History {
        messages,
        last_seq,
        epoch,
    })
}
