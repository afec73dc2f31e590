-- Issue 17: several nodes on one database (docs/cluster.md). Keep the SQL portable to PostgreSQL.

-- The guard's counters that lead to a ban, one row per (source, kind, node): each node writes its own current
-- value every ~250 ms and reads the other nodes' rows back, so a ban decision uses the sum over nodes and an
-- attacker spreading guesses over N nodes does not get N times the limit. `source` is the guard's key (an IPv4
-- address or an IPv6 prefix, canonical CIDR text); `node` a random per-process key; rows older than the counting
-- window are ignored and deleted. Unused with one node on SQLite.
CREATE TABLE IF NOT EXISTS guard_counts (
    source     TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('auth_failures', 'unanswered_challenges')),
    node       TEXT NOT NULL,
    count      INTEGER NOT NULL CHECK (count > 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (source, kind, node)
);
CREATE INDEX IF NOT EXISTS guard_counts_updated ON guard_counts (updated_at);

-- Bumped (and announced with NOTIFY palisade_bans) by every write to ip_rules on PostgreSQL, automatic bans
-- included, so every node reloads the IP lists alone, without a full configuration reload. One row.
CREATE TABLE IF NOT EXISTS ip_rules_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO ip_rules_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
