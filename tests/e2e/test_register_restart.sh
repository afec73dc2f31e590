#!/usr/bin/env bash
# Registrations survive a restart: sipp (scenarios/reg_auth.xml) registers 3 extensions over UDP,
# palisade is stopped with SIGTERM right away (no wait for the write-behind) and started again on
# the same data directory. Its log must say it loaded registrations=3, and an authenticated
# REGISTER *query* (no Contact header, reg_client.py --query) for each extension must get a 200
# whose Contact is the one sipp registered before the restart: the running server restored the
# bindings, not only the database.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

N=3
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 400 $((400 + N - 1)) --data "$data" >"$csv" 2>/dev/null || fail "ext add-range"
inf=$E2E_TMP/reg.inf
{
  echo SEQUENTIAL
  tail -n +2 "$csv" | tr ',' ';'
} >"$inf"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"
grep -q 'registrations=0' "$PAL_ERR" || {
  show "$PAL_ERR"
  fail "first start: the log does not say registrations=0"
}

lport=$(free_port)
rc=0
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" \
  -inf "$inf" -t u1 -i "$HOST" -p "$lport" -m "$N" -r 10 -nostdin -timeout 20 -timeout_error -max_retrans 3 \
  -trace_stat -stf "$E2E_TMP/sipp.csv" -trace_err -error_file "$E2E_TMP/sipp.err" \
  >"$E2E_TMP/sipp.out" 2>&1 </dev/null) || rc=$?
okc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i; next} {v=$k} END{print v+0}' "$E2E_TMP/sipp.csv" 2>/dev/null || echo 0)
if [ "$rc" != 0 ] || [ "$okc" != "$N" ]; then
  show "$E2E_TMP/sipp.err" 30
  fail "sipp registered $okc of $N (exit $rc)"
fi
ok "sipp registered $N extensions with contact $HOST:$lport"

pal_stop
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"
loaded=$(grep -o 'registrations=[0-9]*' "$PAL_ERR" | head -1 | cut -d= -f2)
if [ -z "$loaded" ] || [ "$loaded" -lt "$N" ]; then
  show "$PAL_ERR"
  fail "restart: the log says registrations=${loaded:-?}, expected $N"
fi
ok "restart: palisade loaded registrations=$loaded"

tail -n +2 "$csv" | while IFS=, read -r number auth_id password _pin; do
  for tp in udp tcp; do
    out=$E2E_TMP/query-$number-$tp.json
    timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" "$tp" "$number" "$auth_id" "$password" --query \
      >"$out" 2>&1 || fail "reg_client --query $number over $tp failed: $(cat "$out")"
    python3 - "$out" "$number@$HOST:$lport" <<'PY' || fail "REGISTER query for $number over $tp after the restart (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
fin = d.get("final", d["challenge"])
if fin["code"] != 200:
    sys.exit(f"query got {fin['status']}, expected 200")
contacts = [v for k, v in fin["headers"] if k.lower() in ("contact", "m")]
if not any(sys.argv[2] in c for c in contacts):
    sys.exit(f"the 200 lists {contacts}, not the contact sip:{sys.argv[2]} registered before the restart")
print(f"{fin['status']}; Contact: {'; '.join(contacts)}")
PY
  done
done
ok "after the restart, REGISTER queries for all $N extensions (UDP and TCP) list the contacts registered before it"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
