#!/usr/bin/env bash
# Music on hold with real phones, over UDP: headless baresip A (extension 100, a 440 Hz sine as microphone) calls
# B (101, 880 Hz, auto-answer).
#   * talking: the relay sends A B's 880 Hz;
#   * B holds (re-INVITE a=sendonly; B keeps sending its tone): the relay sends A the default melody (C major
#     arpeggio 523/659/784/1047 Hz) on a new SSRC and not B's 880 Hz;
#   * B resumes (a=sendrecv): A hears 880 Hz again, no melody;
#   * `palisade moh set 101 FILE.wav` with a 44.1 kHz stereo 1500 Hz WAV (converted on upload); B holds again: A
#     hears 1500 Hz (B's own music file), not the melody; `moh show 101` names the file;
#   * bad input: `moh set` for an unknown extension and with a text file fail with a clear message.
# Checked on a loopback capture with tests/e2e/rtp_tones.py (block-by-block tone detection).
# Ports: SIP/ctrl from free_port in 26600-26609, baresip RTP 26610-26639, palisade relay 26640-26669.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26600 E2E_PORT_MAX=26609
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark

RTP_LO=26640 RTP_HI=26669
CTRL=$E2E_DIR/baresip_ctrl.py
TONES=$E2E_DIR/rtp_tones.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

base=$(free_port 7)
port=$base sa=$((base + 1)) sb=$((base + 4))
ca=$((sa + 2)) cb=$((sb + 2))

# Bad input first: clear errors, nothing changed.
if out=$(pal moh set 999 default 2>&1); then fail "moh set for an unknown extension succeeded: $out"; fi
case $out in *"extension 999 does not exist"*) ;; *) fail "moh set 999: unclear error: $out" ;; esac
echo "not audio" >"$E2E_TMP/junk.wav"
if out=$(pal moh set 101 "$E2E_TMP/junk.wav" 2>&1); then fail "moh set with a text file succeeded: $out"; fi
case $out in *"is not a WAV file Palisade can convert"*sox*) ;; *) fail "moh set junk: unclear error: $out" ;; esac
[ "$(pal moh show 101)" = "101 default" ] || fail "moh show 101 after refused changes: $(pal moh show 101)"
ok "moh set refuses an unknown extension and a non-WAV file with clear messages"

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
d=$E2E_TMP/phones
baresip_conf "$d/a" "$sa" "$ca" 26610 26624 440 \
  "<sip:100@$HOST:$port;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$d/b" "$sb" "$cb" 26625 26639 880 \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"

spawn "$d/tshark.log" timeout -k 2 50 tshark -i lo -F pcap -a duration:45 -w "$d/cap.pcap" \
  -f "udp and portrange 26610-26669"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
spawn "$d/b.log" timeout -k 2 45 baresip -f "$d/b" -t 40
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 45 baresip -f "$d/a" -t 40
apid=$BG_PID
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 101 b && break
  sleep 0.1
done
if ! registered 100 a || ! registered 101 b; then
  show "$d/a.log"
  show "$d/b.log"
  fail "baresip A (100) and B (101) did not both register"
fi

if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial.json" 2>&1; then
  show "$d/dial.json"
  show "$d/a.log" 30
  fail "A dialled 101: no CALL_ESTABLISHED within 10 s"
fi
now() { date +%s.%N; }
t_talk=$(now)
sleep 2
t_hold=$(now)
ctrl "$HOST:$cb" --timeout 5 hold >"$d/hold.json" 2>&1 || fail "B's hold refused: $(cat "$d/hold.json")"
sleep 3
t_resume=$(now)
ctrl "$HOST:$cb" --timeout 5 resume >"$d/resume.json" 2>&1 || fail "B's resume refused: $(cat "$d/resume.json")"
sleep 2
t_music=$(now)
# B's own music: a 44.1 kHz stereo WAV, converted on upload; the server picks it up within a second or two.
sox -n -r 44100 -c 2 -b 16 "$E2E_TMP/music.wav" synth 3 sine 1500 vol 0.3
pal moh set 101 "$E2E_TMP/music.wav" >"$d/moh.out" 2>&1 || fail "moh set 101 FILE: $(cat "$d/moh.out")"
case $(pal moh show 101) in "101 file 101/music-"*.wav) ;; *) fail "moh show 101: $(pal moh show 101)" ;; esac
[ -s "$(find "$data/music/101" -name 'music-*.wav' | head -1)" ] || fail "no converted file under DATA/music/101"
sleep 2.5
t_hold2=$(now)
ctrl "$HOST:$cb" --timeout 5 hold >"$d/hold2.json" 2>&1 || fail "B's second hold refused"
sleep 2.5
t_end=$(now)
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null 2>&1 || fail "A's hangup: no CALL_CLOSED"
for p in $ca $cb; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in $apid $bpid; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
sleep 0.5
stop_pid "$tpid" 3

FREQS=440,523.25,659.25,783.99,880,1046.5,1500
plus() { awk -v t="$1" -v d="$2" 'BEGIN{printf "%.3f", t + d}'; }
to_a() { python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26610-26624 --after "$1" --before "$2" --freqs "$FREQS"; }
count() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(sum(r["blocks"].get(k,0) for k in sys.argv[2].split(",")))' "$1" "$2"; }
total() { python3 -c 'import json,sys; print(sum(json.loads(sys.argv[1])["blocks"].values()))' "$1"; }
# mostly RESULT FREQS MIN: at least MIN blocks, 80 % of them one of FREQS
mostly() { [ "$(total "$1")" -ge "$3" ] && [ "$(count "$1" "$2")" -ge "$(($(total "$1") * 8 / 10))" ]; }

talk=$(to_a "$(plus "$t_talk" 0.5)" "$t_hold")
mostly "$talk" 880 10 ||
  fail "before the hold A did not hear B's 880 Hz: $talk"
ok "talking: A hears B's 880 Hz ($talk)"

held=$(to_a "$(plus "$t_hold" 0.8)" "$t_resume")
melody=$(count "$held" 523.25,659.25,783.99,1046.5)
[ "$(total "$held")" -ge 15 ] || fail "during the hold A received almost nothing: $held"
[ "$melody" -ge "$(($(total "$held") * 7 / 10))" ] || fail "during the hold A did not hear the melody: $held"
[ "$(count "$held" 880)" = 0 ] || fail "during the hold A still heard B's 880 Hz: $held"
for n in 523.25 659.25 783.99 1046.5; do
  [ "$(count "$held" "$n")" -ge 1 ] || fail "the melody's $n Hz note never reached A: $held"
done
ok "held: A hears the default melody, every note, none of B's 880 Hz ($held)"

resumed=$(to_a "$(plus "$t_resume" 0.8)" "$t_music")
mostly "$resumed" 880 8 ||
  fail "after resuming A did not hear B's 880 Hz again: $resumed"
[ "$(count "$resumed" 523.25,659.25,783.99,1046.5)" -le 1 ] || fail "the melody went on after resuming: $resumed"
ok "resumed: A hears 880 Hz again, the music stopped ($resumed)"

own=$(to_a "$(plus "$t_hold2" 0.8)" "$t_end")
mostly "$own" 1500 10 ||
  fail "on the second hold A did not hear 101's own music (1500 Hz): $own"
ok "101's own music file (44.1 kHz stereo, converted): A hears 1500 Hz on hold ($own)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
