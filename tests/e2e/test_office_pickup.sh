#!/usr/bin/env bash
# Call pickup with real phones, over UDP: headless baresip A (extension 100, 440 Hz), B (101, 880 Hz), C (102,
# 660 Hz) and D (103, 550 Hz, pickup group "sales"); nobody answers by itself.
#   * C dials *8 while nothing rings: refused (the call closes at once);
#   * A calls 101; B rings; C dials *8 and takes the call: A's and C's calls are established, B stops ringing,
#     `palisade calls` shows 100 -> 102 talking, after ~3 s A has received C's 660 Hz and C A's 440 Hz (audio both
#     ways); A hangs up and C sees the call close;
#   * A calls 101 again; D (another pickup group) dials **101: refused, with a policy_refusal event
#     pickup_not_allowed, and B keeps ringing; C dials **101 and takes the call; C hangs up, A sees it close.
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

pal pickup set 103 sales >/dev/null || fail "pickup set 103 sales"
out=$(pal pickup set 103 'no way' 2>&1) && fail "pickup set with a bad name was accepted: $out"
[ "$(jget "$(pal pickup list --json)" '[(p["extension"], p["group"]) for p in r]')" = \
  "[('100', 'office'), ('101', 'office'), ('102', 'office'), ('103', 'sales')]" ] || fail "pickup list: $(pal pickup list)"
out=$(pal features set pickup 8 2>&1) && fail "features set pickup 8 was accepted: $out"
[ "$(jget "$(pal features show --json)" '[(f["name"], f["code"]) for f in r][:2]')" = \
  "[('pickup', '*8'), ('directed_pickup', '**')]" ] || fail "features show: $(pal features show)"
ok "pickup groups: 103 in sales, the others office-wide; feature codes *8 and ** (a code without * or # refused)"

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
rings() { grep -ci "incoming call" "$d/$1.log" || true; }
closes() { grep -cE "terminated|session closed" "$d/$1.log" || true; }
more_rings() { [ "$(rings "$1")" -gt "$2" ]; }   # more_rings PHONE BEFORE
more_closes() { [ "$(closes "$1")" -gt "$2" ]; } # more_closes PHONE BEFORE
answered_pickups() {
  pal cdr --json | python3 -c 'import json,sys; print(sum(1 for x in json.load(sys.stdin) if (x["caller"], x["callee"], x["disposition"]) == ("100", "102", "answered")))'
}
wait_for() { # SECONDS COMMAND...: poll until the command succeeds
  local n=$(($1 * 10)) i
  shift
  for ((i = 0; i < n; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
talking() { [ "$(jget "$(pal calls --json)" '[(x["caller"], x["callee"], x["state"]) for x in r]')" = "[('$1', '$2', 'talking')]" ]; }

# ---- nothing rings: *8 is refused
ctrl "$HOST:$cc" --wait-event CALL_CLOSED --timeout 5 dial "sip:*8@$HOST:$port" >"$d/empty.json" 2>&1 ||
  fail "C's *8 with nothing ringing did not end: $(cat "$d/empty.json")"
grep -q "CALL_ESTABLISHED" "$d/empty.json" && fail "C's *8 with nothing ringing was answered"
ok "*8 with nothing ringing: refused ($(grep -o '"param":"[^"]*"' "$d/empty.json" | tail -1))"

# ---- A calls 101, C picks it up with *8
b0=$(rings b)
ctrl "$HOST:$ca" --timeout 3 dial "sip:101@$HOST:$port" >"$d/dial1.json" 2>&1 || fail "A dial 101: $(cat "$d/dial1.json")"
wait_for 5 more_rings b "$b0" || fail "B does not ring"
bc0=$(closes b)
if ! ctrl "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:*8@$HOST:$port" >"$d/pick1.json" 2>&1; then
  show "$d/pick1.json"
  show "$PAL_ERR" 20
  fail "C's *8: no CALL_ESTABLISHED"
fi
wait_for 5 grep -q "Call established" "$d/a.log" || fail "C picked up but A's call is not established: $(tail -5 "$d/a.log")"
wait_for 5 more_closes b "$bc0" || fail "C picked up but B still rings"
wait_for 3 talking 100 102 || fail "palisade calls does not show 100 -> 102 talking: $(pal calls --json)"
ok "C dialled *8: it has A's call (100 -> 102 talking), B stopped ringing"
sleep 3
spawn "$d/c_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup1.json" 2>&1 || fail "A's hangup: $(cat "$d/hangup1.json")"
wait "$wpid" || fail "A hung up but C saw no CALL_CLOSED"
ok "A hung up; C saw the call close"

# ---- directed pickup: D (sales) may not take 101's call; C may
b0=$(rings b)
ctrl "$HOST:$ca" --timeout 3 dial "sip:101@$HOST:$port" >"$d/dial2.json" 2>&1 || fail "A dial 101: $(cat "$d/dial2.json")"
wait_for 5 more_rings b "$b0" || fail "B does not ring (second call)"
ctrl "$HOST:$cd" --wait-event CALL_CLOSED --timeout 5 dial "sip:**101@$HOST:$port" >"$d/pick_d.json" 2>&1 ||
  fail "D's **101 did not end: $(cat "$d/pick_d.json")"
grep -q "CALL_ESTABLISHED" "$d/pick_d.json" && fail "D (sales) picked up 101's call"
refused_event() {
  ev=$(pal events --kind policy_refusal --json --limit 10)
  [ "$(jget "$ev" 'any(e.get("reason") == "pickup_not_allowed" for e in r)')" = True ]
}
wait_for 3 refused_event || fail "no pickup_not_allowed event: $ev"
ok "D (pickup group sales) dialled **101: refused, event $(jget "$ev" '[e["detail"] for e in r if e["reason"] == "pickup_not_allowed"][0]')"
bc0=$(closes b)
if ! ctrl "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:**101@$HOST:$port" >"$d/pick2.json" 2>&1; then
  show "$d/pick2.json"
  fail "C's **101: no CALL_ESTABLISHED"
fi
wait_for 5 more_closes b "$bc0" || fail "C picked up with **101 but B still rings"
wait_for 3 talking 100 102 || fail "after **101 palisade calls does not show 100 -> 102 talking: $(pal calls --json)"
ok "C dialled **101: it has A's call, B stopped ringing"
spawn "$d/a_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$ca" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$cc" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup2.json" 2>&1 || fail "C's hangup: $(cat "$d/hangup2.json")"
wait "$wpid" || fail "C hung up but A saw no CALL_CLOSED"
ok "C hung up; A saw the call close"
two_pickups() { [ "$(answered_pickups)" = 2 ]; }
wait_for 3 two_pickups || fail "not two answered 100 -> 102 call records: $(pal cdr --json)"
ok "call records: 100 -> 102 answered, twice"

for p in a b c d; do ctrl "$HOST:$(eval echo "\$c$p")" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in a b c d; do
  pid=$(eval echo "\$pid_$p")
  wait_exit "$pid" 5 || true
  stop_pid "$pid" 2
done
wa=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
wc_=$(find "$d/c/snd" -name '*dec.wav' | sort | head -1)
if [ -z "$wa" ] || [ -z "$wc_" ]; then fail "no received-audio dump (sndfile *dec.wav) at A or C"; fi
fa=$(freq "$wa")
fc=$(freq "$wc_")
if ! near "$fa" 660 || ! near "$fc" 440; then
  fail "received audio in the picked-up call: A got ${fa:-?} Hz (want 660, C's), C got ${fc:-?} Hz (want 440, A's)"
fi
ok "audio both ways in the picked-up call: A heard ${fa} Hz (C's 660), C heard ${fc} Hz (A's 440)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
