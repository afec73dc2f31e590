#!/usr/bin/env bash
# The REST API (/api/v1) end to end with console_api.py: every resource, every error status (400 with the CLI's
# own message, 401, 403, 404, 409, 422, 405), token scopes, the audit log, the SSE stream, and the OpenAPI
# document (valid per openapi-spec-validator, and every operation it lists is served).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 curl
python3 -c 'import openapi_spec_validator' 2>/dev/null || fail "python3 openapi-spec-validator missing: run scripts/install-deps.sh"

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip"
port=$PAL_ADMIN_PORT

# Plain HTTP on the console port only redirects to HTTPS.
loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://$HOST:$port/api/v1/extensions?x=1")
[ "$loc" = "308 https://$HOST:$port/api/v1/extensions?x=1" ] || fail "plain HTTP answered '$loc', not a redirect to HTTPS"
ok "plain HTTP: 308 to https"

# The console serves the SIP certificate.
served=$(openssl s_client -connect "$HOST:$port" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
ours=$(openssl x509 -in "$data/tls/cert.pem" -noout -fingerprint -sha256)
[ "$served" = "$ours" ] || fail "the console serves another certificate ($served) than DATA/tls/cert.pem ($ours)"
ok "the console serves DATA/tls/cert.pem"

# A new certificate in DATA/tls is served by the console too after SIGHUP (the SIP reloader's resolver).
openssl req -x509 -newkey ed25519 -nodes -days 30 -subj "/CN=console.e2e.test/O=Palisade e2e" \
  -keyout "$E2E_TMP/key.pem" -out "$E2E_TMP/cert.pem" 2>/dev/null || fail "openssl req"
cat "$E2E_TMP/key.pem" >"$data/tls/key.pem"
cat "$E2E_TMP/cert.pem" >"$data/tls/cert.pem"
kill -HUP "$PAL_PID"
new=$(openssl x509 -in "$data/tls/cert.pem" -noout -fingerprint -sha256)
for ((i = 0; i < 30; i++)); do
  served=$(openssl s_client -connect "$HOST:$port" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
  [ "$served" = "$new" ] && break
  sleep 0.1
done
[ "$served" = "$new" ] || fail "after SIGHUP the console still serves $served, not the new $new"
ok "after SIGHUP the console serves the new certificate"

timeout 90 python3 "$E2E_DIR/console_api.py" "$port" "$data" "$PALISADE_BIN" || fail "console_api.py failed"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
