#!/usr/bin/env bash
# Ring groups with real phones, over UDP: headless baresip A (extension 100, a 440 Hz sine as microphone,
# internal-only), B (101, 880 Hz), C (102, 660 Hz) and D (103, 550 Hz); B, C and D do not answer by themselves.
#   * the CLI: `group add` refuses a member listed twice, an extension's number and an emergency number, each
#     with a message saying why; `group list --json` shows the groups added;
#   * A dials group 600 (members 101,102,103, strategy all): B, C and D all ring at once; C (the second member)
#     answers; B and D stop ringing (CANCEL); `palisade calls` shows 100 -> 102 talking; after ~4 s A has
#     received C's 660 Hz and C A's 440 Hz (sndfile dumps): audio both ways; A hangs up, C sees the call close;
#     the call record is 100 -> 102 answered;
#   * toll fraud: A dials group 601 (members 101 and 00441234567, 5 s ring, fallback hangup): the external
#     member is refused by A's policy (a policy_refusal event internal_only naming the member), B still rings,
#     and after the ring time A's call ends (the fallback is hangup).
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
"$PALISADE_BIN" ext add-range 100 103 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 103"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }

# ---- the CLI
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal ext set 100 --internal-only true >/dev/null || fail "ext set 100 --internal-only"
refused() { # WANT_IN_MESSAGE ARGS...
  local want=$1 out rc=0
  shift
  out=$(pal group add "$@" 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "group add $* was accepted: $out"
  case $out in *"$want"*) ;; *) fail "group add $*: the error does not say '$want': $out" ;; esac
  ok "group add $*: refused ($out)"
}
refused "twice" 602 --members 101,101
refused "already exists as an extension" 101 --members 102,103
refused "emergency number" 112 --members 101
refused "ring strategy" 602 --members 101 --strategy random
pal group add 600 --members 101,102,103 --strategy all --ring-seconds 20 --fallback hangup >/dev/null ||
  fail "group add 600"
pal group add 601 --members 101,00441234567 --ring-seconds 5 >/dev/null || fail "group add 601"
groups=$(pal group list --json)
[ "$(jget "$groups" '[(g["number"], ",".join(g["members"]), g["strategy"]) for g in r]')" = \
  "[('600', '101,102,103', 'all'), ('601', '101,00441234567', 'all')]" ] || fail "group list --json: $groups"
ok "group list --json: 600 (101,102,103, all) and 601"

base=$(free_port 13)
port=$base sa=$((base + 1)) sb=$((base + 4)) sc=$((base + 7)) sd=$((base + 10))
ca=$((sa + 2)) cb=$((sb + 2)) cc=$((sc + 2)) cd=$((sd + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

d=$E2E_TMP/phones
acct() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600"; }
baresip_conf "$d/a" "$sa" "$ca" 26500 26509 440 "$(acct 100)"
baresip_conf "$d/b" "$sb" "$cb" 26510 26519 880 "$(acct 101)"
baresip_conf "$d/c" "$sc" "$cc" 26520 26529 660 "$(acct 102)"
baresip_conf "$d/d" "$sd" "$cd" 26530 26539 550 "$(acct 103)"
for p in a b c d; do
  spawn "$d/$p.log" timeout -k 2 60 baresip -f "$d/$p" -t 55
  eval "pid_$p=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 101 b && registered 102 c && registered 103 d && break
  sleep 0.1
done
if ! { registered 100 a && registered 101 b && registered 102 c && registered 103 d; }; then
  fail "baresip A, B, C and D did not all register: $(tail -3 "$d"/*.log)"
fi
ok "100, 101, 102 and 103 registered"

incoming() { grep -qi "incoming call" "$d/$1.log"; }
closed() { grep -qE "terminated|session closed" "$d/$1.log"; }

# ---- A calls group 600: B, C and D ring, C answers
ctrl "$HOST:$ca" --timeout 3 dial "sip:600@$HOST:$port" >"$d/dial600.json" 2>&1 || fail "A dial 600: $(cat "$d/dial600.json")"
for ((i = 0; i < 50; i++)); do
  incoming b && incoming c && incoming d && break
  sleep 0.1
done
if ! { incoming b && incoming c && incoming d; }; then
  fail "group 600 did not ring B, C and D at once: $(grep -ci 'incoming call' "$d"/[bcd].log)"
fi
ok "A dialled 600: B (101), C (102) and D (103) all ring"
if ! ctrl "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 10 accept >"$d/accept.json" 2>&1; then
  show "$d/accept.json"
  show "$d/c.log" 20
  show "$PAL_ERR" 20
  fail "C's accept: no CALL_ESTABLISHED"
fi
for ((i = 0; i < 50; i++)); do
  closed b && closed d && grep -q "Call established" "$d/a.log" && break
  sleep 0.1
done
grep -q "Call established" "$d/a.log" || fail "C answered but A's call is not established: $(tail -5 "$d/a.log")"
if ! { closed b && closed d; }; then fail "C answered but B or D still ring: $(tail -3 "$d/b.log" "$d/d.log")"; fi
ok "C (the second member) answered: A's call is established, B and D stopped ringing"
for ((i = 0; i < 30; i++)); do
  c=$(pal calls --json)
  [ "$(jget "$c" '[(x["caller"], x["callee"], x["state"]) for x in r]')" = "[('100', '102', 'talking')]" ] && break
  sleep 0.1
done
[ "$(jget "$c" '[(x["caller"], x["callee"], x["state"]) for x in r]')" = "[('100', '102', 'talking')]" ] ||
  fail "palisade calls does not show 100 -> 102 talking: $c"
ok "palisade calls: 100 -> 102 talking"
sleep 4
spawn "$d/c_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup.json" 2>&1 || fail "A's hangup: $(cat "$d/hangup.json")"
wait "$wpid" || fail "A hung up but C saw no CALL_CLOSED"
ok "A hung up; C saw the call close"
for ((i = 0; i < 30; i++)); do
  cdr=$(pal cdr --json)
  [ "$(jget "$cdr" '[(x["caller"], x["callee"], x["disposition"]) for x in r][:1]')" = "[('100', '102', 'answered')]" ] && break
  sleep 0.1
done
[ "$(jget "$cdr" '[(x["caller"], x["callee"], x["disposition"]) for x in r][:1]')" = "[('100', '102', 'answered')]" ] ||
  fail "the newest call record is not 100 -> 102 answered: $cdr"
ok "call record: 100 -> 102 answered"

# ---- toll fraud: A (internal-only) calls group 601, whose second member is abroad
ctrl "$HOST:$cb" --timeout 2 hangup >/dev/null 2>&1 || true
b_rings=$(grep -ci "incoming call" "$d/b.log")
t0=$(date +%s)
# one ctrl connection per phone at a time: the dial itself waits for the call's end
spawn "$d/dial601.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$ca" --wait-event CALL_CLOSED --timeout 12 dial "sip:601@$HOST:$port"
wpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  [ "$(grep -ci "incoming call" "$d/b.log")" -gt "$b_rings" ] && break
  sleep 0.1
done
[ "$(grep -ci "incoming call" "$d/b.log")" -gt "$b_rings" ] || fail "group 601 did not ring B"
refused_member() { jget "$ev" 'any(e.get("reason") == "internal_only" and "ring group 601 member: 00441234567" in (e.get("detail") or "") for e in r)'; }
for ((i = 0; i < 30; i++)); do # events are written behind, within a second
  ev=$(pal events --kind policy_refusal --json --limit 10)
  [ "$(refused_member)" = True ] && break
  sleep 0.1
done
[ "$(refused_member)" = True ] ||
  fail "no internal_only policy_refusal event for member 00441234567: $ev"
ok "A dialled 601: B rings; member 00441234567 refused by A's policy ($(jget "$ev" '[e["detail"] for e in r if e.get("reason") == "internal_only"][0]'))"
wait "$wpid" || fail "A's call to 601 did not end after the group's 5 s ring time"
t1=$(date +%s)
[ $((t1 - t0)) -ge 4 ] || fail "A's call to 601 ended after $((t1 - t0)) s, before the 5 s ring time"
ok "nobody answered 601: A's call ended after $((t1 - t0)) s (fallback: hangup)"

for p in a b c d; do ctrl "$HOST:$(eval echo "\$c$p")" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in a b c d; do
  pid=$(eval echo "\$pid_$p")
  wait_exit "$pid" 5 || true
  stop_pid "$pid" 2
done

# sndfile writes the WAV header when the stream stops: read the dumps now
wa=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
wc_=$(find "$d/c/snd" -name '*dec.wav' | sort | head -1)
if [ -z "$wa" ] || [ -z "$wc_" ]; then fail "no received-audio dump (sndfile *dec.wav) at A or C"; fi
fa=$(freq "$wa")
fc=$(freq "$wc_")
if ! near "$fa" 660 || ! near "$fc" 440; then
  fail "received audio: A got ${fa:-?} Hz (want 660, C's), C got ${fc:-?} Hz (want 440, A's)"
fi
ok "audio both ways through the group call: A heard ${fa} Hz (C's 660), C heard ${fc} Hz (A's 440)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
