-- How each trunk's registration stands, as the running server last wrote it (within a second of a change). Not
-- configuration: writing it does not bump config_version. Rows of removed trunks are dropped at the next write.
CREATE TABLE trunk_status (
    trunk            TEXT PRIMARY KEY NOT NULL,
    -- registered, registering, failed or unregistering.
    state            TEXT NOT NULL,
    -- Unix milliseconds: until when the provider accepted the registration (while registered).
    registered_until BIGINT NULL,
    -- The last failure, kept until the next success.
    last_error       TEXT NULL,
    -- Unix milliseconds: when the next REGISTER (refresh or retry) is due.
    next_attempt     BIGINT NULL,
    updated_at       BIGINT NOT NULL
);
