//! The shared store: PostgreSQL through a pool of async connections, so
//! several server processes can write one history.
//!
//! A room's `seq` comes from `UPDATE rooms SET last_seq = last_seq + 1 …
//! RETURNING` inside the inserting transaction. The row lock it takes is held
//! until that transaction ends, so the writers of one room, whichever process
//! they run in, commit one after the other in `seq` order, and a rolled-back
//! insert gives its number back: `seq` stays gap-free. De-duplication is the
//! UNIQUE (user, client id) constraint, as in SQLite.
//!
//! Messages are published after their commit by the inserting task, so two
//! messages of one room may reach the publisher out of order; the hub puts
//! them back in order (and fills a gap from [`ChatStore::messages_after`]).

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use heartline_protocol::ChatMessage;
use tokio::sync::oneshot;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{
    ChatStore, ExpiredHistory, History, HistoryQuery, JoinHandoff, JoinOutcome, Page, Publisher,
    RoomStream, StoreError, Stored, UserId,
};

/// Connections each process keeps open at most.
pub const POOL_SIZE: usize = 16;

/// Versioned migrations, applied in order, each once, in one transaction.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// Any constant: the advisory lock that keeps two processes starting at
/// once from migrating the same database twice.
const MIGRATION_LOCK: i64 = 0x6865_6172_746c_696e; // "heartlin"

/// Handle to a PostgreSQL history. Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    publisher: Publisher,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            e => StoreError::Pool(e.to_string()),
        }
    }
}

/// A read-only transaction that sees one snapshot throughout, so a room's
/// `last_seq` or epoch and its messages agree.
async fn snapshot(client: &mut Object) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// `BIGINT` columns hold values that are never negative (`seq`, epochs).
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The other way: `seq` and epochs stay far below `i64::MAX`; anything
/// larger means "the end".
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`),
    /// and creates or migrates the schema.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), heartline_server::store::StoreError> {
    /// use std::sync::Arc;
    /// use heartline_server::store::PgStore;
    /// let store = PgStore::open("postgres://app@127.0.0.1:5432/chat", Arc::new(|_m| {})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str, publisher: Publisher) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PgStore { pool, publisher };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tracing::info!(version, "postgres: applying migration");
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[version, &crate::now_ms()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A stored message of `room` from a `seq, client_id, sender, text, at`
    /// row.
    fn message(room: &str, epoch: u64, row: &Row) -> ChatMessage {
        ChatMessage {
            stream: room.to_string(),
            epoch,
            seq: unsigned(row.get(0)),
            id: row.get(1),
            from: row.get(2),
            text: row.get(3),
            at: row.get(4),
        }
    }

    /// The stored message `client_id` of `user`, if any.
    async fn existing(
        client: &impl tokio_postgres::GenericClient,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let row = client
            .query_opt(
                "SELECT m.room, r.epoch, m.seq, m.sender, m.text, m.at
                 FROM messages m JOIN rooms r ON r.name = m.room
                 WHERE m.user_id = $1 AND m.client_id = $2",
                &[&user, &client_id],
            )
            .await?;
        Ok(row.map(|row| ChatMessage {
            stream: row.get(0),
            epoch: unsigned(row.get(1)),
            seq: unsigned(row.get(2)),
            id: client_id.to_string(),
            from: row.get(3),
            text: row.get(4),
            at: row.get(5),
        }))
    }

    async fn ensure_room(&self, room: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO rooms (name, created_at, epoch) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET active = TRUE WHERE rooms.active = FALSE",
                &[&room, &crate::now_ms(), &signed(crate::ids::new_epoch())],
            )
            .await?;
        Ok(())
    }

    /// Reads `query`'s history of `room` in one snapshot (so `last_seq` and
    /// the messages agree).
    async fn history(&self, room: &str, query: HistoryQuery) -> Result<History, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let row = tx
            .query_opt(
                "SELECT last_seq, epoch FROM rooms WHERE name = $1",
                &[&room],
            )
            .await?
            .ok_or(StoreError::UnknownRoom)?;
        let (last_seq, epoch) = (unsigned(row.get(0)), unsigned(row.get(1)));
        // A position in another epoch means nothing here: start from seq 1.
        let since = match query.epoch {
            Some(theirs) if theirs != epoch => Some(0),
            _ => query.since,
        };
        let limit = i64::try_from(if since.is_some() {
            query.max
        } else {
            query.recent
        })
        .unwrap_or(i64::MAX);
        let mut messages: Vec<ChatMessage> = match since {
            // The oldest missed first, so a capped answer has no gap.
            Some(since) => tx
                .query(
                    "SELECT seq, client_id, sender, text, at FROM messages
                     WHERE room = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3",
                    &[&room, &signed(since), &limit],
                )
                .await?
                .iter()
                .map(|row| Self::message(room, epoch, row))
                .collect(),
            None => tx
                .query(
                    "SELECT seq, client_id, sender, text, at FROM messages
                     WHERE room = $1 ORDER BY seq DESC LIMIT $2",
                    &[&room, &limit],
                )
                .await?
                .iter()
                .map(|row| Self::message(room, epoch, row))
                .collect(),
        };
        if since.is_none() {
            messages.reverse();
        }
        tx.commit().await?;
        Ok(History {
            messages,
            last_seq,
            epoch,
        })
    }
}

impl ChatStore for PgStore {
    async fn user(&self, token: &str) -> Result<UserId, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO users (token, created_at, last_seen) VALUES ($1, $2, $2)
                 ON CONFLICT (token) DO UPDATE SET last_seen = excluded.last_seen
                 RETURNING id",
                &[&token, &crate::now_ms()],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        self.ensure_room(room).await
    }

    async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT name FROM rooms WHERE active ORDER BY name", &[])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn room_streams(&self) -> Result<Vec<RoomStream>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, epoch, last_seq FROM rooms WHERE active ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| RoomStream {
                name: row.get(0),
                epoch: unsigned(row.get(1)),
                last_seq: unsigned(row.get(2)),
            })
            .collect())
    }

    async fn page(&self, room: &str, before: u64, limit: u32) -> Result<Page, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let epoch = tx
            .query_opt(
                "SELECT epoch FROM rooms WHERE name = $1 AND active",
                &[&room],
            )
            .await?
            .map(|row| unsigned(row.get(0)))
            .ok_or(StoreError::UnknownRoom)?;
        // One more than asked tells whether older messages exist.
        let fetch = i64::from(limit).saturating_add(1);
        let mut messages: Vec<ChatMessage> = tx
            .query(
                "SELECT seq, client_id, sender, text, at FROM messages
                 WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                &[&room, &signed(before), &fetch],
            )
            .await?
            .iter()
            .map(|row| Self::message(room, epoch, row))
            .collect();
        tx.commit().await?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok(Page {
            epoch,
            messages,
            has_more,
        })
    }

    async fn user_count(&self) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM users", &[])
            .await?;
        Ok(unsigned(row.get(0)))
    }

    fn expire_rooms(
        &self,
        rooms: Vec<String>,
        history: ExpiredHistory,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        let store = self.clone();
        tokio::spawn(async move {
            let done = async {
                let mut client = store.client().await?;
                let tx = client.transaction().await?;
                match history {
                    ExpiredHistory::Keep => {
                        tx.execute(
                            "UPDATE rooms SET active = FALSE WHERE name = ANY($1)",
                            &[&rooms],
                        )
                        .await?;
                    }
                    ExpiredHistory::Delete => {
                        tx.execute("DELETE FROM messages WHERE room = ANY($1)", &[&rooms])
                            .await?;
                        tx.execute("DELETE FROM rooms WHERE name = ANY($1)", &[&rooms])
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            };
            let _ = reply.send(done.await);
        });
        rx
    }

    async fn expire_users(
        &self,
        idle_before: i64,
        online: Vec<UserId>,
    ) -> Result<usize, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM users
                 WHERE last_seen < $1
                   AND NOT EXISTS (SELECT 1 FROM messages WHERE user_id = users.id)
                   AND id <> ALL($2)",
                &[&idle_before, &online],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn insert(
        &self,
        user: UserId,
        client_id: &str,
        room: &str,
        from: &str,
        text: &str,
        at: i64,
    ) -> Result<Stored, StoreError> {
        let mut client = self.client().await?;
        if let Some(msg) = Self::existing(&**client, user, client_id).await? {
            return Ok(Stored::Duplicate(msg));
        }
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 AND active
                 RETURNING last_seq, epoch",
                &[&room],
            )
            .await?
        else {
            return Err(StoreError::UnknownRoom);
        };
        let (seq, epoch) = (unsigned(row.get(0)), unsigned(row.get(1)));
        let inserted = tx
            .execute(
                "INSERT INTO messages (room, seq, user_id, client_id, sender, text, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (user_id, client_id) DO NOTHING",
                &[&room, &signed(seq), &user, &client_id, &from, &text, &at],
            )
            .await?;
        if inserted == 0 {
            // The same message, re-sent through another connection (maybe
            // another process), committed first: give the seq back.
            tx.rollback().await?;
            return Self::existing(&**client, user, client_id)
                .await?
                .map(Stored::Duplicate)
                .ok_or(StoreError::UnknownRoom);
        }
        tx.commit().await?;
        let msg = ChatMessage {
            stream: room.to_string(),
            epoch,
            seq,
            id: client_id.to_string(),
            from: from.to_string(),
            text: text.to_string(),
            at,
        };
        (self.publisher)(&msg);
        Ok(Stored::New(msg))
    }

    async fn join(
        &self,
        room: &str,
        query: HistoryQuery,
        handoff: JoinHandoff,
    ) -> Result<JoinOutcome, StoreError> {
        // Joining is how users create rooms (the hub enforced the limit).
        self.ensure_room(room).await?;
        let history = self.history(room, query).await?;
        Ok(handoff(history))
    }

    async fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<History, StoreError> {
        self.history(room, HistoryQuery::after(after, limit)).await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        // Every commit is already durable: nothing is buffered here.
        Ok(())
    }
}
