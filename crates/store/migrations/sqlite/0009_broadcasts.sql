-- Broadcasts (issue #13): one template sent to an audience, paced through the outbox behind the
-- agents' messages, inside the WhatsApp Business Account's messaging limit; the contacts' consent
-- (opt-out keywords, opt-in records); the unique customers reached per moving 24 h.

CREATE TABLE broadcasts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    channel_id       INTEGER NOT NULL REFERENCES channels(id),
    template_id      INTEGER NOT NULL,
    -- the queue it belongs to: supervisors see and run the broadcasts of their queues, and it is
    -- the default target of the replies
    queue_id         INTEGER,
    -- draft → scheduled (start_at in the future) → running ⇄ paused → completed; any but
    -- completed → cancelled
    status           TEXT NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    -- why it is paused or waiting (user, template_paused, spam_limit, messaging_limit, ...) and the
    -- pt-BR sentence shown with it
    status_reason    TEXT,
    status_detail    TEXT,
    -- where replies go: JSON {"target": "channel"|"queue"|"agent"|"bot", "queue_id",
    -- "agent_id", "fallback_queue_id"}, and for how long (NULL: the channel's hsm_reply_minutes)
    reply_route      TEXT,
    reply_minutes    INTEGER,
    -- for a media header, the same link or media id for every recipient (JSON)
    header_media     TEXT,
    -- the audience: csv or contacts, the CSV's header, the mapping of columns (or contact
    -- fields) to the phone and the template's variables, the contacts filter, the file itself
    -- (so the mapping can be changed without uploading it again)
    audience_source  TEXT,
    audience_columns TEXT,
    audience_mapping TEXT,
    audience_filter  TEXT,
    audience_csv     TEXT,
    audience_rows    INTEGER NOT NULL DEFAULT 0,
    invalid_rows     INTEGER NOT NULL DEFAULT 0,
    duplicate_rows   INTEGER NOT NULL DEFAULT 0,
    opted_out_rows   INTEGER NOT NULL DEFAULT 0,
    accepted_rows    INTEGER NOT NULL DEFAULT 0,
    start_at         INTEGER,
    -- the messaging limit is used up until about then: the worker looks again at that time
    waiting_until    INTEGER,
    -- failures after this time (the start, the last resume) stop it
    signals_since    INTEGER,
    created_by       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX broadcasts_active ON broadcasts (id) WHERE status IN ('scheduled', 'running');

-- One row per accepted phone number. `state` is the recipient's own progress: pending (not sent
-- yet) → queued (its message is in the outbox; from then on the message's status tells sent,
-- delivered, read or failed) or skipped (opted out, cancelled). `replied_at` is the first
-- customer message after it.
CREATE TABLE broadcast_recipients (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    broadcast_id    INTEGER NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    row_number      INTEGER NOT NULL,
    wa_id           TEXT NOT NULL,
    name            TEXT,
    -- domain::template::Values of this recipient as JSON {"header", "body", "buttons"}
    variables       TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'queued', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    skip_reason     TEXT,
    contact_id      INTEGER,
    conversation_id INTEGER,
    message_id      INTEGER,
    error_code      INTEGER,
    error_title     TEXT,
    replied_at      INTEGER,
    queued_at       INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (broadcast_id, wa_id)
);
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, id) WHERE state = 'pending';
CREATE INDEX broadcast_recipients_message ON broadcast_recipients (message_id) WHERE message_id IS NOT NULL;

-- Rows of the audience that were not accepted (invalid phone or variables, duplicates), reported
-- before the start.
CREATE TABLE broadcast_rejections (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    row_number   INTEGER NOT NULL,
    phone        TEXT,
    code         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (broadcast_id, row_number)
);

-- Consent: the latest opt-out / opt-in of a contact, and every change with where it came from.
ALTER TABLE contacts ADD COLUMN opted_out_at INTEGER;
ALTER TABLE contacts ADD COLUMN opted_in_at INTEGER;
CREATE TABLE consent_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    channel_id INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('opt_in', 'opt_out')),
    -- keyword (the customer wrote it), agent, api, import
    source     TEXT NOT NULL,
    -- the customer's words, or the note of whoever recorded it
    detail     TEXT,
    message_id INTEGER,
    user_id    INTEGER,
    at         INTEGER NOT NULL
);
CREATE INDEX consent_events_contact ON consent_events (contact_id, id);

-- Outbox lanes: 0 = conversations (agents, bot, integrations), 10 = bulk (broadcasts). Claimed by
-- (priority, id), so a broadcast never delays an agent's message; per recipient still oldest first.
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_claim ON outbox (channel_id, priority, id) WHERE state IN ('pending', 'inflight');

-- The messaging limit: unique customers a WhatsApp Business Account reached with a message that
-- opened a conversation outside a customer service window, per moving 24 hours. One row per
-- customer with the last time they were counted.
CREATE TABLE messaging_reach (
    waba_id    TEXT NOT NULL,
    wa_id      TEXT NOT NULL,
    channel_id INTEGER NOT NULL,
    reached_at INTEGER NOT NULL,
    PRIMARY KEY (waba_id, wa_id)
);
CREATE INDEX messaging_reach_window ON messaging_reach (waba_id, reached_at);

-- A bulk send interrupted by a crash is confirmed by its status webhook (matched by recipient)
-- instead of being sent again; failed messages are looked up by time to stop on quality signals.
CREATE INDEX wa_statuses_recipient ON wa_statuses (channel_id, recipient_id, received_at);
CREATE INDEX messages_failed ON messages (channel_id, updated_at) WHERE status = 'failed';

-- A broadcast leaves thousands of conversations awaiting a reply; the sweep that closes the
-- unanswered ones (store::reply_routes, Store::close_unanswered) looks up each one's open routes.
CREATE INDEX reply_routes_conversation_open ON reply_routes (conversation_id) WHERE answered_at IS NULL;
