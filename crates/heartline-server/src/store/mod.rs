//! Chat history: users, rooms and messages, behind one trait
//! ([`ChatStore`]) with two implementations chosen by `--db`:
//!
//! - [`SqliteStore`], the embedded default (a file path or `:memory:`);
//! - [`PgStore`], PostgreSQL (`postgres://…`), which several server
//!   processes can share.
//!
//! Both keep the same semantics, and `tests.rs` runs one suite on both:
//! per-room `seq` gap-free and strictly increasing (also with several
//! writers), de-duplication of re-sent messages by (user, client id), an
//! ack only after the commit, and a message published only once stored.
//! Each room has a random stream `epoch`, chosen when its row is created: a
//! room created again after it expired, or in a wiped database, starts a new
//! epoch, so clients do not take its `seq` 1 for a message they already
//! have.

use std::future::Future;
use std::sync::Arc;

use heartline_protocol::ChatMessage;
use tokio::sync::oneshot;

mod postgres;
mod schema;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::{MAX_BATCH, SqliteStore};

/// A user's identity: the row behind a session token.
pub type UserId = i64;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused, or the connection to it failed.
    #[error("postgres error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
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

/// Runs after the commit that saw the history (on the SQLite store's thread,
/// between two publishes): queues the history for the joining client and
/// registers it as a member.
pub type JoinHandoff = Box<dyn FnOnce(History) -> JoinOutcome + Send>;

/// What a [`JoinHandoff`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The client is a member and has its history.
    Joined,
    /// The room is gone, or the client's queue is full (it is being closed).
    Failed,
    /// The history was read before messages this process has already
    /// delivered were committed (possible only with several writers, as
    /// with PostgreSQL), and what the room delivered during the read does
    /// not cover the difference: read it again.
    Stale,
}

/// What a `join` reads: the history to replay and where the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Messages to replay, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The room's highest `seq`.
    pub last_seq: u64,
    /// The room's stream epoch.
    pub epoch: u64,
}

/// Which history a `join` wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The last `seq` the client has; `None` for the recent history.
    pub since: Option<u64>,
    /// The epoch `since` belongs to. If it is not the room's, `since` is
    /// ignored and the history is sent from `seq` 1.
    pub epoch: Option<u64>,
    /// Messages sent without `since`.
    pub recent: usize,
    /// Most messages sent with `since` (the oldest missed first).
    pub max: usize,
}

impl HistoryQuery {
    /// Up to `limit` messages after `seq` `after`, oldest first, in the
    /// room's current epoch: what [`ChatStore::messages_after`] reads.
    ///
    /// ```
    /// use heartline_server::store::HistoryQuery;
    /// let q = HistoryQuery::after(7, 100);
    /// assert_eq!((q.since, q.epoch, q.max), (Some(7), None, 100));
    /// ```
    pub fn after(after: u64, limit: usize) -> HistoryQuery {
        HistoryQuery {
            since: Some(after),
            epoch: None,
            recent: limit,
            max: limit,
        }
    }
}

/// One page of older history, as [`Store::page`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The room's stream epoch.
    pub epoch: u64,
    /// Messages with `seq < before`, oldest first (the newest `limit`).
    pub messages: Vec<ChatMessage>,
    /// Whether messages older than the first one exist.
    pub has_more: bool,
}

/// Where a room's stream is: its epoch and highest `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStream {
    /// Room name.
    pub name: String,
    /// Stream epoch.
    pub epoch: u64,
    /// Highest `seq` (0 for no message).
    pub last_seq: u64,
}

/// What to do with the messages of an expired room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredHistory {
    /// Delete the room and its messages: a room of that name created later
    /// starts a new stream (new epoch, `seq` from 1).
    Delete,
    /// Keep them: the room is only deactivated (not loaded at start, not
    /// counted); joining it again continues the same stream.
    Keep,
}

/// Called for each newly committed message, after its commit: by SQLite in
/// `seq` order on its thread; by PostgreSQL on the inserting task, so two
/// messages of one room may be published out of order (the hub reorders).
pub type Publisher = Arc<dyn Fn(&ChatMessage) + Send + Sync>;

/// The operations of a chat history store. Every method answers after the
/// database answered; writes are acked only once committed.
///
/// ```no_run
/// # async fn demo() -> Result<(), heartline_server::store::StoreError> {
/// use std::sync::Arc;
/// use heartline_server::store::{ChatStore, Store, Stored};
/// let store = Store::open(":memory:", Arc::new(|_msg| {})).await?;
/// store.create_room("lobby").await?;
/// let user = store.user("a-token-of-16-chars").await?;
/// let stored = store.insert(user, "c1", "lobby", "ada", "hello", 0).await?;
/// assert!(matches!(stored, Stored::New(m) if m.seq == 1));
/// # Ok(()) }
/// ```
pub trait ChatStore: Clone + Send + Sync + 'static {
    /// The user behind a token, registering the token if it is new (or its
    /// user expired), and marking it seen now.
    fn user(&self, token: &str) -> impl Future<Output = Result<UserId, StoreError>> + Send;

    /// Creates a room (no-op if it exists).
    fn create_room(&self, room: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// All stored rooms that have not expired.
    fn rooms(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Every active room with its epoch and highest `seq`, sorted by name.
    fn room_streams(&self) -> impl Future<Output = Result<Vec<RoomStream>, StoreError>> + Send;

    /// Up to `limit` messages of `room` with `seq < before`: the newest of
    /// them, returned oldest first, and whether older ones exist. One range
    /// scan of the `(room, seq)` primary key. [`StoreError::UnknownRoom`] if
    /// the room does not exist or expired.
    fn page(
        &self,
        room: &str,
        before: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// How many users (identities) are stored.
    fn user_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Expires `rooms`, deleting or keeping their history. Queued at once
    /// (SQLite: a request made after this call returns sees the rooms
    /// expired); the returned receiver tells when it is done.
    fn expire_rooms(
        &self,
        rooms: Vec<String>,
        history: ExpiredHistory,
    ) -> oneshot::Receiver<Result<(), StoreError>>;

    /// Deletes users last seen before `idle_before` (ms since the Unix
    /// epoch) who have no stored message and are not `online`. Returns how
    /// many were deleted.
    ///
    /// Users with messages stay: their (user, id) pairs are what makes a
    /// re-sent message a duplicate, so their token must keep mapping to them.
    fn expire_users(
        &self,
        idle_before: i64,
        online: Vec<UserId>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Stores a chat message unless this user stored `client_id` before.
    /// Returns after the commit; a new message has been published by then.
    fn insert(
        &self,
        user: UserId,
        client_id: &str,
        room: &str,
        from: &str,
        text: &str,
        at: i64,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;

    /// Creates (or reactivates) `room` if needed, reads the history `query`
    /// asks for and hands it to `handoff` after the read. With SQLite that
    /// is after every earlier message was published and before any later
    /// one is; with PostgreSQL the hub checks it (see
    /// [`JoinOutcome::Stale`]). Returns what `handoff` returned.
    fn join(
        &self,
        room: &str,
        query: HistoryQuery,
        handoff: JoinHandoff,
    ) -> impl Future<Output = Result<JoinOutcome, StoreError>> + Send;

    /// Up to `limit` messages of `room` with `seq > after`, oldest first,
    /// with the room's epoch and highest `seq`: what fills a gap in the
    /// stream a process delivers.
    fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<History, StoreError>> + Send;

    /// Flushes what the database buffers (SQLite: moves the write-ahead log
    /// into the file; used at shutdown).
    fn checkpoint(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The store `--db` chose: SQLite for a path or `:memory:`, PostgreSQL for
/// a `postgres://` or `postgresql://` URL.
///
/// ```no_run
/// # async fn demo() -> Result<(), heartline_server::store::StoreError> {
/// use std::sync::Arc;
/// use heartline_server::store::Store;
/// let embedded = Store::open("heartline.db", Arc::new(|_msg| {})).await?;
/// let shared = Store::open("postgres://app@127.0.0.1/heartline", Arc::new(|_msg| {})).await?;
/// assert!(!embedded.is_shared() && shared.is_shared());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub enum Store {
    /// The embedded store.
    Sqlite(SqliteStore),
    /// PostgreSQL, shareable by several processes.
    Postgres(PgStore),
}

/// Whether `db` names a PostgreSQL database rather than a SQLite file.
///
/// ```
/// use heartline_server::store::is_postgres_url;
/// assert!(is_postgres_url("postgres://u@127.0.0.1:5432/db"));
/// assert!(!is_postgres_url("heartline.db") && !is_postgres_url(":memory:"));
/// ```
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

impl Store {
    /// Opens the store `db` names (see [`is_postgres_url`]), creating or
    /// migrating its schema. `publisher` is called with each new message
    /// once committed.
    pub async fn open(db: &str, publisher: Publisher) -> Result<Store, StoreError> {
        if is_postgres_url(db) {
            Ok(Store::Postgres(PgStore::open(db, publisher).await?))
        } else {
            Ok(Store::Sqlite(SqliteStore::open(db, publisher).await?))
        }
    }

    /// Whether other processes may write to this store too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }
}

/// Forwards to the chosen store.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call.await,
            Store::Postgres($s) => $call.await,
        }
    };
}

impl ChatStore for Store {
    async fn user(&self, token: &str) -> Result<UserId, StoreError> {
        delegate!(self, s => s.user(token))
    }
    async fn create_room(&self, room: &str) -> Result<(), StoreError> {
        delegate!(self, s => s.create_room(room))
    }
    async fn rooms(&self) -> Result<Vec<String>, StoreError> {
        delegate!(self, s => s.rooms())
    }
    async fn room_streams(&self) -> Result<Vec<RoomStream>, StoreError> {
        delegate!(self, s => s.room_streams())
    }
    async fn page(&self, room: &str, before: u64, limit: u32) -> Result<Page, StoreError> {
        delegate!(self, s => s.page(room, before, limit))
    }
    async fn user_count(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.user_count())
    }
    fn expire_rooms(
        &self,
        rooms: Vec<String>,
        history: ExpiredHistory,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        match self {
            Store::Sqlite(s) => s.expire_rooms(rooms, history),
            Store::Postgres(s) => s.expire_rooms(rooms, history),
        }
    }
    async fn expire_users(
        &self,
        idle_before: i64,
        online: Vec<UserId>,
    ) -> Result<usize, StoreError> {
        delegate!(self, s => s.expire_users(idle_before, online))
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
        delegate!(self, s => s.insert(user, client_id, room, from, text, at))
    }
    async fn join(
        &self,
        room: &str,
        query: HistoryQuery,
        handoff: JoinHandoff,
    ) -> Result<JoinOutcome, StoreError> {
        delegate!(self, s => s.join(room, query, handoff))
    }
    async fn messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<History, StoreError> {
        delegate!(self, s => s.messages_after(room, after, limit))
    }
    async fn checkpoint(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.checkpoint())
    }
}

#[cfg(test)]
mod tests;
