-- PostgreSQL schema, version 1: the same tables as the SQLite store.
CREATE TABLE users (
    id         BIGSERIAL PRIMARY KEY,
    token      TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rooms (
    name       TEXT PRIMARY KEY,
    -- The highest seq: bumped in the inserting transaction, whose row lock
    -- orders the room's commits by seq.
    last_seq   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    epoch      BIGINT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE messages (
    room      TEXT NOT NULL REFERENCES rooms(name),
    seq       BIGINT NOT NULL,
    user_id   BIGINT NOT NULL REFERENCES users(id),
    client_id TEXT NOT NULL,
    sender    TEXT NOT NULL,
    text      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (room, seq),
    UNIQUE (user_id, client_id)
);
-- expire_users asks "has this user any message?".
CREATE INDEX messages_user ON messages (user_id);
