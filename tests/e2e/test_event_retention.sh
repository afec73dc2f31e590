#!/usr/bin/env bash
# Issue 12 item 7: the security-event table does not grow without end.
#   * `security set event_max_rows 99` is refused (minimum 100), 100 accepted; `security show` lists both event
#     log settings;
#   * 2,000 authenticated registrations (sipp, scenarios/reg_auth.xml, 200 extensions in turn, 400/s) write no
#     event row: their challenges and successes are daily counters (`palisade events --summary`), at least 2,000
#     of each;
#   * 150 wrong-password registrations from a whitelisted source (so it is not banned) write 150
#     `auth_failure` rows: failures are always rows; within the prune interval (10 s) the table is cut back to
#     the newest 100 rows.
# Ports: 26880-26959.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26880 E2E_PORT_MAX=26959
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 jq ss

N=2000
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add-range 3000 3199 >"$csv" 2>"$E2E_TMP/add-range.err" || fail "ext add-range: $(cat "$E2E_TMP/add-range.err")"
inf=$E2E_TMP/reg.inf
{
  echo SEQUENTIAL
  tail -n +2 "$csv" | cut -d, -f1-3 | tr ',' ';'
} >"$inf"
authid=$(sed -n 2p "$csv" | cut -d, -f2)

pal security set event_max_rows 99 >"$E2E_TMP/set99.out" 2>&1 && fail "event_max_rows 99 accepted (minimum 100)"
grep -q '100' "$E2E_TMP/set99.out" || fail "refusal of 99 does not give the limits: $(cat "$E2E_TMP/set99.out")"
pal security set event_max_rows 100 >/dev/null || fail "security set event_max_rows 100"
pal security show >"$E2E_TMP/show.out" || fail "security show"
grep -q '^event_max_rows  *100 ' "$E2E_TMP/show.out" || fail "security show: $(cat "$E2E_TMP/show.out")"
grep -q '^event_retention_days  *90 ' "$E2E_TMP/show.out" || fail "security show: $(cat "$E2E_TMP/show.out")"
ok "event_max_rows: 99 refused ($(head -1 "$E2E_TMP/set99.out")), 100 accepted; security show lists event_retention_days 90"
pal whitelist add 127.0.0.77 >/dev/null || fail "whitelist add 127.0.0.77"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# ---- 2,000 registrations: no rows, counters
lport=$(free_port)
rc=0
(cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" -inf "$inf" -t u1 \
  -i "$HOST" -p "$lport" -m "$N" -r 400 -l 200 -nostdin -timeout 50 -timeout_error -max_retrans 3 \
  -trace_stat -stf "$E2E_TMP/sipp.csv" >"$E2E_TMP/sipp.out" 2>&1 </dev/null) || rc=$?
okc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i; next} {v=$k} END{print v+0}' "$E2E_TMP/sipp.csv")
{ [ "$rc" = 0 ] && [ "$okc" = "$N" ]; } || {
  show "$E2E_TMP/sipp.out" 15
  fail "sipp: exit $rc, $okc of $N registrations"
}
sleep 1.5 # write-behind
pal events --summary --json >"$E2E_TMP/summary.json" || fail "events --summary"
rows=$(jq .rows "$E2E_TMP/summary.json")
succ=$(jq '[.counts[] | select(.kind == "auth_success") | .count] | add' "$E2E_TMP/summary.json")
chal=$(jq '[.counts[] | select(.kind == "auth_challenge") | .count] | add' "$E2E_TMP/summary.json")
[ "$rows" = 0 ] || fail "$N registrations wrote $rows event rows (expected none): $(pal events --limit 5)"
{ [ "$succ" -ge "$N" ] && [ "$chal" -ge "$N" ]; } || fail "counters after $N registrations: $(cat "$E2E_TMP/summary.json")"
ok "$N registrations: 0 event rows; counted: auth_success $succ, auth_challenge $chal"
pal events --summary >"$E2E_TMP/summary.txt" || fail "events --summary (text)"
grep -q 'auth_success' "$E2E_TMP/summary.txt" || fail "events --summary text: $(cat "$E2E_TMP/summary.txt")"

# ---- 150 failures: rows, then pruned to the newest 100
timeout -k 2 60 python3 "$E2E_DIR/guard_client.py" "$HOST:$port" 127.0.0.77 auth 150 3000 "$authid" WrongPassw0rd \
  --timeout 1 >"$E2E_TMP/fail.jsonl" || fail "guard_client"
[ "$(jq -s '[.[] | select(.final == 401)] | length' "$E2E_TMP/fail.jsonl")" = 150 ] ||
  fail "150 wrong passwords from whitelisted 127.0.0.77 were not all answered 401"
t0=$SECONDS
for ((i = 0; i < 150; i++)); do
  rows=$(pal events --summary --json | jq .rows)
  [ "$rows" -le 100 ] && [ "$rows" -gt 0 ] && break
  sleep 0.2
done
[ "$rows" = 100 ] || fail "event rows after 150 failures with event_max_rows 100: $rows"
newest=$(pal events --json --limit 1 | jq -r '.[0].kind')
[ "$newest" = auth_failure ] || fail "newest row: $newest"
ok "150 auth_failure rows pruned to the newest 100 within $((SECONDS - t0)) s"
grep -q 'security events pruned' "$PAL_OUT" "$PAL_ERR" || fail "no 'security events pruned' log line"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
