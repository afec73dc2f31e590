-- Call forwarding per extension (issue 7 point 6). Each column is the number a call to the extension is
-- forwarded to in that case, NULL when that forward is off. The forwarded leg is routed by the call policy as if
-- the forwarding extension had dialled the number itself, so a forward never reaches what the extension could not
-- call. Keep the SQL portable to PostgreSQL.

-- Every call, before ringing.
ALTER TABLE extensions ADD COLUMN forward_always TEXT NULL;
-- When every phone of the extension answers busy (486/600) or declines (603).
ALTER TABLE extensions ADD COLUMN forward_busy TEXT NULL;
-- When nobody answers before the ring time, or no phone is registered.
ALTER TABLE extensions ADD COLUMN forward_no_answer TEXT NULL;
