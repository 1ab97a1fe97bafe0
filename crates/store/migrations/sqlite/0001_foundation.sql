-- Foundation: people, channels, the durable webhook inbox, contacts, conversations, messages.
-- Timestamps are unix milliseconds (INTEGER) so the SQL is the same on both backends.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    email                TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL DEFAULT '',
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    password_hash        TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    active               BOOLEAN NOT NULL DEFAULT TRUE,
    created_at           INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE channels (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT NOT NULL,
    phone_number_id      TEXT NOT NULL UNIQUE,
    waba_id              TEXT NOT NULL,
    display_phone_number TEXT,
    access_token_enc     TEXT NOT NULL,
    app_secret_enc       TEXT NOT NULL,
    verify_token_enc     TEXT NOT NULL,
    graph_base_url       TEXT NOT NULL,
    rate_limit_per_sec   INTEGER NOT NULL DEFAULT 80,
    mark_read            BOOLEAN NOT NULL DEFAULT TRUE,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    healthy              BOOLEAN NOT NULL DEFAULT TRUE,
    health_note          TEXT,
    is_simulator         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

-- Every signed webhook body, verbatim, before it is answered 200.
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    body         BLOB NOT NULL,
    body_sha256  TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    processed_at INTEGER
);
CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';
CREATE INDEX inbox_dead ON inbox (id) WHERE state = 'dead';

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id      INTEGER NOT NULL REFERENCES channels(id),
    wa_id           TEXT NOT NULL,
    profile_name    TEXT,
    name            TEXT,
    code            TEXT,
    email           TEXT,
    last_inbound_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (channel_id, wa_id)
);
CREATE INDEX contacts_code ON contacts (code);

CREATE TABLE protocol_counters (
    day_key  TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id      INTEGER NOT NULL REFERENCES channels(id),
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    protocol        TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    queue_id        INTEGER,
    agent_id        INTEGER,
    opened_at       INTEGER NOT NULL,
    closed_at       INTEGER,
    last_message_at INTEGER NOT NULL,
    last_inbound_at INTEGER,
    unread_count    INTEGER NOT NULL DEFAULT 0
);
-- At most one open conversation per contact.
CREATE UNIQUE INDEX conversations_one_open ON conversations (contact_id) WHERE closed_at IS NULL;
CREATE INDEX conversations_recent ON conversations (last_message_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    channel_id      INTEGER NOT NULL REFERENCES channels(id),
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    author          TEXT NOT NULL,
    author_user_id  INTEGER,
    wamid           TEXT,
    kind            TEXT NOT NULL,
    body            TEXT,
    content         TEXT NOT NULL,
    reply_to_wamid  TEXT,
    status          TEXT NOT NULL,
    error_code      INTEGER,
    error_title     TEXT,
    error_detail    TEXT,
    media_id        INTEGER,
    wa_timestamp    INTEGER,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_wamid ON messages (channel_id, wamid);
CREATE UNIQUE INDEX messages_idempotency ON messages (conversation_id, idempotency_key);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- Status webhooks, kept even when they arrive before the message they describe.
CREATE TABLE wa_statuses (
    channel_id   INTEGER NOT NULL,
    wamid        TEXT NOT NULL,
    status       TEXT NOT NULL,
    wa_timestamp INTEGER,
    recipient_id TEXT,
    error_code   INTEGER,
    error_title  TEXT,
    error_detail TEXT,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, wamid, status)
);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    conversation_id INTEGER,
    payload         TEXT NOT NULL
);

-- Work that only one instance may do at a time (e.g. draining the inbox in order).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
