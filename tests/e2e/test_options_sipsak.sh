#!/usr/bin/env bash
# sipsak pings palisade with OPTIONS over UDP and TCP: each must get a final 200.
# (sipsak 0.9.8.1 can also speak TLS, but its TLS receive path fails even against a
# working server, so TLS is covered by test_tls_openssl.sh and test_tls_baresip.sh.)
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipsak ss

port=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

sipsak_options "$port" udp || fail "sipsak OPTIONS over UDP did not get 200"
ok "sipsak OPTIONS over UDP: 200"

if sipsak --help 2>&1 | grep -q -- '--transport'; then
  sipsak_options "$port" tcp || fail "sipsak OPTIONS over TCP did not get 200"
  ok "sipsak OPTIONS over TCP: 200"
else
  log "this sipsak has no -E/--transport: TCP not tried"
fi

no_panic
pal_stop
