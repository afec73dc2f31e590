#!/usr/bin/env bash
# Issue 12 item 13: WebSocket upgrades check the browser's Origin against `ws_allowed_origins` (palisade.toml).
#   * default (no setting): a browser page (Origin: https://phone.example.com) is refused with HTTP 403 at the
#     upgrade; a client without Origin (not a browser, like baresip or sipp) gets its OPTIONS answered 200;
#   * ws_allowed_origins = ["https://phone.example.com"]: a foreign page (Origin: https://evil.example) is
#     refused with 403, the allowed one (any case, trailing slash) gets 200 over ws and over wss.
# Ports: 27120-27199.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27120 E2E_PORT_MAX=27199
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

# ---- default: no browser origin
pal_start "$data" --listen "ws:$HOST:$ws_port"
out=$(ws "ws://$HOST:$ws_port/" --origin https://phone.example.com --expect-refused 403) ||
  fail "default settings: a browser origin was not refused with 403: $out"
ok "default: Origin https://phone.example.com -> $out"
out=$(ws "ws://$HOST:$ws_port/") || fail "default settings: a client without Origin did not get 200: $out"
ok "default: no Origin (not a browser) -> $out"
no_panic
pal_stop

# ---- one allowed origin
cat >>"$data/palisade.toml" <<'EOF'
ws_allowed_origins = ["https://phone.example.com"]
EOF
pal_start "$data" --listen "ws:$HOST:$ws_port" --listen "wss:$HOST:$wss_port"
out=$(ws "ws://$HOST:$ws_port/" --origin https://evil.example --expect-refused 403) ||
  fail "a foreign origin was not refused with 403: $out"
ok "Origin https://evil.example -> $out"
out=$(ws "wss://$HOST:$wss_port/" --cafile "$data/tls/cert.pem" --origin https://evil.example --expect-refused 403) ||
  fail "a foreign origin over wss was not refused with 403: $out"
ok "Origin https://evil.example over wss -> $out"
out=$(ws "ws://$HOST:$ws_port/" --origin https://Phone.Example.com/ --count 2) || fail "the allowed origin did not get 200: $out"
ok "Origin https://Phone.Example.com/ (allowed) -> $(echo "$out" | tr '\n' ' ')"
out=$(ws "wss://$HOST:$wss_port/" --cafile "$data/tls/cert.pem" --origin https://phone.example.com) ||
  fail "the allowed origin over wss did not get 200: $out"
ok "Origin https://phone.example.com over wss -> $out"
no_panic
pal_stop
