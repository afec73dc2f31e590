-- Issue 19, the media half: music on hold, conference rooms, auto attendants, call recording. Keep the SQL portable
-- to PostgreSQL.

-- Music on hold per extension: what callers hear while this extension holds them. No row: the default melody.
-- `file` NULL: no music (the holding phone's own audio, if any, passes); else a WAV under DATA/music/.
CREATE TABLE music_on_hold (
    number     TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    file       TEXT NULL,
    updated_at INTEGER NOT NULL DEFAULT 0
);
