//! The database schema: created on open, and older files migrated.

use rusqlite::{Connection, params};

use super::StoreError;

pub(super) fn open_db(path: &str) -> Result<Connection, StoreError> {
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
             created_at INTEGER NOT NULL,
             last_seen  INTEGER NOT NULL DEFAULT 0
         );
         CREATE TABLE IF NOT EXISTS rooms (
             name       TEXT PRIMARY KEY,
             last_seq   INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL,
             epoch      INTEGER NOT NULL DEFAULT 0,
             active     INTEGER NOT NULL DEFAULT 1
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
    migrate(&conn)?;
    Ok(conn)
}

/// Brings a database from an older version up to this schema: columns added
/// since, and an epoch for every room that has none.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_column = |table: &str, column: &str| -> Result<bool, rusqlite::Error> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
        for name in names {
            if name? == column {
                return Ok(true);
            }
        }
        Ok(false)
    };
    for (table, column, ddl) in [
        (
            "users",
            "last_seen",
            "ALTER TABLE users ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0",
        ),
        (
            "rooms",
            "epoch",
            "ALTER TABLE rooms ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        ),
        (
            "rooms",
            "active",
            "ALTER TABLE rooms ADD COLUMN active INTEGER NOT NULL DEFAULT 1",
        ),
    ] {
        if !has_column(table, column)? {
            tracing::info!(table, column, "migrating: adding column");
            conn.execute_batch(ddl)?;
        }
    }
    // Users from before `last_seen`: count from their creation.
    conn.execute(
        "UPDATE users SET last_seen = created_at WHERE last_seen = 0",
        [],
    )?;
    let unnumbered: Vec<String> = conn
        .prepare("SELECT name FROM rooms WHERE epoch = 0")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for room in unnumbered {
        conn.execute(
            "UPDATE rooms SET epoch = ?1 WHERE name = ?2",
            params![crate::ids::new_epoch(), room],
        )?;
    }
    Ok(())
}
