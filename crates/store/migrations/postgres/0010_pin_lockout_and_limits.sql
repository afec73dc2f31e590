-- Issue 12: voicemail PIN lockout across calls (item 1) and per-extension / per-trunk resource limits (item 3).

-- Voicemail PIN lockout across calls (issue 12 item 1): wrong PINs per mailbox, whichever call, source or access
-- number they came through; see pbx::voicemail::lockout. No row: no wrong PIN counted. Times are unix
-- milliseconds, 0 for none. Keep the SQL portable to PostgreSQL.

CREATE TABLE voicemail_pin_lockouts (
    mailbox      TEXT PRIMARY KEY NOT NULL REFERENCES voicemail_boxes (number) ON DELETE CASCADE,
    -- Wrong PINs counted since window_start (the first of them).
    failures     BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start BIGINT NOT NULL DEFAULT 0,
    -- PIN entry refused until then.
    locked_until BIGINT NOT NULL DEFAULT 0,
    -- Lockouts since the last correct PIN or `palisade ext unlock-pin` (each doubles the next one).
    lockouts     BIGINT NOT NULL DEFAULT 0 CHECK (lockouts >= 0)
);

-- Resource limits (issue 12 item 3; see pbx::limits). NULL: the `max_calls_per_extension` setting (max_calls) or
-- no cap (max_external_calls, a trunk's max_calls).
CREATE TABLE extension_limits (
    number             TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    max_calls          BIGINT NULL CHECK (max_calls IS NULL OR max_calls BETWEEN 1 AND 1000),
    max_external_calls BIGINT NULL CHECK (max_external_calls IS NULL OR max_external_calls BETWEEN 1 AND 1000)
);

CREATE TABLE trunk_limits (
    trunk     TEXT PRIMARY KEY NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    max_calls BIGINT NULL CHECK (max_calls IS NULL OR max_calls BETWEEN 1 AND 1000)
);
