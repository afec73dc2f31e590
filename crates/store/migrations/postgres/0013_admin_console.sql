-- The web console and REST API (issue 13): administrator accounts, API tokens, the audit log and the console's
-- own bans (separate from the SIP blacklist, so a phone's bad password never locks the administrator out and the
-- reverse). Keep the SQL portable to PostgreSQL.
CREATE TABLE admin_accounts (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,        -- Argon2id PHC string
    role           TEXT NOT NULL,        -- 'admin' or 'viewer'
    totp_secret    TEXT,                 -- base32 RFC 6238 secret once enrolled; NULL: no second factor yet
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id            BIGINT PRIMARY KEY,
    name          TEXT NOT NULL,         -- a label chosen by the administrator
    token_hash    TEXT NOT NULL UNIQUE,  -- SHA-256 hex of the token; the token itself is shown once
    scope         TEXT NOT NULL,         -- 'read' or 'write'
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,                -- unix ms; NULL: never
    revoked_at    BIGINT,
    last_used_at  BIGINT
);

CREATE TABLE audit_log (
    id       BIGINT PRIMARY KEY,
    at       BIGINT NOT NULL,            -- unix ms
    actor    TEXT NOT NULL,              -- 'admin:NAME', 'token:NAME', 'cli:USER'
    source   TEXT NOT NULL,              -- client address, or 'local' for the CLI
    action   TEXT NOT NULL,              -- e.g. 'extension.create', 'blacklist.add'
    target   TEXT,
    before   TEXT,                       -- JSON, NULL for a creation
    after    TEXT                        -- JSON, NULL for a removal
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE admin_bans (
    ip          TEXT PRIMARY KEY,
    until_ms    BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
