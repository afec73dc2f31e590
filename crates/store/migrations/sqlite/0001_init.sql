-- Palisade schema, version 1. Times: *_at columns are unix milliseconds, except registrations.expires_at
-- (unix seconds, the unit of the SIP Expires header). Keep the SQL portable to PostgreSQL.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Bumped by every admin write; a running server polls it and reloads when it changes.
INSERT INTO settings (key, value, updated_at) VALUES ('config_version', '0', 0);

CREATE TABLE extensions (
    number              TEXT PRIMARY KEY NOT NULL CHECK (length(number) BETWEEN 2 AND 10),
    display_name        TEXT NULL,
    enabled             INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    auth_id             TEXT NOT NULL UNIQUE,
    -- HA1 = H(auth_id ":" realm ":" password), lower-case hex; the password itself is never stored.
    ha1_md5             TEXT NOT NULL,
    ha1_sha256          TEXT NOT NULL,
    -- The realm the HA1s were computed for: if the domain changes, the passwords must be reset.
    realm               TEXT NOT NULL,
    -- Per-extension override of the `digest_algorithms` setting, e.g. 'SHA-256,MD5'; NULL: use the setting.
    digest_algorithms   TEXT NULL,
    email               TEXT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
);

-- Registrar bindings (RFC 3261 §10). Connection handles are not stored: after a restart, bindings made over
-- TCP/TLS are reached by opening a new connection to source_addr.
CREATE TABLE registrations (
    aor         TEXT NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    contact_uri TEXT NOT NULL,
    transport   TEXT NOT NULL,
    source_addr TEXT NOT NULL,
    local_addr  TEXT NULL,
    expires_at  BIGINT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT NULL,
    -- qvalue x 1000 (RFC 3261 qvalues have at most three decimals); NULL: none given.
    q           INTEGER NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (aor, contact_uri)
);
CREATE INDEX registrations_expires_at ON registrations (expires_at);

CREATE TABLE security_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    source   TEXT NOT NULL,
    username TEXT NULL,
    detail   TEXT NULL
);
CREATE INDEX security_events_at ON security_events (at);
CREATE INDEX security_events_kind ON security_events (kind, at);
