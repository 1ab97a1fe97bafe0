-- The desk: presence and capacity of people, queue membership, routing state of conversations,
-- transfers, finalization (dispositions), the protocol form's custom fields, notes and canned
-- responses.

ALTER TABLE users ADD COLUMN max_concurrent INTEGER;
ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'offline'
    CHECK (presence IN ('available', 'paused', 'offline'));
ALTER TABLE users ADD COLUMN pause_reason TEXT;
ALTER TABLE users ADD COLUMN presence_at INTEGER;
-- "idle since": the last assignment, for longest-idle routing
ALTER TABLE users ADD COLUMN last_assigned_at INTEGER;
-- last time a tab of this user had a live WebSocket (NULL: never used the web app)
ALTER TABLE users ADD COLUMN socket_seen_at INTEGER;

CREATE TABLE queue_members (
    queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (queue_id, user_id)
);
CREATE INDEX queue_members_user ON queue_members (user_id);

ALTER TABLE queues ADD COLUMN waiting_message TEXT;
ALTER TABLE queues ADD COLUMN position_update_secs INTEGER NOT NULL DEFAULT 60;
ALTER TABLE queues ADD COLUMN max_wait_secs INTEGER;
ALTER TABLE queues ADD COLUMN max_wait_message TEXT;
ALTER TABLE queues ADD COLUMN default_max_concurrent INTEGER NOT NULL DEFAULT 3;
ALTER TABLE queues ADD COLUMN transfer_message TEXT;
ALTER TABLE queues ADD COLUMN closing_message TEXT;

-- a transfer to a busy agent waits in that agent's personal line
ALTER TABLE conversations ADD COLUMN waiting_agent_id INTEGER;
-- who transferred it to its queue: routing prefers anyone else
ALTER TABLE conversations ADD COLUMN avoid_agent_id INTEGER;
ALTER TABLE conversations ADD COLUMN assigned_at INTEGER;
ALTER TABLE conversations ADD COLUMN close_reason TEXT;
ALTER TABLE conversations ADD COLUMN disposition_id INTEGER;
ALTER TABLE conversations ADD COLUMN finalize_note TEXT;
ALTER TABLE conversations ADD COLUMN closed_by INTEGER;
ALTER TABLE conversations ADD COLUMN position_notified INTEGER;
ALTER TABLE conversations ADD COLUMN position_notified_at INTEGER;
ALTER TABLE conversations ADD COLUMN max_wait_notified_at INTEGER;
CREATE INDEX conversations_waiting ON conversations (queued_at) WHERE state = 'queued';
CREATE INDEX conversations_agent_load ON conversations (agent_id) WHERE state = 'assigned';
CREATE INDEX conversations_contact ON conversations (contact_id, id);

CREATE TABLE transfers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    at              INTEGER NOT NULL,
    by_user_id      INTEGER,
    from_agent_id   INTEGER,
    from_queue_id   INTEGER,
    to_agent_id     INTEGER,
    to_queue_id     INTEGER,
    note            TEXT
);
CREATE INDEX transfers_conversation ON transfers (conversation_id, id);

CREATE TABLE conversation_notes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    user_id         INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX conversation_notes_conversation ON conversation_notes (conversation_id, id);

-- "tabulações"; queue_id NULL = offered in every queue
CREATE TABLE dispositions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id   INTEGER REFERENCES queues(id),
    label      TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE custom_fields (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id   INTEGER REFERENCES queues(id),
    key        TEXT NOT NULL,
    label      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('text', 'number', 'date', 'choice')),
    -- JSON array of strings, for kind = choice
    options    TEXT,
    required   BOOLEAN NOT NULL DEFAULT FALSE,
    position   INTEGER NOT NULL DEFAULT 0,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE canned_responses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    shortcut   TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    queue_id   INTEGER REFERENCES queues(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX events_conversation ON events (conversation_id, id);
