#!/usr/bin/env bash
# sipp sends OPTIONS over UDP and over TCP (one connection, -t t1); every one must get
# a 200 with an Allow header listing OPTIONS (scenarios/options.xml), and palisade must
# still stop cleanly afterwards.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp ss

port=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

CALLS=20
run_sipp() { # transport(u1|t1)
  local tp=$1 lport rc=0 stat
  lport=$(free_port)
  stat=$E2E_TMP/sipp-$tp.csv
  (cd "$E2E_TMP" && timeout -k 2 40 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/options.xml" -s ping \
    -t "$tp" -i "$HOST" -p "$lport" -m "$CALLS" -r 10 -l 5 \
    -nostdin -timeout 30 -timeout_error -max_retrans 3 \
    -trace_stat -stf "$stat" -trace_err -error_file "$E2E_TMP/sipp-$tp.err" \
    >"$E2E_TMP/sipp-$tp.out" 2>&1 </dev/null) || rc=$?
  local okc failc
  okc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i; next} {v=$k} END{print v+0}' "$stat" 2>/dev/null || echo 0)
  failc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="FailedCall(C)") k=i; next} {v=$k} END{print v+0}' "$stat" 2>/dev/null || echo 0)
  log "sipp -t $tp: exit $rc, $okc successful, $failc failed of $CALLS"
  if [ "$rc" != 0 ] || [ "$okc" != "$CALLS" ] || [ "$failc" != 0 ]; then
    show "$E2E_TMP/sipp-$tp.out" 15
    show "$E2E_TMP/sipp-$tp.err" 30
    fail "sipp OPTIONS over $tp: expected $CALLS x 200 with Allow: OPTIONS"
  fi
  ok "sipp OPTIONS over $tp: $CALLS x 200"
}

run_sipp u1
run_sipp t1
no_panic
pal_stop
