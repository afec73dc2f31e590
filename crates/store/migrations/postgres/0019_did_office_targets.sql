-- Issue 19: inbound numbers (DIDs) that lead to a ring group or a call queue (as `did_attendants` rows lead to an
-- attendant and `dids` rows to an extension). `target`: `group:NUMBER` or `queue:NUMBER`, checked by the binary
-- when added; a removed group or queue leaves its DID answering 404 until it is removed too.
CREATE TABLE IF NOT EXISTS did_targets (
    number TEXT PRIMARY KEY NOT NULL,
    trunk  TEXT NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    target TEXT NOT NULL
);
