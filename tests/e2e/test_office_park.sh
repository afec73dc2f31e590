#!/usr/bin/env bash
# Call park with real phones, over UDP: headless baresip A (extension 100, 440 Hz), B (101, 880 Hz, auto-answer)
# and C (102, 660 Hz); park time 10 s (`palisade features set park_seconds 10`).
#   * A calls B; B transfers the call to 800 (baresip's blind transfer): B's call closes, A waits on slot 801
#     (`palisade calls`: 100 -> 801 parked);
#   * C dials 805 (empty): refused; C dials 801: it has A's call (100 -> 102 talking), after ~3 s A has received
#     C's 660 Hz and C A's 440 Hz; A hangs up;
#   * A calls B again; B parks it again (slot 801 is free again): A hears music on hold (the melody's notes in a
#     capture); nobody retrieves it: after the 10 s park time B's
#     phone rings again, answers, and B has A back (100 -> 101 talking); B hangs up.
# Ports: SIP/ctrl 26400-26499, baresip RTP 26500-26539, palisade relay 26540-26599.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26400 E2E_PORT_MAX=26499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark

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
calls_are() { [ "$(jget "$(pal calls --json)" '[(x["caller"], x["callee"], x["state"]) for x in r]')" = "$1" ]; }

out=$(pal features set park_seconds 5 2>&1) && fail "park_seconds 5 was accepted: $out"
out=$(pal features set park_slots 809-801 2>&1) && fail "park_slots 809-801 was accepted: $out"
pal features set park_seconds 10 >/dev/null || fail "features set park_seconds 10"
ok "park settings: 5 s and 809-801 refused; park time 10 s"

base=$(free_port 10)
port=$base sa=$((base + 1)) sb=$((base + 4)) sc=$((base + 7))
ca=$((sa + 2)) cb=$((sb + 2)) cc=$((sc + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

d=$E2E_TMP/phones
acct() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600$2"; }
baresip_conf "$d/a" "$sa" "$ca" 26500 26509 440 "$(acct 100 "")"
baresip_conf "$d/b" "$sb" "$cb" 26510 26519 880 "$(acct 101 ";answermode=auto")"
baresip_conf "$d/c" "$sc" "$cc" 26520 26529 660 "$(acct 102 "")"
for p in a b c; do
  spawn "$d/$p.log" timeout -k 2 70 baresip -f "$d/$p" -t 65
  eval "pid_$p=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
all_registered() { registered 100 a && registered 101 b && registered 102 c; }
wait_for 10 all_registered || fail "baresip A, B and C did not all register: $(tail -3 "$d"/*.log)"
ok "100, 101 and 102 registered"

park_by_b() { # A calls B, B transfers to 800
  if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial.json" 2>&1; then
    show "$d/dial.json"
    fail "A dialled 101: no CALL_ESTABLISHED"
  fi
  sleep 1
  if ! ctrl "$HOST:$cb" --wait-event CALL_CLOSED --timeout 10 transfer "sip:800@$HOST:$port" >"$d/park.json" 2>&1; then
    show "$d/park.json"
    show "$PAL_ERR" 20
    fail "B's transfer to 800: B's call did not close"
  fi
  wait_for 3 calls_are "[('100', '801', 'parked')]" || fail "after parking palisade calls shows $(pal calls --json)"
}

# ---- park, then retrieve from another phone
park_by_b
ok "B transferred A to 800: B's call closed, palisade calls: 100 -> 801 parked"
ctrl "$HOST:$cc" --wait-event CALL_CLOSED --timeout 5 dial "sip:805@$HOST:$port" >"$d/empty.json" 2>&1 ||
  fail "C dialled the empty slot 805 and the call did not end: $(cat "$d/empty.json")"
grep -q CALL_ESTABLISHED "$d/empty.json" && fail "the empty slot 805 answered"
ok "C dialled 805 (empty): refused ($(grep -o '"param":"[^"]*"' "$d/empty.json" | tail -1))"
if ! ctrl "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:801@$HOST:$port" >"$d/retrieve.json" 2>&1; then
  show "$d/retrieve.json"
  show "$PAL_ERR" 20
  fail "C dialled 801: no CALL_ESTABLISHED"
fi
wait_for 3 calls_are "[('100', '102', 'talking')]" || fail "after the retrieval palisade calls shows $(pal calls --json)"
ok "C dialled 801: it has A's call (100 -> 102 talking)"
sleep 3
spawn "$d/c_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup1.json" 2>&1 || fail "A's hangup: $(cat "$d/hangup1.json")"
wait "$wpid" || fail "A hung up but C saw no CALL_CLOSED"
wait_for 3 calls_are "[]" || fail "after the hangup palisade calls shows $(pal calls --json)"
ok "A hung up; C saw the call close"

# ---- park again; nobody retrieves it: A hears music on hold meanwhile; it rings the parker after 10 s
b_est=$(grep -c "Call established" "$d/b.log" || true)
spawn "$d/tshark.log" timeout -k 2 30 tshark -i lo -F pcap -a duration:25 -w "$d/park.pcap" \
  -f "udp and portrange 26500-26509"
tpid=$BG_PID
wait_for 5 grep -q 'Capturing on' "$d/tshark.log" || fail "tshark did not start"
park_by_b
t0=$(date +%s)
ok "B parked A again on 801"
b_back() { [ "$(grep -c "Call established" "$d/b.log" || true)" -gt "$b_est" ] && calls_are "[('100', '101', 'talking')]"; }
wait_for 15 b_back || fail "the parked call did not come back to B: $(pal calls --json)"
t1=$(date +%s)
[ $((t1 - t0)) -ge 9 ] || fail "the parked call came back after $((t1 - t0)) s, before the 10 s park time"
ok "after $((t1 - t0)) s on 801 the call rang B again; B answered: 100 -> 101 talking"
stop_pid "$tpid" 3
# While parked (1 s after the park until 7 s later) the relay sends A the default melody (C major notes), not
# silence and not B's 880 Hz.
moh=$(python3 "$E2E_DIR/rtp_tones.py" "$d/park.pcap" --src "$RTP_LO-$RTP_HI" --dst 26500-26509 --after $((t0 + 1)) \
  --before $((t0 + 7)) --freqs 523,659,784,880,1047,1175)
melody=$(python3 -c 'import json,sys; b=json.loads(sys.argv[1])["blocks"]; print(sum(b.get(f, 0) for f in ("523","659","784","1047","1175")))' "$moh")
[ "$melody" -ge 20 ] || fail "while parked A did not hear music on hold: $moh"
ok "while parked A heard music on hold ($melody blocks of the melody's notes)"
spawn "$d/a_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$ca" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$cb" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup2.json" 2>&1 || fail "B's hangup: $(cat "$d/hangup2.json")"
wait "$wpid" || fail "B hung up but A saw no CALL_CLOSED"
ok "B hung up; A saw the call close"

for p in a b c; do ctrl "$HOST:$(eval echo "\$c$p")" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in a b c; do
  pid=$(eval echo "\$pid_$p")
  wait_exit "$pid" 5 || true
  stop_pid "$pid" 2
done
wc_=$(find "$d/c/snd" -name '*dec.wav' | sort | head -1)
[ -n "$wc_" ] || fail "no received-audio dump (sndfile *dec.wav) at C"
fc=$(freq "$wc_")
near "$fc" 440 || fail "C (the retriever) received ${fc:-?} Hz, want A's 440"
ok "C (the retriever) heard A's audio: ${fc} Hz"
# A's dumps: the first call's stream is B's 880 Hz until the park; the file of the retrieved part has C's 660 Hz
fa_all=""
found=""
for f in $(find "$d/a/snd" -name '*dec.wav' | sort); do
  fa=$(freq "$f")
  fa_all="$fa_all $fa"
  near "$fa" 660 && found=$fa
done
[ -n "$found" ] || fail "A never heard C's 660 Hz after the retrieval (A's dumps:$fa_all)"
ok "A heard C after the retrieval: $found Hz (A's dumps:$fa_all)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
