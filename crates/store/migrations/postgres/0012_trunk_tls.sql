-- Trunks over TLS and with SRTP, and a digest user apart from the registered user.
--   auth_user:       the digest username for the provider's challenges when it differs from `username` (which
--                    stays the user of From/To and of the registration's address-of-record). NULL: `username`.
--   ca_file:         PEM file of the CA certificate(s) the provider's TLS certificate must chain to. NULL: the
--                    system's trusted roots.
--   tls_server_name: the name the provider's certificate must carry (and the TLS SNI). NULL: the host.
--   srtp:            'disabled' (plain RTP toward the provider), 'enabled' (SRTP offered over TLS; plain RTP
--                    accepted from the provider) or 'enforced' (only SRTP, only over TLS).
ALTER TABLE trunks ADD COLUMN auth_user TEXT NULL;
ALTER TABLE trunks ADD COLUMN ca_file TEXT NULL;
ALTER TABLE trunks ADD COLUMN tls_server_name TEXT NULL;
ALTER TABLE trunks ADD COLUMN srtp TEXT NOT NULL DEFAULT 'disabled' CHECK (srtp IN ('disabled', 'enabled', 'enforced'));
