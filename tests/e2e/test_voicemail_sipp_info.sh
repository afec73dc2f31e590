#!/usr/bin/env bash
# Voicemail with sipp, keys by SIP INFO:
#   * sipp (100) calls 101, which is not registered: Palisade answers with 101's mailbox at once; sipp plays a
#     1 kHz tone (G.711 RTP) for the call's 11 s and hangs up; one new message (>= 1 s) is listed and its WAV
#     holds 1 kHz;
#   * sipp as 101 calls 999 and sends its PIN as SIP INFO (two digits application/dtmf-relay, two
#     application/dtmf, then '#'): the dialogue logs in and plays the message, which is then listed as heard;
#   * the same with a wrong PIN (digits of 0000) leaves the message new and records voicemail_pin_wrong;
#   * with --mwi-unsolicited on, 101's registered phone (a UDP listener) gets a NOTIFY "Voice-Message: 0/1" when
#     the message is heard, without having subscribed.
# Ports: signalling 32200-32299, relay 32300-32399.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=32200 E2E_PORT_MAX=32299
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox

RTP_LO=32300 RTP_HI=32399
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password,4=PIN)
pin=$(cred 101 4)

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 12 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

# run_uac NAME SCENARIO HOLD_MS INJECTION_LINE: one sipp UAC call, exit status checked
run_uac() {
  local name=$1 scen=$2 hold=$3 line=$4 block rc=0
  printf 'SEQUENTIAL\n%s\n' "$line" >"$E2E_TMP/$name.csv"
  block=$(free_port 6) # SIP port, one spare, then the four media ports sipp binds from -mp
  (cd "$E2E_TMP" && timeout -k 2 60 sipp -sf "$SCEN/$scen" -inf "$E2E_TMP/$name.csv" -i "$HOST" -p "$block" \
    -mi "$HOST" -mp $((block + 2)) -m 1 -d "$hold" -nostdin -timeout 50 -timeout_error \
    -trace_err -error_file "$E2E_TMP/$name.err" "$HOST:$port" >"$E2E_TMP/$name.out" 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "sipp $name exited $rc: $(tail -3 "$E2E_TMP/$name.err" 2>/dev/null)"
}
vm_json() { pal voicemail list 101 --json; }

run_uac deposit call_uac_rtp.xml 11000 "100;$(cred 100 2);$(cred 100 3);101"
for ((i = 0; i < 30; i++)); do
  [ "$(vm_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] && break
  sleep 0.1
done
vm_json | python3 -c '
import json, sys
m = json.load(sys.stdin)
if len(m) != 1 or not m[0]["new"] or m[0]["caller"] != "100" or m[0]["duration_secs"] < 1:
    sys.exit(f"messages: {m}")' || fail "no new message from 100 after the unanswered call"
id=$(vm_json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
pal voicemail export 101 "$id" "$E2E_TMP/msg.wav" >/dev/null || fail "voicemail export"
f=$(sox "$E2E_TMP/msg.wav" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')
if [ -z "$f" ] || [ "$f" -le 900 ] || [ "$f" -ge 1100 ]; then fail "message frequency $f Hz, expected ~1000"; fi
ok "unregistered 101: sipp's 1 kHz tone left as a message ($f Hz)"

digits() { echo "$1" | sed 's/./&;/g; s/;$//'; }
run_uac wrong vm_uac_info.xml 2000 "101;$(cred 101 2);$(cred 101 3);999;$(digits 0000)"
sleep 1
vm_json | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if m and m[0]["new"] else f"{m}")' ||
  fail "a wrong PIN by INFO opened the mailbox"
pal events --json --limit 100 | grep -q voicemail_pin_wrong || fail "no voicemail_pin_wrong event for the INFO PIN"
ok "wrong PIN by SIP INFO: refused, security event, message still new"

# Unsolicited message-waiting: 101 wants lamps without subscribing; its "phone" is a UDP listener that registered
# from its own port (Palisade sends to the address a REGISTER came from).
pal ext set 101 --mwi-unsolicited on >/dev/null || fail "ext set --mwi-unsolicited"
lport=$(free_port)
r=$(timeout -k 2 10 python3 "$E2E_DIR/call_client.py" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$lport" --bind "$lport") || fail "register 101: $r"
cat >"$E2E_TMP/phone.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
out = open(sys.argv[3], "a")
end = time.time() + 35
while time.time() < end:
    try:
        data, peer = s.recvfrom(65536)
    except socket.timeout:
        continue
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    if lines[0].startswith("NOTIFY "):
        out.write(body.replace("\r\n", " ").strip() + "\n")
        out.flush()
    keep = [l for l in lines[1:] if l.split(":")[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
    if not lines[0].startswith("SIP/2.0"):
        s.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)
PY
spawn "$E2E_TMP/phone.log" timeout -k 2 40 python3 "$E2E_TMP/phone.py" "$HOST" "$lport" "$E2E_TMP/notifies.txt"
sleep 1.5 # the registration and the setting reach the server (written behind / polled every 0.5 s)

run_uac right vm_uac_info.xml 4000 "101;$(cred 101 2);$(cred 101 3);999;$(digits "$pin")"
for ((i = 0; i < 30; i++)); do
  vm_json | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if m and not m[0]["new"] else 1)' && break
  sleep 0.1
done
vm_json | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if m and not m[0]["new"] else f"{m}")' ||
  fail "the PIN by SIP INFO did not log in (message still new)"
ok "PIN by SIP INFO (dtmf-relay and dtmf bodies): logged in, message played and marked heard"
for ((i = 0; i < 30; i++)); do
  grep -q 'Voice-Message: 0/1' "$E2E_TMP/notifies.txt" 2>/dev/null && break
  sleep 0.1
done
grep -q 'Messages-Waiting: no.*Voice-Message: 0/1' "$E2E_TMP/notifies.txt" 2>/dev/null ||
  fail "no unsolicited NOTIFY (0/1) reached 101's registered phone: $(cat "$E2E_TMP/notifies.txt" 2>/dev/null)"
ok "unsolicited message-waiting NOTIFY reached 101's registered phone"
pal_stop
