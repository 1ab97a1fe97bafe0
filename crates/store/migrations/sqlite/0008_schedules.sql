-- Scheduled messages (issue #13): a template, or a free message while the 24 h window is open,
-- sent to one contact at a date and time, exactly once across restarts and instances.

CREATE TABLE schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id       INTEGER NOT NULL,
    contact_id       INTEGER NOT NULL,
    -- the conversation it was scheduled from (where a failure is shown), if any
    conversation_id  INTEGER,
    -- the queue it belongs to, for queue scoping (the conversation's or the creator's)
    queue_id         INTEGER,
    kind             TEXT NOT NULL CHECK (kind IN ('template', 'text')),
    template_id      INTEGER,
    -- domain::template::Values as JSON, for kind = template
    template_values  TEXT,
    -- the text, for kind = text
    body             TEXT,
    -- hsm::ReplyRouteSpec as JSON (NULL: the channel's default)
    reply_route      TEXT,
    due_at           INTEGER NOT NULL,
    -- pending → sending (claimed, with a lease) → sent | failed; pending → cancelled
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    claimed_by       TEXT,
    locked_until     INTEGER,
    message_id       INTEGER,
    error_code       TEXT,
    error            TEXT,
    -- agent | integration | bot
    created_via      TEXT NOT NULL,
    created_by       INTEGER,
    -- an API caller's or the bot's key: the same key twice is one schedule
    idempotency_key  TEXT UNIQUE,
    note             TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    cancelled_at     INTEGER
);
CREATE INDEX schedules_due ON schedules (due_at) WHERE state IN ('pending', 'sending');
CREATE INDEX schedules_contact ON schedules (contact_id, due_at);
CREATE INDEX schedules_conversation ON schedules (conversation_id, due_at);
