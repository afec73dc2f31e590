#!/usr/bin/env bash
# SIP over WebSocket (RFC 7118) with python3-websockets: OPTIONS over ws and over wss (trusting the generated
# certificate, the same one SIP over TLS uses) get 200; an upgrade without the `sip` subprotocol is refused (400).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need ss

# The first Python that has the websockets module (Debian's python3-websockets is for /usr/bin/python3).
PY=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import websockets' 2>/dev/null; then
    PY=$p
    break
  fi
done
[ -n "$PY" ] || fail "no python3 with the websockets module: run scripts/install-deps.sh (python3-websockets)"
ws() { timeout -k 1 20 "$PY" "$E2E_DIR/ws_client.py" "$@"; }

ws_port=$(free_port 2)
wss_port=$((ws_port + 1))
data=$E2E_TMP/data
pal_start "$data" --listen "ws:$HOST:$ws_port" --listen "wss:$HOST:$wss_port"

out=$(ws "ws://$HOST:$ws_port/" --count 2) || fail "OPTIONS over ws did not get 200: $out"
ok "OPTIONS over ws (2 on one connection): $(echo "$out" | tr '\n' ' ')"

out=$(ws "ws://$HOST:$ws_port/" --no-subprotocol) || fail "upgrade without the sip subprotocol was not refused with 400: $out"
ok "ws upgrade without the sip subprotocol: $out"

out=$(ws "wss://$HOST:$wss_port/" --cafile "$data/tls/cert.pem") || fail "OPTIONS over wss did not get 200: $out"
ok "OPTIONS over wss: $out"

no_panic
pal_stop
