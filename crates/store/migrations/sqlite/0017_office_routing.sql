-- Office call routing (issue 19, call-routing half): ring groups, pickup groups, call queues. Keep the SQL
-- portable to PostgreSQL, and every statement safe to run again (IF NOT EXISTS). Member and agent numbers are extensions (or, for ring groups, external numbers): they are
-- routed under the calling extension's policy at call time, so no foreign key ties them to `extensions`.

-- A number that rings several members by a strategy (all | order | round-robin), each step for ring_seconds,
-- then the fallback (voicemail:EXT | ext:NUMBER | hangup).
CREATE TABLE IF NOT EXISTS ring_groups (
    number TEXT PRIMARY KEY NOT NULL,
    strategy TEXT NOT NULL,
    ring_seconds INTEGER NOT NULL,
    fallback TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The members of a group, in ring order.
CREATE TABLE IF NOT EXISTS ring_group_members (
    group_number TEXT NOT NULL REFERENCES ring_groups (number) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (group_number, position),
    UNIQUE (group_number, member)
);

-- The pickup group an extension belongs to (`*8` picks up a ringing call in it); no row: the office-wide group.
CREATE TABLE IF NOT EXISTS pickup_groups (
    extension TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    group_name TEXT NOT NULL
);

-- A call queue: callers wait (music, position) until an agent is free, at most max_wait_secs, then the fallback.
CREATE TABLE IF NOT EXISTS call_queues (
    number TEXT PRIMARY KEY NOT NULL,
    strategy TEXT NOT NULL,
    max_wait_secs INTEGER NOT NULL,
    music TEXT NOT NULL,
    fallback TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The agents of a queue, in order; logged_in is switched by the agent's feature codes.
CREATE TABLE IF NOT EXISTS call_queue_agents (
    queue_number TEXT NOT NULL REFERENCES call_queues (number) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    agent TEXT NOT NULL,
    logged_in INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (queue_number, agent)
);

-- One caller's time in a queue, for `palisade queue stats`: outcome answered | abandoned | timeout.
CREATE TABLE IF NOT EXISTS call_queue_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_number TEXT NOT NULL,
    caller TEXT NOT NULL,
    entered_at INTEGER NOT NULL,
    left_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    agent TEXT NULL,
    wait_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS call_queue_calls_by_queue ON call_queue_calls (queue_number, entered_at);

-- A parked call is shown as state 'parked' (its callee is the slot). The table holds only the server's calls in
-- progress (rewritten within a second, cleared at start), so it is recreated with the wider check.
DROP TABLE IF EXISTS active_calls;
CREATE TABLE active_calls (
    call_id     TEXT PRIMARY KEY NOT NULL,
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    answered_at BIGINT NULL,
    state       TEXT NOT NULL CHECK (state IN ('ringing', 'answering', 'talking', 'parked')),
    updated_at  BIGINT NOT NULL
);
