-- The HSM response queue (issue #13): where a customer's reply to a template goes, for how long.
-- Per channel the defaults; per template send one reply route.

-- NULL: replies go to the queue of the conversation the template was sent in (or the shared line).
ALTER TABLE channels ADD COLUMN hsm_queue_id INTEGER;
ALTER TABLE channels ADD COLUMN hsm_reply_minutes INTEGER NOT NULL DEFAULT 1440;
-- Where a reply meant for an agent ("carteira") goes when that agent is offline or at capacity.
ALTER TABLE channels ADD COLUMN hsm_fallback_queue_id INTEGER;

CREATE TABLE reply_routes (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id        INTEGER NOT NULL,
    contact_id        INTEGER NOT NULL,
    conversation_id   INTEGER NOT NULL,
    -- the template message this route was recorded for
    message_id        INTEGER NOT NULL,
    template_id       INTEGER,
    -- queue: lands in queue_id (NULL = the shared line); agent: with agent_id, else
    -- fallback_queue_id; bot: nothing skipped (the route only keeps the conversation waiting)
    target            TEXT NOT NULL CHECK (target IN ('queue', 'agent', 'bot')),
    queue_id          INTEGER,
    agent_id          INTEGER,
    fallback_queue_id INTEGER,
    -- the template's button actions when it was sent (JSON, see store::reply_routes)
    button_actions    TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    answered_at       INTEGER,
    answer_message_id INTEGER,
    -- the quick-reply button the customer tapped (its payload, else its text)
    payload           TEXT,
    -- queued | waiting_agent | fallback | auto_reply | bot | superseded | recorded | expired
    outcome           TEXT
);
-- The lookup of the reply path: a contact's newest unanswered route.
CREATE INDEX reply_routes_open ON reply_routes (contact_id, id) WHERE answered_at IS NULL;
CREATE INDEX reply_routes_expiry ON reply_routes (expires_at) WHERE answered_at IS NULL;
CREATE INDEX reply_routes_message ON reply_routes (message_id);
CREATE INDEX conversations_awaiting_reply ON conversations (id) WHERE state = 'awaiting_reply';
