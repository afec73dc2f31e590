#!/usr/bin/env bash
# A call queue with real phones, over UDP: headless baresip A (extension 100, 440 Hz) and B (101, 880 Hz) call
# queue 700, whose only agent D (201, 300 Hz, auto-answer) is busy talking to C (102, 660 Hz, auto-answer).
#   * the CLI refuses an unknown strategy and a music file that is not there; `queue show --json` lists the agent;
#   * D calls C; A then B call 700: both are answered by the queue's music (on the loopback capture the relay
#     sends A the default melody: a dominant frequency between 500 and 1200 Hz); `queue stats` shows 2 waiting;
#   * D hangs up with C: A (the first in line) is connected to D (100 -> 201 talking) while B still waits
#     (101 -> 700); the relay then sends A D's 300 Hz; D hangs up: B is connected (101 -> 201); B hangs up;
#   * `queue stats 700 --json`: 0 waiting, 2 answered, 0 abandoned, average wait > 0;
#   * D dials *46: logged out (`queue show`), *45: logged in again;
#   * C calls queue 701 (max wait 5 s, its agent 103 never registered): after ~5 s the call ends (fallback
#     hangup) and the stats count one timeout.
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
{
  "$PALISADE_BIN" ext add-range 100 103 --data "$data" 2>/dev/null
  "$PALISADE_BIN" ext add-range 201 201 --data "$data" 2>/dev/null
} | grep -E '^[0-9]+,' >"$csv" || fail "ext add-range"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
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

out=$(pal queue add 702 --agents 201 --strategy fewest-calls 2>&1) && fail "an unknown strategy was accepted: $out"
out=$(pal queue add 702 --agents 201 --music /nonexistent.wav 2>&1) && fail "a missing music file was accepted: $out"
pal queue add 700 --agents 201 --max-wait 60 >/dev/null || fail "queue add 700"
pal queue add 701 --agents 103 --max-wait 5 --fallback hangup >/dev/null || fail "queue add 701"
[ "$(jget "$(pal queue show 700 --json)" '[(a["agent"], a["logged_in"]) for a in r["agents"]]')" = "[('201', True)]" ] ||
  fail "queue show 700: $(pal queue show 700)"
ok "queue CLI: bad strategy and missing music refused; 700 (agent 201) and 701 (max wait 5 s) added"

base=$(free_port 13)
port=$base sa=$((base + 1)) sb=$((base + 4)) sc=$((base + 7)) sd=$((base + 10))
ca=$((sa + 2)) cb=$((sb + 2)) cc=$((sc + 2)) cd=$((sd + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

d=$E2E_TMP/phones
mkdir -p "$d"
acct() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600$2"; }
baresip_conf "$d/a" "$sa" "$ca" 26500 26509 440 "$(acct 100 "")"
baresip_conf "$d/b" "$sb" "$cb" 26510 26519 880 "$(acct 101 "")"
baresip_conf "$d/c" "$sc" "$cc" 26520 26529 660 "$(acct 102 ";answermode=auto")"
baresip_conf "$d/d" "$sd" "$cd" 26530 26539 300 "$(acct 201 ";answermode=auto")"
spawn "$d/tshark.log" timeout -k 2 80 tshark -i lo -F pcap -a duration:70 -w "$d/cap.pcap" \
  -f "udp and (portrange 26500-26539 or portrange $RTP_LO-$RTP_HI)"
tpid=$BG_PID
wait_for 5 grep -q 'Capturing on' "$d/tshark.log" || fail "tshark did not start"
for p in a b c d; do
  spawn "$d/$p.log" timeout -k 2 70 baresip -f "$d/$p" -t 65
  eval "pid_$p=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
all_registered() { registered 100 a && registered 101 b && registered 102 c && registered 201 d; }
wait_for 10 all_registered || fail "baresip A, B, C and D did not all register: $(tail -3 "$d"/*.log)"
ok "100, 101, 102 and 201 registered"

established() { # CTRL_PORT NUMBER
  ctrl "$HOST:$1" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:$2@$HOST:$port" >"$d/dial.$1.$2.json" 2>&1 ||
    fail "dialling $2 from ctrl port $1: no CALL_ESTABLISHED: $(cat "$d/dial.$1.$2.json")"
}
established "$cd" 102
wait_for 3 calls_are "[('201', '102', 'talking')]" || fail "D -> C: $(pal calls --json)"
ok "the agent D (201) is busy talking to C (102)"
established "$ca" 700
t_a=$(date +%s.%N)
sleep 0.5
established "$cb" 700
wait_for 3 calls_are "[('100', '700', 'talking'), ('101', '700', 'talking'), ('201', '102', 'talking')]" ||
  fail "A and B are not both answered by queue 700: $(pal calls --json)"
waiting() { [ "$(jget "$(pal queue stats 700 --json)" 'r[0]["waiting"]')" = "$1" ]; }
wait_for 3 waiting 2 || fail "queue stats does not show 2 waiting: $(pal queue stats 700 --json)"
ok "A then B called 700: both answered by the queue's music, queue stats: 2 waiting"
sleep 3
t_free=$(date +%s.%N)

# ---- the agent becomes free: A (first in line) is connected, B waits on
ctrl "$HOST:$cd" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/d_hangup1.json" 2>&1 || fail "D's hangup with C"
wait_for 10 calls_are "[('100', '201', 'talking'), ('101', '700', 'talking')]" ||
  fail "after the agent was free A is not connected to it (or B is not still waiting): $(pal calls --json)"
t_conn=$(date +%s.%N)
ok "D hung up with C: A (first in line) is connected to D (100 -> 201), B waits on (101 -> 700)"
sleep 3
t_d=$(date +%s.%N)
ctrl "$HOST:$cd" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/d_hangup2.json" 2>&1 || fail "D's hangup with A"
wait_for 10 calls_are "[('101', '201', 'talking')]" || fail "after D hung up with A, B is not connected: $(pal calls --json)"
ok "D hung up with A: B is connected to D (101 -> 201)"
sleep 1
ctrl "$HOST:$cb" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/b_hangup.json" 2>&1 || fail "B's hangup"
wait_for 3 calls_are "[]" || fail "calls left: $(pal calls --json)"
stats_ok() {
  s=$(pal queue stats 700 --json)
  [ "$(jget "$s" '(r[0]["waiting"], r[0]["answered"], r[0]["abandoned"], r[0]["average_wait_secs"] > 0)')" = "(0, 2, 0, True)" ]
}
wait_for 3 stats_ok || fail "queue stats 700: $s"
ok "queue stats 700: $(jget "$s" 'r[0]')"

# ---- agent login/logout by feature code
ctrl "$HOST:$cd" --wait-event CALL_CLOSED --timeout 5 dial "sip:*46@$HOST:$port" >"$d/logout.json" 2>&1 || fail "D's *46"
logged() { [ "$(jget "$(pal queue show 700 --json)" 'r["agents"][0]["logged_in"]')" = "$1" ]; }
wait_for 3 logged False || fail "after *46 the agent is not logged out: $(pal queue show 700 --json)"
ctrl "$HOST:$cd" --wait-event CALL_CLOSED --timeout 5 dial "sip:*45@$HOST:$port" >"$d/login.json" 2>&1 || fail "D's *45"
wait_for 3 logged True || fail "after *45 the agent is not logged in: $(pal queue show 700 --json)"
ok "D dialled *46 ($(grep -o '"param":"[^"]*"' "$d/logout.json" | tail -1)) and *45: logged out and in again"

# ---- nobody waits past max-wait
t0=$(date +%s)
established "$cc" 701
ctrl "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10 >"$d/c_timeout.json" 2>&1 || fail "C's call to 701 did not end after max-wait"
t1=$(date +%s)
[ $((t1 - t0)) -ge 4 ] || fail "C's wait in 701 ended after $((t1 - t0)) s, before max-wait (5 s)"
timed_out() { [ "$(jget "$(pal queue stats 701 --json)" 'r[0]["timeout"]')" = 1 ]; }
wait_for 3 timed_out || fail "queue stats 701: $(pal queue stats 701 --json)"
ok "C waited in 701 (max wait 5 s): the call ended after $((t1 - t0)) s, stats count 1 timeout"

for p in a b c d; do ctrl "$HOST:$(eval echo "\$c$p")" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in a b c d; do
  pid=$(eval echo "\$pid_$p")
  wait_exit "$pid" 5 || true
  stop_pid "$pid" 2
done
sleep 0.5
stop_pid "$tpid" 3

# RTP from the relay to A's ports between two epoch times, decoded: "PACKETS FREQUENCY"
rtp_to_a() { # FROM TO OUT
  tshark -r "$d/cap.pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.p_type -e rtp.payload \
    -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= 26500 && udp.dstport <= 26509 && frame.time_epoch > $1 && frame.time_epoch < $2" \
    2>/dev/null | python3 -c '
import sys
pt, n, out = None, 0, open(sys.argv[1], "wb")
for line in sys.stdin:
    f = line.split()
    if len(f) != 2 or f[0] not in ("0", "8"):
        continue
    pt = f[0]
    out.write(bytes.fromhex(f[1].replace(":", "")))
    n += 1
print(n, "ul" if pt == "0" else "al")' "$3.raw" >"$3.meta"
  local n enc
  read -r n enc <"$3.meta"
  if [ "$n" -gt 0 ]; then
    echo "$n $(sox -t "$enc" -r 8000 -c 1 "$3.raw" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')"
  else
    echo "0 none"
  fi
}
m=$(rtp_to_a "$(echo "$t_a + 1" | bc)" "$t_free" "$d/music")
mn=${m% *} mf=${m#* }
if [ "$mn" -lt 100 ] || [ "$mf" = none ] || [ "$mf" -lt 480 ] || [ "$mf" -gt 1250 ]; then
  fail "while waiting A got $mn RTP packets with dominant frequency $mf Hz (want >= 100 packets of the melody, 480-1250 Hz)"
fi
ok "while waiting the relay sent A $mn RTP packets of music (dominant $mf Hz)"
v=$(rtp_to_a "$(echo "$t_conn + 0.5" | bc)" "$t_d" "$d/agent")
vn=${v% *} vf=${v#* }
if [ "$vn" -lt 50 ] || [ "$vf" = none ] || [ "$vf" -lt 270 ] || [ "$vf" -gt 330 ]; then
  # Which streams reached A (SSRC, relay port, packets, first and last time): says where extra audio came from.
  tshark -r "$d/cap.pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.ssrc -e udp.srcport -e frame.time_epoch \
    -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= 26500 && udp.dstport <= 26509" \
    2>/dev/null | awk '{k=$1" "$2; n[k]++; if (!(k in f)) f[k]=$3; l[k]=$3} END {for (k in n) print k, n[k], f[k], l[k]}' >&2 || true
  log "window: connected at $t_conn, D hung up at $t_d"
  fail "once connected A got $vn RTP packets at $vf Hz (want >= 50 at D's 300 Hz)"
fi
ok "once connected the relay sent A $vn packets of D's voice ($vf Hz)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
