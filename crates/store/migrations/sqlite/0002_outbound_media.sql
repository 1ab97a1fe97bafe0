-- Outbound messaging (outbox, per-number rate buckets) and media files both ways.

CREATE TABLE media (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- inbound: the channel it came from; outbound: the channel it was last uploaded to
    channel_id      INTEGER REFERENCES channels(id),
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    -- Meta's media id: inbound from the webhook, outbound from our upload to channel_id
    wa_media_id     TEXT,
    kind            TEXT NOT NULL,
    mime_type       TEXT,
    filename        TEXT,
    size_bytes      INTEGER,
    sha256          TEXT,
    expected_sha256 TEXT,
    storage_key     TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    uploaded_by     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX media_pending ON media (next_attempt_at) WHERE state = 'pending';

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL UNIQUE REFERENCES messages(id),
    channel_id      INTEGER NOT NULL REFERENCES channels(id),
    recipient       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    locked_by       TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_ready ON outbox (channel_id, next_attempt_at) WHERE state IN ('pending', 'inflight');
CREATE INDEX outbox_recipient ON outbox (channel_id, recipient, id) WHERE state IN ('pending', 'inflight');

-- One token bucket per phone number, shared by every sender of every instance.
CREATE TABLE rate_buckets (
    channel_id INTEGER PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_ms INTEGER NOT NULL
);
