-- Call records (CDRs) and the calls in progress. Times are unix milliseconds. Keep the SQL portable to PostgreSQL.

-- One row per finished call attempt, answered or not; appended by the server, read by `palisade cdr`.
CREATE TABLE cdr (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The caller's Call-ID (attacker-controlled: truncated to 256 characters).
    call_id       TEXT NOT NULL,
    caller        TEXT NOT NULL,
    -- The number dialled; empty if none could be read.
    callee        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    -- NULL: never answered.
    answered_at   BIGINT NULL,
    ended_at      BIGINT NOT NULL,
    -- Talk time (answer to end) in whole seconds; 0 if never answered.
    duration_secs BIGINT NOT NULL CHECK (duration_secs >= 0),
    disposition   TEXT NOT NULL CHECK (disposition IN ('answered', 'busy', 'no_answer', 'cancelled', 'failed',
                                                       'not_found', 'unavailable')),
    hung_up_by    TEXT NOT NULL CHECK (hung_up_by IN ('caller', 'callee', 'system')),
    -- Why it ended, e.g. 'bye', 'media_timeout', 'max_duration', '486'.
    reason        TEXT NOT NULL
);
CREATE INDEX cdr_started_at ON cdr (started_at);
CREATE INDEX cdr_caller ON cdr (caller, started_at);
CREATE INDEX cdr_callee ON cdr (callee, started_at);

-- The calls in progress, as the running server last wrote them (it replaces the whole set when it changes and
-- clears it at start: calls do not survive a restart). Read by `palisade calls`.
CREATE TABLE active_calls (
    call_id     TEXT PRIMARY KEY NOT NULL,
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    answered_at BIGINT NULL,
    state       TEXT NOT NULL CHECK (state IN ('ringing', 'answering', 'talking')),
    updated_at  BIGINT NOT NULL
);
