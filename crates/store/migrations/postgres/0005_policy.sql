-- Call policy (hardening steps 3 and 4): per-extension restrictions and the outbound rules. The E.164 and
-- policy settings themselves live in the settings table (see store/policy.rs). Keep the SQL portable to PostgreSQL.

-- 1: no external calls in or out, only other extensions.
ALTER TABLE extensions ADD COLUMN internal_only BOOLEAN NOT NULL DEFAULT FALSE;
-- 1: outbound external calls are refused until the user dials the unlock prefix and the voicemail PIN; they are
-- then allowed for `pin_unlock_seconds`.
ALTER TABLE extensions ADD COLUMN pin_protect BOOLEAN NOT NULL DEFAULT FALSE;
-- 1: REGISTER only from the `local_networks` setting.
ALTER TABLE extensions ADD COLUMN lan_only BOOLEAN NOT NULL DEFAULT FALSE;
-- 1: SIP over WebSocket (ws, wss) is refused for this extension from outside `local_networks`.
ALTER TABLE extensions ADD COLUMN block_remote_ws BOOLEAN NOT NULL DEFAULT FALSE;
-- 1: no outbound external calls outside `office_hours` (in `office_hours_timezone`, minus `holidays`).
ALTER TABLE extensions ADD COLUMN office_hours_only BOOLEAN NOT NULL DEFAULT FALSE;

-- Outbound rules, tried in `position` order (1, 2, …, kept contiguous by the store): the first rule that matches
-- the dialled number (prefix, length range, calling extension) rewrites it (strip, prepend) and names the trunks
-- to try, in failover order.
CREATE TABLE outbound_rules (
    position   BIGINT PRIMARY KEY NOT NULL CHECK (position >= 1),
    name       TEXT NOT NULL UNIQUE,
    -- Digits (optionally after a leading '+'); empty: any number.
    prefix     TEXT NOT NULL,
    -- NULL: no lower bound beyond the prefix length / no upper bound beyond 32 digits.
    min_len    BIGINT NULL,
    max_len    BIGINT NULL,
    -- Comma list of calling extensions; NULL: every extension.
    extensions TEXT NULL,
    strip      BIGINT NOT NULL DEFAULT 0 CHECK (strip >= 0),
    prepend    TEXT NOT NULL DEFAULT '',
    -- Comma list of trunk names, in failover order (at least one).
    trunks     TEXT NOT NULL
);
