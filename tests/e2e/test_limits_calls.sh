#!/usr/bin/env bash
# Issue 12 item 3: resource limits. Defaults: max_calls_per_extension 4. Over UDP:
#   * extension limit: 101 is a sipp UAS (call_uas_rtp.xml) registered from its own port; a sipp UAC as 100
#     (call_uac_rtp.xml, -l 4 -m 4, each call held 7 s) holds 4 calls; while they are up, a 5th call from 100
#     (call_client.py) gets 486 with Warning call_limit and a policy_refusal event, while 102 calling 101 at the
#     same time is answered; the 4 calls carry on to their BYE (sipp: 4 successful, 0 failed); afterwards
#     100 calls again and is answered;
#   * trunk limit: trunk `carrier` (a sipp UAS on 127.0.0.61) with `--max-calls 1`, rule 0 -> carrier: while
#     103's call through it is up, 104's call gets 503 with Warning trunk_call_limit and an event; the first
#     call carries on; afterwards 104's call goes through;
#   * subscriptions: `policy set max_subscriptions_per_extension 1` on the running server; while 100 holds one
#     message-waiting subscription (sipp mwi_subscribe_once.xml, held 4 s), a second gets 407 then 486 and a
#     subscription_limit event; the first ends normally; then a new one is accepted;
#   * `ext set 100 --max-calls 2 --max-external-calls 1` is shown; 0 / "" go back to the defaults.
# Ports: signalling 26400-26799 (E2E_PORT_MIN/MAX), relay inside 45000-49999.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss sox

PROV=127.0.0.61
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add-range 100 104 2>/dev/null | grep -E '^[0-9]+,' >"$csv" || fail "ext add-range 100 104"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
for n in 100 101 102 103 104; do
  pal ext set "$n" --voicemail off >/dev/null || fail "ext set $n --voicemail off"
done
pport=$(free_port)
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal trunk add carrier --host "$PROV" --port "$pport" --transport udp --source "$PROV/32" --max-calls 1 \
  >"$E2E_TMP/trunk.out" || fail "trunk add carrier --max-calls 1: $(cat "$E2E_TMP/trunk.out")"
grep -q "1 at once" "$E2E_TMP/trunk.out" || fail "trunk add does not show the call cap: $(cat "$E2E_TMP/trunk.out")"
pal rule add out --prefix 0 --strip 1 --trunks carrier >/dev/null || fail "rule add out"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 2 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

port=$(free_port)
rtp=$((45000 + (port - E2E_PORT_MIN) * 12))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$rtp-$((rtp + 99))"

# call_as NUMBER CALLEE -> call_client's JSON (a 2xx is ACKed and ended with BYE at once)
call_as() {
  timeout -k 2 30 python3 "$CLIENT" call "$HOST:$port" "$1" "$(cred "$1" 2)" "$(cred "$1" 3)" "$2" --wait 10
}
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }
talking() { pal calls --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin) if c["state"] == "talking"))' 2>/dev/null || echo 0; }
wait_talking() { # wait_talking N: at least N calls talking (10 s at most)
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(talking)" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "fewer than $1 calls talking: $(pal calls)"
}
refusals() {
  pal events --kind policy_refusal --json --limit 1000 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("reason") == sys.argv[1]))' "$1"
}
wait_refusal() {
  local i
  for ((i = 0; i < 30; i++)); do
    [ "$(refusals "$1")" -ge 1 ] && return 0
    sleep 0.1
  done
  fail "no policy_refusal $1 event: $(pal events --kind policy_refusal --limit 10)"
}
stat_of() { # stat_of CSV COLUMN -> its last value
  python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
print(rows[-1][rows[0].index(sys.argv[2])])' "$1" "$2"
}
# uac NAME CALLS INJECTION_LINE: a sipp UAC in the background (PID in UAC_PID), each call held 7 s
uac() {
  local block
  printf 'SEQUENTIAL\n%s\n' "$3" >"$E2E_TMP/$1.csv"
  block=$(free_port 6)
  (cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/$1.csv" \
    -i "$HOST" -p "$block" -mi "$HOST" -mp $((block + 2)) -r 20 -l "$2" -m "$2" -d 7000 -nostdin -timeout 50 \
    -recv_timeout 10000 -trace_stat -stf "$E2E_TMP/$1.stat" -fd 1 -trace_err -error_file "$E2E_TMP/$1.err" \
    >"$E2E_TMP/$1.out" 2>&1 </dev/null) &
  UAC_PID=$!
  E2E_PIDS+=("$UAC_PID")
}
uac_done() { # uac_done NAME CALLS: the UAC ended with CALLS successful calls and none failed
  local rc=0 succ failed
  wait "$UAC_PID" || rc=$?
  succ=$(stat_of "$E2E_TMP/$1.stat" 'SuccessfulCall(C)' 2>/dev/null || echo "?")
  failed=$(stat_of "$E2E_TMP/$1.stat" 'FailedCall(C)' 2>/dev/null || echo "?")
  [ "$rc/$succ/$failed" = "0/$2/0" ] ||
    fail "sipp $1: exit $rc, $succ successful, $failed failed (want $2 and 0): $(tail -n 5 "$E2E_TMP/$1.err" 2>/dev/null)"
}

# the callee 101: registered from the UAS's port, then the UAS
ublock=$(free_port 6)
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$ublock" --bind "$ublock") || fail "register 101: $r"
case $r in *'"final": 200'*) ;; *) fail "register 101: $r" ;; esac
spawn "$E2E_TMP/uas.out" timeout -k 2 100 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$ublock" \
  -mi "$HOST" -mp $((ublock + 2)) -m 6 -nostdin -timeout 95 -trace_err -error_file "$E2E_TMP/uas.err"
# the provider behind trunk carrier
spawn "$E2E_TMP/prov.out" timeout -k 2 100 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$PROV" -p "$pport" \
  -mi "$PROV" -m 2 -nostdin -timeout 95 -trace_err -error_file "$E2E_TMP/prov.err"
sleep 0.5

# ---- 1. the extension limit: 4 calls up, the 5th refused, another extension unaffected
uac ext100 4 "100;$(cred 100 2);$(cred 100 3);101"
wait_talking 4
r=$(call_as 100 101) || fail "5th call of 100: $r"
[ "$(jget "$r" final)" = 486 ] || fail "5th concurrent call of 100: expected 486, got $r"
case $(jget "$r" warning) in *call_limit*) ;; *) fail "the 486 has no Warning call_limit: $r" ;; esac
wait_refusal call_limit
r2=$(call_as 102 101) || fail "call of 102: $r2"
[ "$(jget "$r2" final)" = 200 ] || fail "102 calling 101 while 100 is at its limit: expected 200, got $r2"
[ "$(talking)" -ge 4 ] || fail "100's calls did not carry on: $(pal calls)"
ok "100 with 4 calls up: 5th -> $(jget "$r" final) ($(jget "$r" warning)); 102 -> 200 meanwhile"
uac_done ext100 4
r=$(call_as 100 101) || fail "call of 100 after: $r"
[ "$(jget "$r" final)" = 200 ] || fail "100 calling after its 4 calls ended: expected 200, got $r"
ok "the 4 calls carried on to their BYE (sipp: 4 successful, 0 failed); 100 calls again -> 200"

# ---- 2. the trunk limit: carrier carries 1 call at once
uac trunk103 1 "103;$(cred 103 2);$(cred 103 3);0301234567"
wait_talking 1
r=$(call_as 104 0301234568) || fail "call of 104 through the full trunk: $r"
[ "$(jget "$r" final)" = 503 ] || fail "a call through carrier at its limit: expected 503, got $r"
case $(jget "$r" warning) in *trunk_call_limit*) ;; *) fail "the 503 has no Warning trunk_call_limit: $r" ;; esac
wait_refusal trunk_call_limit
ok "carrier (--max-calls 1) with a call up: 104 -> $(jget "$r" final) ($(jget "$r" warning))"
uac_done trunk103 1
r=$(call_as 104 0301234568) || fail "call of 104 after: $r"
[ "$(jget "$r" final)" = 200 ] || fail "104 through carrier after the first call ended: expected 200, got $r"
ok "the trunk's call carried on; afterwards 104 -> 200 through carrier"

# ---- 3. subscriptions per extension
pal policy set max_subscriptions_per_extension 1 >/dev/null || fail "policy set max_subscriptions_per_extension 1"
sleep 1.5 # picked up by the running server within a second
# subscribe NAME HOLD_MS -> sipp's exit status; messages in $E2E_TMP/NAME.msg
subscribe() {
  local lport rc=0
  lport=$(free_port)
  timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/mwi_subscribe_once.xml" -s 100 -au "$(cred 100 2)" \
    -ap "$(cred 100 3)" -i "$HOST" -p "$lport" -m 1 -d "$2" -nostdin -timeout 20 -recv_timeout 5000 \
    -trace_msg -message_file "$E2E_TMP/$1.msg" >"$E2E_TMP/$1.out" 2>&1 </dev/null || rc=$?
  return "$rc"
}
statuses() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^SIP/2.0 ' | cut -d' ' -f2 | tr '\n' ' '; }
subscribe sub_held 4000 &
held_pid=$!
E2E_PIDS+=("$held_pid")
for ((i = 0; i < 50; i++)); do
  case $(statuses sub_held) in *200*) break ;; esac
  sleep 0.1
done
rc=0
subscribe sub_second 0 || rc=$?
st=$(statuses sub_second)
[ "$rc" != 0 ] || fail "a second subscription of 100 was accepted with max_subscriptions_per_extension 1 ($st)"
case $st in "407 486"*) ;; *) fail "second subscription: expected 407 then 486, got '$st'" ;; esac
wait_refusal subscription_limit
rc=0
wait "$held_pid" || rc=$?
[ "$rc" = 0 ] || fail "the held subscription failed: exit $rc ($(statuses sub_held))"
rc=0
subscribe sub_after 0 || rc=$?
[ "$rc" = 0 ] || fail "a subscription after the first ended failed: exit $rc ($(statuses sub_after))"
ok "subscriptions (limit 1): second -> $st; the first ended normally ($(statuses sub_held)); a new one -> $(statuses sub_after)"

# ---- 4. the per-extension override and its display
out=$(pal ext set 100 --max-calls 2 --max-external-calls 1) || fail "ext set 100 --max-calls 2: $out"
case $out in *"2 calls at once; external: 1 at once"*) ;; *) fail "ext set does not show the limits: $out" ;; esac
out=$(pal ext set 100 --max-calls 0 --max-external-calls "") || fail "ext set 100 --max-calls 0: $out"
case $out in *"4 calls at once (the max_calls_per_extension setting); external: no cap"*) ;;
*) fail "ext set --max-calls 0 did not go back to the setting: $out" ;; esac
pal ext set 100 --max-calls 1001 >/dev/null 2>&1 && fail "ext set --max-calls 1001 was accepted"
ok "ext set --max-calls / --max-external-calls: shown by ext show, 0 and \"\" go back to the defaults"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
