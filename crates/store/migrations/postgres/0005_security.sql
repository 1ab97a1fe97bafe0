-- Security fixes (issue #11): API tokens know who made them and when they were last used; the login
-- throttle lives in the database so it holds across instances.

ALTER TABLE api_tokens ADD COLUMN created_by BIGINT REFERENCES users(id);
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;

-- One row per throttled key ("account:<e-mail>", "address:<ip>"), see domain::throttle.
-- `attempts` counts the attempts since the key was last quiet for a whole window; for accounts
-- they are reserved before the password is checked, so parallel requests cannot all slip through.
-- `blocked_until` is the end of the current back-off.
CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    attempts        BIGINT NOT NULL,
    last_attempt_at BIGINT NOT NULL,
    blocked_until   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX login_throttle_last_attempt ON login_throttle (last_attempt_at);
