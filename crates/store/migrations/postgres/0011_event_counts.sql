-- Routine security decisions as counters instead of rows (issue 12 item 7). A challenge to a request without
-- credentials and a successful digest authentication happen for every registration refresh and every call: as
-- rows they were 600,000 rows (67 MB) for 300,000 registrations. They are counted here per kind and reason, per
-- UTC day (pruned with the event retention); failures, bans, throttles, refusals and the rest stay rows in
-- security_events. Keep the SQL portable to PostgreSQL.
CREATE TABLE event_counts (
    day      BIGINT NOT NULL,   -- days since 1970-01-01 (UTC)
    kind     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    count    BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,   -- unix ms of the last one counted
    PRIMARY KEY (day, kind, reason)
);
