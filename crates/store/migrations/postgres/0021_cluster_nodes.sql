-- Several nodes on one database (issue 17, docs/cluster.md). Used only when the store is PostgreSQL; on SQLite (one
-- node) the tables stay empty, apart from `registrations.node`, which is written but never read.

-- One row per node: its name (--node), the address other nodes send internal SIP hops to, and a heartbeat every
-- ~2 s. A node whose heartbeat is older than ~6 s is stale: its registrations are ignored.
CREATE TABLE IF NOT EXISTS cluster_nodes (
    name         TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    sip_addr     TEXT NOT NULL,
    -- Unix milliseconds.
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- The node holding the phone's flow (NAT binding, TCP/TLS connection); NULL: written before clustering.
ALTER TABLE registrations ADD COLUMN node TEXT NULL;
CREATE INDEX IF NOT EXISTS registrations_by_node ON registrations (node);

-- Voicemail audio (messages and greetings) in the database, so any node plays it: keyed by the same relative file
-- name the voicemail tables use. Written only when the store is PostgreSQL; SQLite keeps the files alone.
CREATE TABLE IF NOT EXISTS voicemail_audio (
    file      TEXT PRIMARY KEY NOT NULL,
    audio     BYTEA NOT NULL,
    stored_at BIGINT NOT NULL
);
