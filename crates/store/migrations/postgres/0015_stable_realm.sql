-- The digest realm becomes its own setting, fixed once and independent of the SIP domain: HA1 password hashes
-- are bound to the realm, so a realm that followed the domain made every password wrong after a domain change.
-- An existing installation keeps the realm its passwords were hashed for (the most common one among the
-- extensions), else its recorded domain; a new one fixes the realm at first use (store::realm).
INSERT INTO settings (key, value, updated_at)
SELECT 'realm', realm, 0 FROM extensions GROUP BY realm ORDER BY COUNT(*) DESC, realm LIMIT 1;

INSERT INTO settings (key, value, updated_at)
SELECT 'realm', value, 0 FROM settings WHERE key = 'domain' AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'realm');
