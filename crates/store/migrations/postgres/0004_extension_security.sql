-- Per-extension transport and media security (hardening steps 5 and 6). Keep the SQL portable to PostgreSQL.

-- 1: REGISTER and calls of this extension are accepted only over TLS; over UDP or TCP they are refused (and
-- recorded as a security event).
ALTER TABLE extensions ADD COLUMN require_tls BOOLEAN NOT NULL DEFAULT FALSE;

-- SDES-SRTP (RFC 4568) on this extension's call legs. Keys only travel in SIP over TLS.
--   'disabled': plain RTP only, SRTP offers are answered with plain RTP;
--   'enabled':  SRTP when the phone offers it over TLS, plain RTP otherwise (the default: nothing breaks for a
--               phone on UDP, and a phone on TLS gets encrypted media);
--   'enforced': only SRTP over TLS is accepted; a plain-RTP offer is answered with 488 and the extension is
--               never sent plain RTP.
ALTER TABLE extensions ADD COLUMN srtp TEXT NOT NULL DEFAULT 'enabled'
    CHECK (srtp IN ('disabled', 'enabled', 'enforced'));
