#!/usr/bin/env bash
# What palisade refuses, with sipp (scenarios/refusals.xml) over UDP and TCP: an unknown method
# gets 501, a request with a malformed header gets 400 with a reason phrase that names the header.
# The server must keep answering OPTIONS with 200 afterwards.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp sipsak ss

port=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

CALLS=5
for tp in u1 t1; do
  lport=$(free_port)
  rc=0
  (cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/refusals.xml" -s ping \
    -t "$tp" -i "$HOST" -p "$lport" -m "$CALLS" -r 10 -nostdin -timeout 20 -timeout_error -max_retrans 3 \
    -trace_err -error_file "$E2E_TMP/sipp-$tp.err" -trace_msg -message_file "$E2E_TMP/sipp-$tp.msg" \
    >"$E2E_TMP/sipp-$tp.out" 2>&1 </dev/null) || rc=$?
  if [ "$rc" != 0 ]; then
    show "$E2E_TMP/sipp-$tp.err" 30
    show "$E2E_TMP/sipp-$tp.msg" 40
    fail "sipp refusals over $tp: exit $rc (expected 501 for an unknown method, 400 naming Max-Forwards)"
  fi
  n501=$(grep -c '^SIP/2.0 501 ' "$E2E_TMP/sipp-$tp.msg" || true)
  n400=$(grep -c '^SIP/2.0 400 .*Max-Forwards' "$E2E_TMP/sipp-$tp.msg" || true)
  if [ "$n501" -lt "$CALLS" ] || [ "$n400" -lt "$CALLS" ]; then
    fail "sipp over $tp: saw $n501 x 501 and $n400 x 400, expected $CALLS of each"
  fi
  ok "over $tp: unknown method -> $(grep -m1 '^SIP/2.0 501' "$E2E_TMP/sipp-$tp.msg" | tr -d '\r');" \
    "duplicate Max-Forwards -> $(grep -m1 '^SIP/2.0 400' "$E2E_TMP/sipp-$tp.msg" | tr -d '\r')"
done

sipsak_options "$port" udp || fail "no 200 to OPTIONS after the refusals"
no_panic
pal_stop
