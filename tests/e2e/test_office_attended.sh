#!/usr/bin/env bash
# Attended transfer (REFER with Replaces) over UDP: headless baresip A (extension 100, 440 Hz) and C (102, 660 Hz,
# auto-answer), and 101 as tests/e2e/transferor.py (baresip 1.0 has no attended transfer):
#   * A calls 101; 101 answers, then calls C (C answers: two calls, 100 -> 101 and 101 -> 102);
#   * 101 sends a REFER in the first call naming a dialog that does not exist: 403 with Warning
#     replaces_not_found and a policy_refusal event, both calls go on;
#   * 101 sends a REFER naming its call with C (Refer-To: <sip:102@…?Replaces=…>): 202, a NOTIFY SIP/2.0 200 OK,
#     BYE for both of 101's calls; `palisade calls` shows one call, 100 -> 102 talking; after ~3 s A has
#     received C's 660 Hz and C A's 440 Hz (sndfile dumps of the part after the transfer: audio both ways);
#     A hangs up and C sees the call close; the newest record is 100 -> 102 answered;
#   * call pull (INVITE with Replaces, RFC 3891): A calls 101 again; a phone of 102 sends an INVITE with Replaces
#     naming 101's dialog: 403 replaces_not_yours and a policy_refusal event, 101 keeps the call; then another
#     phone of 101 does the same: 200 with the same relay port as the first phone's, the first phone gets BYE,
#     `palisade calls` still shows 100 -> 101 talking.
# Ports: SIP/ctrl 26400-26499, baresip RTP 26500-26539, palisade relay 26540-26599.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26400 E2E_PORT_MAX=26499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox

RTP_LO=26540 RTP_HI=26599
CTRL=$E2E_DIR/baresip_ctrl.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 102"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }
wait_for() { # SECONDS COMMAND...: poll until the command succeeds
  local n=$(($1 * 10)) i
  shift
  for ((i = 0; i < n; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
calls_are() { [ "$(jget "$(pal calls --json)" 'sorted((x["caller"], x["callee"], x["state"]) for x in r)')" = "$1" ]; }

base=$(free_port 7)
port=$base sa=$((base + 1)) sc=$((base + 4))
ca=$((sa + 2)) cc=$((sc + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

d=$E2E_TMP/phones
acct() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600$2"; }
baresip_conf "$d/a" "$sa" "$ca" 26500 26509 440 "$(acct 100 "")"
baresip_conf "$d/c" "$sc" "$cc" 26520 26529 660 "$(acct 102 ";answermode=auto")"
for p in a c; do
  spawn "$d/$p.log" timeout -k 2 50 baresip -f "$d/$p" -t 45
  eval "pid_$p=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
both_registered() { registered 100 a && registered 102 c; }
wait_for 10 both_registered || fail "baresip A and C did not both register: $(tail -3 "$d"/*.log)"
spawn "$d/xfer.json" timeout -k 2 40 python3 "$E2E_DIR/transferor.py" "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" 102 --bogus --wait 20
xpid=$BG_PID
sleep 1
ok "100 and 102 registered; 101 is the transferor script"

if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial.json" 2>&1; then
  show "$d/dial.json"
  show "$d/xfer.json"
  fail "A dialled 101: no CALL_ESTABLISHED"
fi
ok "A called 101 (the transferor answered)"
rc=0
wait "$xpid" || rc=$?
r=$(cat "$d/xfer.json")
[ "$rc" = 0 ] || {
  show "$PAL_ERR" 30
  fail "the transferor script failed (exit $rc): $r"
}
[ "$(jget "$r" 'r["call2"]')" = 200 ] || fail "101's call to 102 was not answered: $r"
[ "$(jget "$r" 'r.get("bogus")')" = 403 ] || fail "a REFER naming no dialog did not get 403: $r"
case $(jget "$r" 'r.get("bogus_warning")') in *replaces_not_found*) ;; *) fail "the 403's Warning: $r" ;; esac
bogus_event() { [ "$(jget "$(pal events --kind policy_refusal --json --limit 10)" 'any(e.get("reason") == "replaces_not_found" for e in r)')" = True ]; }
wait_for 3 bogus_event || fail "no replaces_not_found policy event: $(pal events --kind policy_refusal --json --limit 5)"
ok "101 called 102 (answered); a REFER naming a dialog that does not exist: 403 ($(jget "$r" 'r["bogus_warning"]')) and a policy event"
[ "$(jget "$r" 'r.get("refer")')" = 202 ] || fail "the attended transfer's REFER did not get 202: $r"
[ "$(jget "$r" '"SIP/2.0 200 OK" in r["notify"]')" = True ] || fail "no NOTIFY SIP/2.0 200 OK: $r"
[ "$(jget "$r" 'r["bye1"] and r["bye2"]')" = True ] || fail "the transferor did not get BYE for both calls: $r"
ok "REFER with Replaces: 202, NOTIFY $(jget "$r" 'r["notify"]'), BYE for both of 101's calls"
wait_for 3 calls_are "[('100', '102', 'talking')]" || fail "after the transfer palisade calls shows $(pal calls --json)"
ok "palisade calls: 100 -> 102 talking"
t_xfer=$(date +%s)
sleep 3
spawn "$d/c_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup.json" 2>&1 || fail "A's hangup: $(cat "$d/hangup.json")"
wait "$wpid" || fail "A hung up but C saw no CALL_CLOSED"
ok "A hung up; C saw the call close"
newest() { [ "$(jget "$(pal cdr --json)" '[(x["caller"], x["callee"], x["disposition"]) for x in r][:1]')" = "[('100', '102', 'answered')]" ]; }
wait_for 3 newest || fail "the newest call record is not 100 -> 102 answered: $(pal cdr --json)"
ok "call record: 100 -> 102 answered ($(jget "$(pal cdr --json)" '[x["reason"] for x in r]'))"

# ---- call pull: INVITE with Replaces
pull() { # OUT [--as NUMBER AUTH PASS]
  local out=$1 rc=0
  shift
  spawn "$out" timeout -k 2 30 python3 "$E2E_DIR/transferor.py" "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" - --pull --wait 10 "$@"
  local ppid=$BG_PID
  sleep 1
  if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial_pull.json" 2>&1; then
    show "$d/dial_pull.json"
    fail "A dialled 101 for the call pull: no CALL_ESTABLISHED"
  fi
  wait "$ppid" || rc=$?
  [ "$rc" = 0 ] || fail "the call-pull script failed (exit $rc): $(cat "$out")"
}
hang_up_a() {
  ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup_a.json" 2>&1 || fail "A's hangup: $(cat "$d/hangup_a.json")"
  wait_for 3 calls_are "[]" || fail "after A hung up palisade calls shows $(pal calls --json)"
}
pull "$d/steal.json" --as 102 "$(cred 102 2)" "$(cred 102 3)"
r=$(cat "$d/steal.json")
[ "$(jget "$r" 'r["pull"]')" = 403 ] || fail "102 replacing 101's dialog did not get 403: $r"
case $(jget "$r" 'r.get("pull_warning")') in *replaces_not_yours*) ;; *) fail "the 403's Warning: $r" ;; esac
[ "$(jget "$r" 'r["bye1"]')" = False ] || fail "101's phone got BYE although the replacement was refused: $r"
stolen_event() { [ "$(jget "$(pal events --kind policy_refusal --json --limit 10)" 'any(e.get("reason") == "replaces_not_yours" for e in r)')" = True ]; }
wait_for 3 stolen_event || fail "no replaces_not_yours policy event: $(pal events --kind policy_refusal --json --limit 5)"
calls_are "[('100', '101', 'talking')]" || fail "after the refused replacement palisade calls shows $(pal calls --json)"
ok "102 sent an INVITE with Replaces naming 101's call: 403 ($(jget "$r" 'r["pull_warning"]')), a policy event, 100 -> 101 goes on"
hang_up_a
pull "$d/pull.json"
r=$(cat "$d/pull.json")
[ "$(jget "$r" 'r["pull"]')" = 200 ] || fail "101's second phone replacing its call did not get 200: $r"
[ "$(jget "$r" 'r["pull_port"] == r["call1_port"]')" = True ] || fail "the second phone got another relay port than the first: $r"
[ "$(jget "$r" 'r["bye1"]')" = True ] || fail "101's first phone got no BYE after the call moved: $r"
wait_for 3 calls_are "[('100', '101', 'talking')]" || fail "after the call pull palisade calls shows $(pal calls --json)"
ok "101's second phone sent an INVITE with Replaces: 200 on relay port $(jget "$r" 'r["pull_port"]') (the first phone's), the first phone got BYE, 100 -> 101 talking"
hang_up_a

for p in a c; do ctrl "$HOST:$(eval echo "\$c$p")" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in a c; do
  pid=$(eval echo "\$pid_$p")
  wait_exit "$pid" 5 || true
  stop_pid "$pid" 2
done
# C's dumps: its call began with the transferor (silence) and was re-INVITEd onto A's relay; A's stream is one
# file whose later part is C: check each side heard the other at some point after the transfer.
heard() { # DIR WANT_HZ
  local f fr all=""
  for f in $(find "$1" -name '*dec.wav' | sort); do
    fr=$(freq "$f")
    all="$all $fr"
    if near "$fr" "$2"; then
      echo "$fr"
      return 0
    fi
  done
  echo "none of:$all"
  return 1
}
ha=$(heard "$d/a/snd" 660) || fail "A never heard C's 660 Hz after the transfer ($ha)"
hc=$(heard "$d/c/snd" 440) || fail "C never heard A's 440 Hz after the transfer ($hc)"
ok "audio both ways after the attended transfer (from $t_xfer): A heard $ha Hz (C's 660), C heard $hc Hz (A's 440)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
