-- Message templates (HSM) managed with Meta (issue #13): the WABA's templates as last seen at
-- Meta (imported by sync, kept current by webhooks), their edit history, the names deleted in the
-- last 30 days (Meta refuses to reuse them), the per-role permission matrix and what the channel
-- knows of its account (tier, quality, the prerequisites check).

CREATE TABLE templates (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    waba_id                  TEXT NOT NULL,
    -- Meta's template id (one per name and language); NULL until Meta answered the creation
    meta_id                  TEXT,
    name                     TEXT NOT NULL,
    language                 TEXT NOT NULL,
    category                 TEXT NOT NULL,
    -- PENDING, APPROVED, REJECTED, PAUSED, DISABLED, IN_APPEAL, DELETED, ... as Meta says
    status                   TEXT NOT NULL,
    parameter_format         TEXT NOT NULL DEFAULT 'POSITIONAL',
    -- Meta's components array, verbatim JSON
    components               TEXT NOT NULL,
    -- GREEN, YELLOW, RED, UNKNOWN
    quality                  TEXT,
    rejected_reason          TEXT,
    rejection_recommendation TEXT,
    -- the category before Meta re-categorised it (template_category_update)
    previous_category        TEXT,
    -- Atende-side only: what a quick-reply tap does (JSON, see store::templates)
    button_actions           TEXT,
    created_by               INTEGER,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    -- the last time the template was seen in a full sync (or came from Meta)
    synced_at                INTEGER,
    -- when Meta last said something of its status (webhook entry.time or sync time, unix ms):
    -- an older webhook arriving late does not undo a newer state
    status_at                INTEGER,
    UNIQUE (waba_id, name, language)
);
CREATE UNIQUE INDEX templates_meta_id ON templates (meta_id) WHERE meta_id IS NOT NULL;
CREATE INDEX templates_waba_status ON templates (waba_id, status);

-- Every edit submitted to Meta: Meta allows an approved template 1 edit per 24 h and 10 per 30 days.
CREATE TABLE template_edits (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id     INTEGER NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    at              INTEGER NOT NULL,
    by_user_id      INTEGER,
    status_before   TEXT NOT NULL,
    status_after    TEXT NOT NULL,
    category_before TEXT,
    category_after  TEXT,
    components_before TEXT,
    components_after  TEXT
);
CREATE INDEX template_edits_template ON template_edits (template_id, at);

-- Templates Meta told us about (webhook) that Atende does not know yet: the sync worker fetches
-- each (GET /{template-id}) and removes its row.
CREATE TABLE template_fetches (
    meta_id      TEXT PRIMARY KEY,
    waba_id      TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_error   TEXT
);

-- A deleted template name cannot be used again for 30 days (language NULL: the whole name).
CREATE TABLE template_deleted_names (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    waba_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    language    TEXT,
    deleted_at  INTEGER NOT NULL,
    by_user_id  INTEGER
);
CREATE INDEX template_deleted_names_name ON template_deleted_names (waba_id, name, deleted_at);

-- Permissions on top of roles; a missing row means the role's default (domain::permissions).
-- The admin row is never read: admins have every permission.
CREATE TABLE role_permissions (
    role       TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent')),
    permission TEXT NOT NULL,
    allowed    BOOLEAN NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (role, permission)
);

-- What Meta says of the number and its account, read by the prerequisites check.
ALTER TABLE channels ADD COLUMN app_id TEXT;
-- e.g. TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED
ALTER TABLE channels ADD COLUMN messaging_limit_tier TEXT;
-- unique customers per moving 24 h; NULL = unlimited or unknown
ALTER TABLE channels ADD COLUMN messaging_limit INTEGER;
-- TRUE: an admin set messaging_limit; the checks no longer overwrite it
ALTER TABLE channels ADD COLUMN messaging_limit_manual BOOLEAN NOT NULL DEFAULT FALSE;
-- GREEN, YELLOW, RED, UNKNOWN
ALTER TABLE channels ADD COLUMN quality_rating TEXT;
-- JSON of the last prerequisites check
ALTER TABLE channels ADD COLUMN prerequisites TEXT;
ALTER TABLE channels ADD COLUMN prerequisites_checked_at INTEGER;
