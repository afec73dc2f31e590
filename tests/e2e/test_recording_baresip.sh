#!/usr/bin/env bash
# Call recording with real phones, over UDP: baresip A (100, 440 Hz) calls B (101, 880 Hz, auto-answer).
#   * `recording set 101 always`, `recording announce on`: A calls B for ~4 s; the relay plays "This call is
#     recorded." to both (on its own SSRC, seen in the capture); after the hang-up `recording list` shows the call
#     (100 -> 101, ~4 s) and the exported WAV holds both parties' tones (440 and 880 Hz, Goertzel);
#   * `recording set 101 off`, `recording set 100 on-demand`: A calls B, after 2 s A keys *1 (RFC 4733): only the
#     ~2 s after it are recorded;
#   * `recording delete` removes a recording and its file; bad input (unknown mode, unknown id) is refused clearly.
# Ports: SIP/ctrl from free_port in 26700-26719, baresip RTP 26720-26749, palisade relay 26750-26769.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26700 E2E_PORT_MAX=26719
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 tshark

RTP_LO=26750 RTP_HI=26769
CTRL=$E2E_DIR/baresip_ctrl.py
TONES=$E2E_DIR/rtp_tones.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

if out=$(pal recording set 101 sometimes 2>&1); then fail "an unknown mode was accepted: $out"; fi
case $out in *"use always, on-demand or off"*) ;; *) fail "unknown mode: unclear error: $out" ;; esac
if out=$(pal recording set 999 always 2>&1); then fail "an unknown extension was accepted: $out"; fi
case $out in *"extension 999 does not exist"*) ;; *) fail "unknown extension: unclear error: $out" ;; esac
pal recording set 101 always >/dev/null || fail "recording set 101 always"
pal recording announce on >/dev/null || fail "recording announce on"

base=$(free_port 7)
port=$base sa=$((base + 1)) sb=$((base + 4))
ca=$((sa + 2)) cb=$((sb + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
d=$E2E_TMP/phones
baresip_conf "$d/a" "$sa" "$ca" 26720 26734 440 \
  "<sip:100@$HOST:$port;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$d/b" "$sb" "$cb" 26735 26749 880 \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"
spawn "$d/tshark.log" timeout -k 2 45 tshark -i lo -F pcap -a duration:40 -w "$d/cap.pcap" \
  -f "udp and portrange 26720-26769"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
spawn "$d/b.log" timeout -k 2 40 baresip -f "$d/b" -t 35
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 40 baresip -f "$d/a" -t 35
apid=$BG_PID
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 101 b && break
  sleep 0.1
done
if ! registered 100 a || ! registered 101 b; then
  show "$d/a.log"
  fail "A and B did not register"
fi

recs() { pal recording list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
wait_recs() {
  local i
  for ((i = 0; i < 60; i++)); do
    [ "$(recs)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
call_b() { # call_b SECONDS [KEYS_AFTER_S KEYS]
  ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >/dev/null || fail "A dialled 101"
  if [ $# -gt 1 ]; then
    sleep "$2"
    ctrl "$HOST:$ca" --timeout 2 sndcode "$3" >/dev/null || fail "sndcode $3"
  fi
  sleep "$1"
  ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup"
}
# wav_tones FILE -> "seconds p440 p880"
wav_tones() {
  python3 - "$1" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1])
assert w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2
n = w.getnframes()
s = struct.unpack("<%dh" % n, w.readframes(n))
def g(f):
    c = 2 * math.cos(2 * math.pi * f / 8000); s1 = s2 = 0.0
    for x in s:
        s1, s2 = x + c * s1 - s2, s1
    return max(0.0, (s1 * s1 + s2 * s2 - c * s1 * s2) / (len(s) ** 2))
print("%.1f %d %d" % (n / 8000, g(440), g(880)))
PY
}

t0=$(date +%s.%N)
call_b 4
wait_recs 1 || fail "no recording listed after the call: $(pal recording list)"
id=$(pal recording list --json | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["id"]) if (r["caller"],r["callee"])==("100","101") else sys.exit(f"{r}")') ||
  fail "the recording's parties: $(pal recording list)"
pal recording export "$id" "$E2E_TMP/rec1.wav" >/dev/null || fail "recording export $id"
read -r secs p440 p880 < <(wav_tones "$E2E_TMP/rec1.wav")
awk -v s="$secs" 'BEGIN{exit !(s >= 3 && s <= 6)}' || fail "recording length ${secs} s (want ~4)"
if [ "$p440" -lt 100000 ] || [ "$p880" -lt 100000 ]; then
  fail "the recording lacks a party: 440 Hz $p440, 880 Hz $p880"
fi
ok "always: recording $id (100 -> 101, ${secs} s) holds A's 440 Hz ($p440) and B's 880 Hz ($p880)"

pal recording set 101 off >/dev/null
pal recording set 100 on-demand >/dev/null
sleep 1.2
call_b 2 2 "*1"
wait_recs 2 || fail "no second recording after *1: $(pal recording list)"
id2=$(pal recording list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
pal recording export "$id2" "$E2E_TMP/rec2.wav" >/dev/null || fail "recording export $id2"
read -r secs2 q440 q880 < <(wav_tones "$E2E_TMP/rec2.wav")
awk -v s="$secs2" 'BEGIN{exit !(s >= 1 && s <= 3.2)}' || fail "on-demand recording length ${secs2} s (want ~2: only after *1)"
if [ "$q440" -lt 100000 ] || [ "$q880" -lt 100000 ]; then
  fail "the on-demand recording lacks a party: $q440 $q880"
fi
ok "on demand: *1 after 2 s recorded only the last ${secs2} s, both parties"

stop_pid "$tpid" 3
ann=$(python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26720-26734 --after "$t0" --freqs 440,880)
case $ann in *0x72656300*) ;; *) fail "no announcement stream (SSRC 0x72656300) toward A: $ann" ;; esac
ok "announcement: the relay played the notice to A on its own stream ($ann)"

pal recording delete "$id" >/dev/null || fail "recording delete $id"
[ "$(recs)" = 1 ] || fail "recording $id still listed"
if out=$(pal recording export "$id" "$E2E_TMP/gone.wav" 2>&1); then fail "export of a deleted recording: $out"; fi
case $out in *"recording $id does not exist"*) ;; *) fail "export of a deleted recording: unclear error: $out" ;; esac
[ "$(find "$data/recordings" -name '*.wav' | wc -l)" = 1 ] || fail "the deleted recording's file is still there"
ok "recording delete removed the row and the file; export of it is refused clearly"

for p in $ca $cb; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in $apid $bpid; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
