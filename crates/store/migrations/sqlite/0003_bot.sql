-- Bot triage: queues (the hand-off target), flows with immutable versions, one bot session per
-- conversation, per-conversation fields, and the conversation columns the SAC record needs.

CREATE TABLE queues (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    -- what flows name in their hand-off steps, e.g. "suporte"
    key                   TEXT NOT NULL UNIQUE,
    name                  TEXT NOT NULL,
    priority              INTEGER NOT NULL DEFAULT 0,
    -- JSON {"time_zone": "America/Sao_Paulo", "weekly": {"mon": ["08:00-18:00"], ...},
    -- "holidays": ["2026-12-25"]}; NULL = always open
    business_hours        TEXT,
    outside_hours_message TEXT,
    outside_hours_action  TEXT NOT NULL DEFAULT 'wait' CHECK (outside_hours_action IN ('wait', 'end')),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE flows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL: the default flow of every channel without its own
    channel_id INTEGER REFERENCES channels(id),
    name       TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- One flow per channel and one default.
CREATE UNIQUE INDEX flows_one_per_channel ON flows (COALESCE(channel_id, 0));

-- Editing a flow adds a version; a running conversation keeps the version it started with.
CREATE TABLE flow_versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id    INTEGER NOT NULL REFERENCES flows(id),
    version    INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by INTEGER,
    UNIQUE (flow_id, version)
);

CREATE TABLE bot_sessions (
    conversation_id       INTEGER PRIMARY KEY REFERENCES conversations(id),
    flow_version_id       INTEGER NOT NULL REFERENCES flow_versions(id),
    -- domain::flow::BotState as JSON; NULL until the flow's first turn ran
    state                 TEXT,
    -- customer messages up to this id were fed to the flow (or opened the conversation)
    last_input_message_id INTEGER NOT NULL DEFAULT 0,
    started_at            INTEGER NOT NULL,
    last_activity_at      INTEGER NOT NULL,
    reminder_due_at       INTEGER,
    close_due_at          INTEGER,
    reminder_sent_at      INTEGER,
    finished_at           INTEGER,
    outcome               TEXT CHECK (outcome IN ('handoff', 'ended', 'abandoned_in_bot', 'outside_hours')),
    -- the last message of the bot phase; later messages are the human part
    last_bot_message_id   INTEGER
);
CREATE INDEX bot_sessions_close_due ON bot_sessions (close_due_at) WHERE finished_at IS NULL;
CREATE INDEX bot_sessions_reminder_due ON bot_sessions (reminder_due_at)
    WHERE finished_at IS NULL AND reminder_sent_at IS NULL;

-- Answers saved by the bot (custom.*, protocol.*, contact fields without a column).
CREATE TABLE conversation_fields (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    key             TEXT NOT NULL,
    value           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, key)
);

ALTER TABLE conversations ADD COLUMN protocol_sent_at INTEGER;
ALTER TABLE conversations ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN queued_at INTEGER;
ALTER TABLE conversations ADD COLUMN subject TEXT;
CREATE INDEX conversations_in_bot ON conversations (id) WHERE state = 'bot';
