#!/usr/bin/env bash
# Calls that do not connect, over UDP, with call_client.py as the caller (extension 100) and sipp UAS
# callees registered (call_client.py register --contact) as extensions:
#   * INVITE without credentials -> 407 (Proxy-Authenticate); INVITE with a wrong password -> 407 again;
#     neither makes a call (no call record, nothing in progress);
#   * unknown number 555 -> 404 (record not_found); extension 102, never registered -> 480 (unavailable);
#   * busy: 101 is sipp answering 486 (scenarios/call_uas_busy.xml) -> the caller gets 486, sipp saw
#     its call complete, and a `busy` call record;
#   * no answer: with `[calls] no_answer_seconds = 3`, 103 is sipp ringing forever
#     (scenarios/call_uas_ring.xml) -> the caller gets 180 then 480 about 3 s after its INVITE, and
#     sipp got the CANCEL (its scenario only completes with it); a `no_answer` record;
#   * the caller cancels after 1 s of ringing (104, the same ringing sipp) -> 200 for the CANCEL, 487
#     for the INVITE, the callee got the CANCEL, a `cancelled` record, hung up by the caller.
# Finally no call in progress and no relay socket left. Ports 29000-29099, relay 29200-29299.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29000 E2E_PORT_MAX=29099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

RTP_LO=29200 RTP_HI=29299
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 104 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 104"
# These calls must fail as they would without a mailbox (voicemail, on by default, would answer them).
for n in 100 101 102 103 104; do
  "$PALISADE_BIN" ext set "$n" --voicemail off --data "$data" >/dev/null || fail "ext set $n --voicemail off"
done
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
cat >"$data/palisade.toml" <<'TOML'
[calls]
no_answer_seconds = 3
TOML

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# call_as100 CALLEE [call_client options...] -> JSON on stdout
call_as100() {
  local callee=$1
  shift
  timeout -k 2 25 python3 "$CLIENT" call "$HOST:$port" 100 "$(cred 100 2)" "$(cred 100 3)" "$callee" "$@"
}
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
cdr_json() { "$PALISADE_BIN" cdr --json --data "$data"; }
ncdr() { cdr_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# the newest call record, once there are N (write-behind: up to 3 s)
cdr_newest() {
  local n=$1 i
  for ((i = 0; i < 40; i++)); do
    [ "$(ncdr)" -ge "$n" ] && break
    sleep 0.1
  done
  cdr_json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(max(r, key=lambda x: x["id"])) if r else "{}")'
}
cdr_is() { # record_json key value...
  local rec=$1
  shift
  python3 -c '
import json, sys
r = json.loads(sys.argv[1]); kv = sys.argv[2:]
bad = [f"{k}={r.get(k)!r} (expected {v!r})" for k, v in zip(kv[::2], kv[1::2]) if str(r.get(k)) != v]
sys.exit("; ".join(bad) if bad else 0)' "$rec" "$@"
}
calls_empty() { [ "$("$PALISADE_BIN" calls --json --data "$data" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ]; }

# ---- 1. authentication: none, then a wrong password
out=$(call_as100 101 --no-auth) || fail "INVITE without credentials: $out"
[ "$(jget "$out" 'r["final"]')" = 407 ] || fail "INVITE without credentials: expected 407, got $out"
scheme=$(jget "$out" 'r["responses"][-1][2]')
ok "INVITE without credentials -> 407 ($scheme)"
out=$(timeout -k 2 25 python3 "$CLIENT" call "$HOST:$port" 100 "$(cred 100 2)" WrongPassw0rd 101) ||
  fail "INVITE with a wrong password: $out"
if [ "$(jget "$out" 'r["challenge"]')" != 407 ] || [ "$(jget "$out" 'r["final"]')" != 407 ]; then
  fail "INVITE with a wrong password: expected 407 then 407 again, got $out"
fi
sleep 1
[ "$(ncdr)" = 0 ] || fail "unauthenticated INVITEs left call records: $(cdr_json)"
calls_empty || fail "unauthenticated INVITEs left calls in progress"
ok "INVITE with a wrong password -> 407, then 407 again; no call record, no call in progress"

# ---- 2. unknown number, unregistered extension
out=$(call_as100 555) || fail "call to 555: $out"
if [ "$(jget "$out" 'r["challenge"]')" != 407 ] || [ "$(jget "$out" 'r["final"]')" != 404 ]; then
  fail "call to unknown number 555: expected 407 then 404, got $out"
fi
rec=$(cdr_newest 1)
err=$(cdr_is "$rec" caller 100 callee 555 disposition not_found 2>&1) || fail "404 call record: $err: $rec"
ok "unknown number 555 -> 404 ($(jget "$out" 'r["responses"][-1][2]')); record not_found"
out=$(call_as100 102) || fail "call to 102: $out"
[ "$(jget "$out" 'r["final"]')" = 480 ] || fail "call to unregistered 102: expected 480, got $out"
rec=$(cdr_newest 2)
err=$(cdr_is "$rec" caller 100 callee 102 disposition unavailable 2>&1) || fail "480 call record: $err: $rec"
ok "unregistered extension 102 -> 480 ($(jget "$out" 'r["responses"][-1][2]')); record unavailable"
n0=$(ncdr)

# register_sipp NUMBER PORT: bind NUMBER's contact to a sipp UAS on HOST:PORT, registering from that port
# (Palisade sends a UDP call to the REGISTER's source address, not to a Contact elsewhere)
register_sipp() {
  local r
  r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" "$1" "$(cred "$1" 2)" "$(cred "$1" 3)" \
    --contact "$HOST:$2" --bind "$2") || fail "register $1 -> $HOST:$2: $r"
  [ "$(jget "$r" 'r["final"]')" = 200 ] || fail "register $1 -> $HOST:$2: $r"
}
# start_uas SCENARIO PORT NAME: one-call sipp UAS, PID in UAS_PID
start_uas() {
  spawn "$E2E_TMP/$3.out" timeout -k 2 40 sipp -sf "$SCEN/$1" -i "$HOST" -p "$2" -m 1 -nostdin \
    -timeout 35 -trace_msg -message_file "$E2E_TMP/$3.msg" -trace_stat -stf "$E2E_TMP/$3.csv" -fd 1 \
    -trace_err -error_file "$E2E_TMP/$3.err"
  UAS_PID=$BG_PID
  sleep 0.5
  alive "$UAS_PID" || {
    show "$E2E_TMP/$3.out"
    fail "sipp UAS $3 did not start"
  }
}
# uas_done NAME PID: sipp ran its one call to the end (exit 0, 1 successful call)
uas_done() {
  local i rc=0
  for ((i = 0; i < 100; i++)); do alive "$2" || break; sleep 0.1; done
  alive "$2" && {
    show "$E2E_TMP/$1.msg" 40
    fail "sipp UAS $1 still waiting (its scenario did not complete)"
  }
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$1.msg" 40
    show "$E2E_TMP/$1.err" 10
    fail "sipp UAS $1 exited $rc (scenario not completed)"
  }
}

# ---- 3. busy
p101=$(free_port)
register_sipp 101 "$p101"
start_uas call_uas_busy.xml "$p101" busy
out=$(call_as100 101) || fail "call to busy 101: $out"
[ "$(jget "$out" 'r["final"]')" = 486 ] || fail "call to busy 101: expected 486, got $out"
uas_done busy "$UAS_PID"
rec=$(cdr_newest $((n0 + 1)))
err=$(cdr_is "$rec" caller 100 callee 101 disposition busy 2>&1) || fail "busy call record: $err: $rec"
ok "busy: sipp 101 answered 486 -> caller got $(jget "$out" 'r["responses"]'); call record $(jget "$rec" 'r["disposition"]'), reason $(jget "$rec" 'r.get("reason")')"

# ---- 4. no answer (no_answer_seconds = 3)
p103=$(free_port)
register_sipp 103 "$p103"
start_uas call_uas_ring.xml "$p103" noanswer
out=$(call_as100 103 --wait 12) || fail "call to ringing 103: $out"
final=$(jget "$out" 'r["final"]')
t=$(jget "$out" 'r["final_t"]')
ring=$(jget "$out" 'any(c == 180 for _, c, _ in r["responses"])')
if [ "$final" != 480 ] || [ "$ring" != True ]; then fail "no answer: expected 180 then 480, got $out"; fi
awk -v t="$t" 'BEGIN{exit !(t >= 2.5 && t <= 5)}' || fail "no answer: 480 came ${t}s after the INVITE, expected ~3 s: $out"
uas_done noanswer "$UAS_PID"
grep -q '^CANCEL ' "$E2E_TMP/noanswer.msg" || fail "no answer: the callee did not get a CANCEL"
rec=$(cdr_newest $((n0 + 2)))
err=$(cdr_is "$rec" caller 100 callee 103 disposition no_answer 2>&1) || fail "no-answer call record: $err: $rec"
ok "no answer: 180, then 480 after ${t}s (no_answer_seconds = 3); callee got CANCEL and sent 487; record no_answer"

# ---- 5. the caller cancels while it rings
p104=$(free_port)
register_sipp 104 "$p104"
start_uas call_uas_ring.xml "$p104" cancel
out=$(call_as100 104 --cancel-after 1 --wait 12) || fail "cancelled call to 104: $out"
if [ "$(jget "$out" 'r["cancel"]')" != 200 ] || [ "$(jget "$out" 'r["final"]')" != 487 ]; then
  fail "caller CANCEL: expected 200 for the CANCEL and 487 for the INVITE, got $out"
fi
uas_done cancel "$UAS_PID"
grep -q '^CANCEL ' "$E2E_TMP/cancel.msg" || fail "caller CANCEL: the callee did not get a CANCEL"
rec=$(cdr_newest $((n0 + 3)))
err=$(cdr_is "$rec" caller 100 callee 104 disposition cancelled hung_up_by caller 2>&1) ||
  fail "cancelled call record: $err: $rec"
ok "caller CANCEL after 1 s of ringing: CANCEL 200, INVITE 487 after $(jget "$out" 'r["final_t"]')s; callee got CANCEL; record cancelled, hung up by caller"

sleep 0.5
calls_empty || fail "calls in progress left: $("$PALISADE_BIN" calls --json --data "$data")"
left=$(ss -Huanp | awk -v pid="$PAL_PID" -v lo="$RTP_LO" -v hi="$RTP_HI" '$0 ~ "pid=" pid "," { n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print $4 }' | tr '\n' ' ')
[ -z "$left" ] || fail "palisade still holds relay sockets: $left"
ok "afterwards: no call in progress, no relay socket in $RTP_LO-$RTP_HI; $(ncdr) call records in all"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
