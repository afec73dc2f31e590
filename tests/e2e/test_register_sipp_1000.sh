#!/usr/bin/env bash
# e2e: alone (CPU-bound load: run with nothing beside it; see run.sh)
# 1,000 extensions made by `palisade ext add-range` all register with digest authentication:
# sipp (scenarios/reg_auth.xml: REGISTER -> 401 -> REGISTER with credentials -> 200) runs through
# the credentials CSV once over UDP and once over one TCP connection. Every registration must
# succeed (sipp exit 0 and its statistics: 1000 successful, 0 failed), and `palisade registrations
# --json` must then list the 1000 distinct extensions (the write-behind gets up to 3 s).
# The rate (200 registrations/s = 400 requests/s from one source) stays below the flood guard's
# default flood_amber_pps (1000): above it the source is throttled and sipp's calls time out.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp ss python3

N=1000
FIRST=2000
LAST=$((FIRST + N - 1))
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range "$FIRST" "$LAST" --data "$data" >"$csv" 2>"$E2E_TMP/add-range.err" ||
  fail "ext add-range $FIRST $LAST failed: $(cat "$E2E_TMP/add-range.err")"
[ "$(head -1 "$csv")" = number,auth_id,password,voicemail_pin ] || fail "add-range CSV header: $(head -1 "$csv")"
[ "$(tail -n +2 "$csv" | wc -l)" = "$N" ] || fail "add-range printed $(tail -n +2 "$csv" | wc -l) rows, expected $N"
inf=$E2E_TMP/reg.inf
{
  echo SEQUENTIAL
  tail -n +2 "$csv" | tr ',' ';'
} >"$inf"
ok "ext add-range $FIRST $LAST: $N credentials"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

run_sipp() { # transport(u1|t1) -> registers all N extensions
  local tp=$1 lport rc=0 stat t0 t1 okc failc
  lport=$(free_port)
  stat=$E2E_TMP/sipp-$tp.csv
  t0=$(date +%s%N)
  (cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" \
    -inf "$inf" -t "$tp" -i "$HOST" -p "$lport" -m "$N" -r 200 -l 200 \
    -nostdin -timeout 50 -timeout_error -max_retrans 3 \
    -trace_stat -stf "$stat" -trace_err -error_file "$E2E_TMP/sipp-$tp.err" \
    >"$E2E_TMP/sipp-$tp.out" 2>&1 </dev/null) || rc=$?
  t1=$(date +%s%N)
  okc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i; next} {v=$k} END{print v+0}' "$stat" 2>/dev/null || echo 0)
  failc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="FailedCall(C)") k=i; next} {v=$k} END{print v+0}' "$stat" 2>/dev/null || echo 0)
  log "sipp -t $tp: exit $rc, $okc successful, $failc failed of $N in $(((t1 - t0) / 1000000)) ms"
  if [ "$rc" != 0 ] || [ "$okc" != "$N" ] || [ "$failc" != 0 ]; then
    show "$E2E_TMP/sipp-$tp.out" 15
    show "$E2E_TMP/sipp-$tp.err" 30
    show "$PAL_ERR" 20
    fail "sipp REGISTER over $tp: expected $N authenticated registrations (401 then 200)"
  fi
  ok "sipp REGISTER over $tp: $N x (401, 200) in $(((t1 - t0) / 1000000)) ms at -r 200"
}

# Distinct extensions in `palisade registrations --json` (optionally only bindings of one transport).
count_registered() { # [transport]
  "$PALISADE_BIN" registrations --json --data "$data" 2>/dev/null | python3 -c '
import json, sys
want = sys.argv[1] if len(sys.argv) > 1 else ""
regs = json.load(sys.stdin)
print(len({r["extension"] for r in regs if not want or r["transport"].lower() == want}))' "$@"
}

wait_registered() { # count transport
  local want=$1 tp=$2 i n=0
  for ((i = 0; i < 30; i++)); do
    n=$(count_registered "$tp" || echo 0)
    [ "$n" = "$want" ] && break
    sleep 0.1
  done
  [ "$n" = "$want" ] || {
    "$PALISADE_BIN" registrations --json --data "$data" >"$E2E_TMP/registrations.json" 2>&1 || true
    show "$E2E_TMP/registrations.json" 20
    fail "palisade registrations --json lists $n distinct extensions with $tp bindings after 3 s, expected $want"
  }
  ok "palisade registrations: $n distinct extensions with a $tp binding"
}

run_sipp u1
wait_registered "$N" udp
run_sipp t1
wait_registered "$N" tcp
[ "$(count_registered)" = "$N" ] || fail "registrations list $(count_registered) extensions in all, expected $N"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
