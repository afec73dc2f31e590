#!/usr/bin/env bash
# Voicemail end to end with real softphones (headless baresip):
#   * A (100, an 880 Hz sine as microphone) calls B (101), which rings without answering; after
#     voicemail_ring_seconds (3 s) Palisade answers with B's mailbox: greeting, beep, recording. A hangs
#     up after ~13 s; `palisade voicemail list 101` shows one new message from 100 and the exported WAV
#     holds the 880 Hz tone (Goertzel check);
#   * B's message-waiting subscription (sipp, scenarios/mwi_subscriber.xml, authenticated as 101) gets a
#     NOTIFY with "Messages-Waiting: yes" after the message arrives (checked in the capture and by sipp);
#   * B dials 999, sends its PIN by RFC 4733 DTMF (baresip sndcode), and the audio it receives holds
#     the message's 880 Hz tone; the message is then old, and a NOTIFY with "Messages-Waiting: no" and
#     "Voice-Message: 0/1" reaches B;
#   * B (PIN-protected) dials 777 and sends its PIN by DTMF: the unlock dialogue lifts the protection (server
#     log) and hangs up;
#   * B dials 999 again and sends a wrong PIN three times: Palisade ends the call, `palisade events`
#     holds voicemail_pin_wrong and voicemail_locked_out, and the message is still there;
#   * `palisade voicemail delete` removes it (file too) and the lamp NOTIFY says 0/0; the subscriber then
#     unsubscribes and sipp exits 0 (every NOTIFY body it got was the expected one, in order);
#   * B records its own greeting by phone (999, PIN, 9, tone, #): `ext show` says so, the file exists, and A's next
#     unanswered call to B hears it (B's 440 Hz) instead of the default greeting.
# Ports: SIP/ctrl 29400-29499, baresip RTP 29500-29539, palisade relay 29600-29699.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29400 E2E_PORT_MAX=29499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark sipp

RTP_LO=29600 RTP_HI=29699
CTRL=$E2E_DIR/baresip_ctrl.py
data=$E2E_TMP/data
mkdir -p "$data"
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password,4=PIN)
pin=$(cred 101 4)
[[ $pin =~ ^[0-9]{4}$ ]] || fail "ext add-range printed no 4-digit voicemail PIN for 101: '$pin'"
"$PALISADE_BIN" ext set 101 --pin-protect true --data "$data" >/dev/null || fail "ext set 101 --pin-protect"
cat >"$data/palisade.toml" <<'TOML'
[calls]
voicemail_ring_seconds = 3
TOML

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"


ctrl() { timeout -k 1 30 python3 "$CTRL" "$@"; }
# tone_in WAV HZ: the strongest half second of the file is HZ (Goertzel against speech-band tones).
tone_in() {
  python3 - "$1" "$2" <<'PY'
import math, sys, wave
path, hz = sys.argv[1], float(sys.argv[2])
w = wave.open(path)
rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
raw = w.readframes(n)
if width != 2:
    sys.exit(f"{path}: {width * 8}-bit samples, expected 16")
import struct
s = struct.unpack("<%dh" % (len(raw) // 2), raw)[::ch]
def power(x, f):
    k = 2 * math.cos(2 * math.pi * f / rate); a = b = 0.0
    for v in x:
        a, b = v + k * a - b, a
    return (a * a + b * b - k * a * b) / max(1, len(x)) ** 2
win = rate // 2
best = 0.0
for i in range(0, len(s) - win, win // 2):
    x = s[i:i + win]
    p = power(x, hz)
    others = max(power(x, f) for f in (300, 440, 500, 700, 880, 1000, 1200) if abs(f - hz) > 60)
    if p > 20 * others:
        best = max(best, p)
if best <= 0:
    sys.exit(f"{path}: no half second dominated by {hz:.0f} Hz ({len(s) / rate:.1f} s of audio)")
print(f"{path}: {hz:.0f} Hz found ({len(s) / rate:.1f} s of audio)")
PY
}
vm_list() { "$PALISADE_BIN" voicemail list 101 --json --data "$data"; }

d=$E2E_TMP/bs
mkdir -p "$d"
sa=$(free_port 3)
for ((i = 0; i < 20; i++)); do
  sb=$(free_port 3)
  [ "$sb" -gt $((sa + 2)) ] || [ $((sb + 2)) -lt "$sa" ] && break
done
baresip_conf "$d/a" "$sa" $((sa + 2)) 29500 29519 880 \
  "<sip:100@$HOST:$port;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$d/b" "$sb" $((sb + 2)) 29520 29539 440 \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);regint=600"

spawn "$d/tshark.log" timeout -k 2 150 tshark -i lo -F pcap -a duration:140 -w "$d/cap.pcap" -f "udp port $port"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
mw=$(free_port)
spawn "$d/mwi.log" timeout -k 2 140 sipp -sf "$E2E_DIR/scenarios/mwi_subscriber.xml" -i "$HOST" -p "$mw" \
  -m 1 -s 101 -au "$(cred 101 2)" -ap "$(cred 101 3)" -timeout 130 -timeout_error -nostdin \
  -trace_err -error_file "$d/mwi.err" "$HOST:$port"
mpid=$BG_PID
spawn "$d/b.log" timeout -k 2 140 baresip -f "$d/b" -t 135
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 140 baresip -f "$d/a" -t 135
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  [ "$(grep -c '200 OK' "$d/a.log" "$d/b.log" | awk -F: '{s += ($2 > 0)} END {print s}')" = 2 ] && break
  sleep 0.1
done
ctrl "$HOST:$((sa + 2))" --timeout 1 reginfo >/dev/null || true

# 1. A calls B, nobody answers: voicemail takes the call and records A's tone.
ctrl "$HOST:$((sa + 2))" --wait-event CALL_ESTABLISHED --timeout 15 dial "sip:101@$HOST:$port" >"$d/dial1.out" ||
  fail "A's call to 101 was not answered by voicemail: $(tail -5 "$d/dial1.out")"
ok "unanswered call to 101 went to voicemail"
sleep 13
ctrl "$HOST:$((sa + 2))" --wait-event CALL_CLOSED --timeout 10 hangup >/dev/null || fail "A could not hang up"
for ((i = 0; i < 50; i++)); do
  [ "$(vm_list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] && break
  sleep 0.1
done
vm_list | python3 -c '
import json, sys
m = json.load(sys.stdin)
if len(m) != 1: sys.exit(f"expected 1 message, got {m}")
m = m[0]
if m["caller"] != "100" or not m["new"] or not 2 <= m["duration_secs"] <= 14:
    sys.exit(f"message: {m}")
print("message", m["id"], "from", m["caller"], m["duration_secs"], "s")' || fail "voicemail list 101"
id=$(vm_list | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$PALISADE_BIN" voicemail export 101 "$id" "$d/msg.wav" --data "$data" >/dev/null || fail "voicemail export"
"$PALISADE_BIN" voicemail export 101 "$id" "$d/msg.wav" --data "$data" >/dev/null 2>&1 &&
  fail "voicemail export overwrote an existing file"
[ "$(soxi -r "$d/msg.wav") $(soxi -b "$d/msg.wav") $(soxi -c "$d/msg.wav")" = "8000 16 1" ] ||
  fail "stored message is not 8 kHz 16-bit mono: $(soxi "$d/msg.wav")"
tone_in "$d/msg.wav" 880 || fail "the stored message does not hold the caller's 880 Hz tone"
ok "message stored as 8 kHz 16-bit WAV with the caller's 880 Hz tone"

# 2. B's subscription got a NOTIFY saying a message waits.
# notifies: one line per NOTIFY in the capture: destination port, then its body on one line.
notifies() {
  tshark -r "$d/cap.pcap" -Y 'sip.Method == "NOTIFY"' -T fields -e udp.dstport -e udp.payload 2>/dev/null |
    python3 -c '
import sys
for line in sys.stdin:
    port, _, payload = line.strip().partition("\t")
    text = bytes.fromhex(payload.replace(":", "")).decode(errors="replace")
    print(port, text.partition("\r\n\r\n")[2].replace("\r\n", " ").strip())'
}
sleep 1
notifies | grep "^$mw" | grep -q 'Messages-Waiting: yes' ||
  fail "no message-waiting NOTIFY (yes) reached the subscriber: $(notifies | head -5)"
ok "MWI NOTIFY (Messages-Waiting: yes) reached the subscriber"

# 3. B listens: 999, PIN by DTMF, hears the message.
rm -f "$d/b/snd/"*.wav
ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:999@$HOST:$port" >/dev/null ||
  fail "B's call to 999 was not answered"
sleep 1
ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode "$pin#" >/dev/null || fail "sndcode"
sleep 12
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 10 hangup >/dev/null || true
sleep 0.5
dec=$(find "$d/b/snd" -name '*dec*.wav' -newer "$d/msg.wav" | head -1)
[ -n "$dec" ] || fail "baresip B recorded no received audio"
tone_in "$dec" 880 || fail "B did not hear the message's 880 Hz tone after the PIN"
ok "owner logged in with the PIN by RFC 4733 DTMF and heard the message"
vm_list | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if len(m)==1 and not m[0]["new"] else f"after listening: {m}")' ||
  fail "message not marked as heard"
sleep 1
notifies | grep "^$mw" | grep 'Messages-Waiting: no' | grep -q 'Voice-Message: 0/1' ||
  fail "no NOTIFY (Messages-Waiting: no, 0/1) after the message was heard: $(notifies | tail -3)"
ok "MWI NOTIFY (no, 0/1) after listening"

# 3b. PIN-protected 101 unlocks external calls by prompt: 777, then the PIN by DTMF; Palisade says so and hangs up.
ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:777@$HOST:$port" >/dev/null ||
  fail "B's call to 777 was not answered by the unlock dialogue"
sleep 1
ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode "$pin#" >/dev/null || fail "sndcode (unlock PIN)"
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 15 >/dev/null ||
  fail "the unlock dialogue did not hang up after the PIN"
grep -q 'PIN protection lifted extension=101' "$PAL_ERR" || fail "777 + PIN by DTMF did not lift 101's PIN protection"
ok "777 then the PIN by DTMF lifted 101's PIN protection; the dialogue hung up"

# 4. Three wrong PINs end the call and leave security events; the message survives.
ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:999@$HOST:$port" >/dev/null ||
  fail "second call to 999 not answered"
sleep 1
for try in 1 2 3; do
  ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode "0000#" >/dev/null || fail "sndcode (wrong PIN $try)"
  sleep 4
done
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 10 >"$d/closed.out" ||
  fail "Palisade did not end the call after three wrong PINs"
ok "three wrong PINs: Palisade hung up"
"$PALISADE_BIN" events --json --data "$data" | python3 -c '
import json, sys
ev = json.load(sys.stdin)
reasons = [e.get("reason") for e in ev]
if reasons.count("voicemail_pin_wrong") < 2 or "voicemail_locked_out" not in reasons:
    sys.exit(f"events: {reasons[:20]}")' || fail "no voicemail PIN security events"
[ "$(vm_list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] || fail "message lost after wrong PINs"
ok "security events recorded; message kept"

# 5. Delete by CLI: row and file gone, lamp updated.
"$PALISADE_BIN" voicemail delete 101 "$id" --data "$data" >/dev/null || fail "voicemail delete"
[ "$(vm_list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] || fail "message still listed"
[ -z "$(find "$data/voicemail" -name '*.wav')" ] || fail "message file left: $(find "$data/voicemail" -name '*.wav')"
"$PALISADE_BIN" voicemail delete 101 "$id" --data "$data" >/dev/null 2>&1 && fail "deleting twice succeeded"
sleep 2
notifies | grep "^$mw" | grep -q 'Voice-Message: 0/0' || fail "no NOTIFY 0/0 after the delete: $(notifies | tail -2)"
ok "delete by CLI removes row and file and clears the lamp"
# 6. B records its own greeting (999, PIN, 9, its 440 Hz source after the tone, #); A's next unanswered call hears
#    that greeting instead of the default one.
ctrl "$HOST:$((sb + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:999@$HOST:$port" >/dev/null ||
  fail "B's call to 999 (greeting) was not answered"
sleep 1
ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode "$pin#" >/dev/null || fail "sndcode (PIN for the greeting)"
sleep 2
ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode 9 >/dev/null || fail "sndcode 9"
sleep 7
ctrl "$HOST:$((sb + 2))" --timeout 2 sndcode "#" >/dev/null || fail "sndcode # (end of greeting)"
sleep 1.5
ctrl "$HOST:$((sb + 2))" --wait-event CALL_CLOSED --timeout 10 hangup >/dev/null || true
"$PALISADE_BIN" ext show 101 --data "$data" | grep -q 'recorded greeting' || fail "ext show 101 does not say the greeting is recorded"
ls "$data/voicemail/101/"greeting-*.wav >/dev/null 2>&1 || fail "no greeting file in $data/voicemail/101"
rm -f "$d/a/snd/"*.wav
ctrl "$HOST:$((sa + 2))" --wait-event CALL_ESTABLISHED --timeout 15 dial "sip:101@$HOST:$port" >/dev/null ||
  fail "A's second call to 101 was not answered by voicemail"
sleep 4
ctrl "$HOST:$((sa + 2))" --wait-event CALL_CLOSED --timeout 10 hangup >/dev/null || fail "A could not hang up (greeting)"
sleep 0.5
adec=$(find "$d/a/snd" -name '*dec*.wav' | head -1)
[ -n "$adec" ] || fail "baresip A recorded no received audio for the greeting call"
tone_in "$adec" 440 || fail "A did not hear B's recorded greeting (B's 440 Hz)"
ok "B recorded its greeting by phone (9 … #); the next caller heard it (440 Hz)"

rc=0
wait "$mpid" || rc=$?
[ "$rc" = 0 ] || fail "sipp MWI subscriber exited $rc: $(tail -5 "$d/mwi.log"; tail -5 "$d/mwi.err" 2>/dev/null)"
ok "sipp subscriber got every expected NOTIFY in order and unsubscribed"
for p in "$apid" "$bpid" "$tpid"; do kill "$p" 2>/dev/null || true; done
pal_stop
