-- Desk-phone provisioning over HTTPS (issue 14). One row per provisioned device. The provisioning token is stored
-- only as its SHA-256 (it is shown once); the SIP password is never stored in clear (it is generated when the
-- phone fetches its file, and only its HA1s go to the extension). Keep the SQL portable to PostgreSQL.
CREATE TABLE IF NOT EXISTS phones (
    id                 TEXT PRIMARY KEY,      -- the normalised MAC (12 lowercase hex digits), or MODEL-EXT for a
                                              -- softphone added without a MAC
    mac                TEXT UNIQUE,           -- 12 lowercase hex digits; NULL for a softphone without one
    model              TEXT NOT NULL,         -- yealink, snom, grandstream, polycom, linphone, generic
    extension          TEXT NOT NULL UNIQUE REFERENCES extensions (number) ON DELETE CASCADE,
    token_hash         TEXT NOT NULL UNIQUE,  -- SHA-256 hex of the URL token
    admin_password     TEXT NOT NULL,         -- the phone's own web-admin password (a phone-side secret, shown by
                                              -- `phone show`; it grants nothing on the PBX)
    window_opened_at   BIGINT NOT NULL,       -- unix ms: `phone add` or the last `phone reprovision`
    window_expires_at  BIGINT NOT NULL,       -- unix ms: credentials are served only before this
    credentials_at     BIGINT,                -- unix ms: when this window's credentials were served (NULL: not yet)
    bound_at           BIGINT,                -- unix ms of the first successful fetch (NULL: not bound)
    bound_mac          TEXT,                  -- the MAC the device showed (path or User-Agent)
    bound_cert_sha256  TEXT,                  -- SHA-256 of the client certificate it presented, if any
    bound_source       TEXT,                  -- its source address
    bound_user_agent   TEXT,
    last_fetch_at      BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
