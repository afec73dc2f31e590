-- SIP trunks (the providers external calls go through) and the inbound numbers (DIDs) each one delivers. Keep the
-- SQL portable to PostgreSQL. The store validates every field (store/trunks.rs); the CHECKs are a backstop.

CREATE TABLE trunks (
    -- 1 to 32 letters, digits, '-' and '_'.
    name       TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
    -- The provider's SIP server: an IP literal (IPv6 without brackets) or a DNS name.
    host       TEXT NOT NULL,
    port       BIGINT NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
    transport  TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    -- Digest credentials for the provider's challenges (and registration). The password is stored as given: it is
    -- needed to answer the provider's challenges (the database file is mode 0600). NULL: none.
    username   TEXT NULL,
    password   TEXT NULL CHECK (password IS NULL OR username IS NOT NULL),
    -- 1: register to the provider.
    register   BOOLEAN NOT NULL DEFAULT FALSE,
    -- Comma list of canonical CIDRs the provider sends from (at least one): only these may send calls in as it.
    sources    TEXT NOT NULL CHECK (length(sources) > 0),
    -- Digits, optionally after a leading '+'; the caller (From user) of outbound calls. NULL: the caller's own.
    caller_id  TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Inbound numbers: a call from a trunk's sources to `number` rings `extension`.
CREATE TABLE dids (
    -- Digits, optionally after a leading '+'.
    number    TEXT PRIMARY KEY NOT NULL,
    trunk     TEXT NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    extension TEXT NOT NULL REFERENCES extensions (number) ON DELETE CASCADE
);
CREATE INDEX dids_trunk ON dids (trunk);
CREATE INDEX dids_extension ON dids (extension);
