-- The IP blacklist and whitelist (hardening step 8): manual entries from `palisade blacklist|whitelist add` and the
-- guard's automatic bans. `net` is the canonical CIDR text (guard::lists::parse_net(..).to_string()), e.g.
-- '10.0.0.0/8', '203.0.113.7/32', '2001:db8::/32'. Times are unix milliseconds. Keep the SQL portable to PostgreSQL.

CREATE TABLE ip_rules (
    net        TEXT PRIMARY KEY NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('allow', 'block')),
    -- NULL: never expires.
    expires_at BIGINT NULL,
    note       TEXT NULL,
    origin     TEXT NOT NULL CHECK (origin IN ('manual', 'auto')),
    -- Automatic entries: why the guard made them (auth_failures, unanswered_challenges, flood).
    reason     TEXT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ip_rules_expires_at ON ip_rules (expires_at);
