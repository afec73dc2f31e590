-- Issue 19, the media half: music on hold, conference rooms, auto attendants, call recording. Keep the SQL portable
-- to PostgreSQL. `IF NOT EXISTS`: re-runnable (the realm upgrade test replays the migrations after 0015).

-- Music on hold per extension: what callers hear while this extension holds them. No row: the default melody.
-- `file` NULL: no music (the holding phone's own audio, if any, passes); else a WAV under DATA/music/.
CREATE TABLE IF NOT EXISTS music_on_hold (
    number     TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    file       TEXT NULL,
    updated_at INTEGER NOT NULL DEFAULT 0
);

-- Conference rooms: dialled like an extension (never the same number as one). `pin_hash`: Argon2id PHC string, as
-- voicemail PINs; NULL: no PIN.
CREATE TABLE IF NOT EXISTS conferences (
    number           TEXT PRIMARY KEY NOT NULL,
    pin_hash         TEXT NULL,
    max_participants INTEGER NOT NULL DEFAULT 10 CHECK (max_participants BETWEEN 2 AND 50),
    created_at       INTEGER NOT NULL DEFAULT 0
);

-- Wrong conference PINs across calls: the voicemail lockout's rules (pbx::voicemail::lockout), per room.
CREATE TABLE IF NOT EXISTS conference_pin_lockouts (
    room         TEXT PRIMARY KEY NOT NULL REFERENCES conferences (number) ON DELETE CASCADE,
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    lockouts     INTEGER NOT NULL DEFAULT 0 CHECK (lockouts >= 0)
);

-- Who is in each room now, as the running server last wrote it (within a second of a change; cleared at start).
-- `position` is the participant's number in the room (`palisade conference mute|kick ROOM N`).
CREATE TABLE IF NOT EXISTS conference_participants (
    room      TEXT NOT NULL REFERENCES conferences (number) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    caller    TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    muted     INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
    PRIMARY KEY (room, position)
);

-- Mute, unmute and kick requests from the CLI and console, taken (and deleted) by the running server.
CREATE TABLE IF NOT EXISTS conference_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT NOT NULL REFERENCES conferences (number) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('mute', 'unmute', 'kick')),
    created_at INTEGER NOT NULL
);

-- Auto attendants. `options`: `KEY=TARGET` pairs separated by `;` (targets as pbx::office::attendant::Target
-- parses them: ext:N, voicemail:N, conference:N, attendant:NAME, hangup). `greeting`: a WAV under DATA/attendant/.
CREATE TABLE IF NOT EXISTS attendants (
    name              TEXT PRIMARY KEY NOT NULL,
    number            TEXT NULL UNIQUE,
    greeting          TEXT NOT NULL,
    options           TEXT NOT NULL DEFAULT '',
    timeout_seconds   INTEGER NOT NULL DEFAULT 10 CHECK (timeout_seconds BETWEEN 1 AND 120),
    on_timeout        TEXT NOT NULL DEFAULT 'hangup',
    on_invalid        TEXT NOT NULL DEFAULT 'hangup',
    after_hours       TEXT NULL,
    dial_by_extension INTEGER NOT NULL DEFAULT 0 CHECK (dial_by_extension IN (0, 1)),
    created_at        INTEGER NOT NULL DEFAULT 0
);

-- Inbound numbers answered by an attendant (instead of ringing an extension, as `dids` rows do).
CREATE TABLE IF NOT EXISTS did_attendants (
    number    TEXT PRIMARY KEY NOT NULL,
    trunk     TEXT NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    attendant TEXT NOT NULL REFERENCES attendants (name) ON DELETE CASCADE
);

-- Call recording per extension: 'always' or 'on_demand' (the feature code *1 during a call). No row: never.
CREATE TABLE IF NOT EXISTS recording_settings (
    number TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    mode   TEXT NOT NULL CHECK (mode IN ('always', 'on_demand'))
);

-- Recordings: WAV files under DATA/recordings/ (both parties mixed), keyed to the call record by `call_id`.
CREATE TABLE IF NOT EXISTS recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    -- Unix milliseconds.
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    file        TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS recordings_by_time ON recordings (started_at);
