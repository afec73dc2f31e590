-- Voicemail (hardening step 2): one mailbox per extension, its PIN as an Argon2id hash, and the messages. The
-- audio itself is in WAV files under DATA/voicemail/; `file` is relative to that directory. Keep the SQL portable to
-- PostgreSQL.

CREATE TABLE voicemail_boxes (
    number          TEXT PRIMARY KEY NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- PHC string ($argon2id$...); NULL: no PIN yet, so the mailbox cannot be opened (`palisade ext reset-pin`).
    pin_hash        TEXT NULL,
    pin_changed_at  INTEGER NULL,
    -- The recorded greeting's file; NULL: the default greeting.
    greeting        TEXT NULL,
    -- 1: message-waiting NOTIFYs go to the extension's registered contacts even without a subscription.
    mwi_unsolicited INTEGER NOT NULL DEFAULT 0 CHECK (mwi_unsolicited IN (0, 1)),
    -- Unix milliseconds of the last settings change.
    updated_at      INTEGER NOT NULL DEFAULT 0
);

-- Extensions created before voicemail existed get a mailbox without a PIN.
INSERT INTO voicemail_boxes (number) SELECT number FROM extensions;

CREATE TABLE voicemail_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox     TEXT NOT NULL REFERENCES voicemail_boxes (number) ON DELETE CASCADE,
    caller      TEXT NOT NULL,
    caller_name TEXT NULL,
    -- Unix milliseconds.
    received_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    is_new      INTEGER NOT NULL DEFAULT 1 CHECK (is_new IN (0, 1)),
    file        TEXT NOT NULL UNIQUE
);

CREATE INDEX voicemail_messages_by_mailbox ON voicemail_messages (mailbox, id);
