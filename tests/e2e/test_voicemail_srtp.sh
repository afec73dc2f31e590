#!/usr/bin/env bash
# Voicemail over a secure leg: baresip A (100, TLS only, SRTP enforced, mediaenc=srtp-mand) dials 999. Palisade
# answers with RTP/SAVP and its own key; the prompt ("Please enter your voicemail PIN…") reaches A through the
# relay's SRTP: A's decoded audio is speech-loud (sox RMS), and on the loopback capture every packet from the relay to
# A carries 170 bytes (160 of G.711 + the 10-byte SRTP tag) of high-entropy payload, while no SIP travels in clear
# on the TLS port. Then A hangs up.
# Ports: SIP/ctrl 32400-32499, baresip RTP 32500-32519, relay 32600-32699.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=32400 E2E_PORT_MAX=32499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/secure_lib.sh
. "$(dirname "$0")/secure_lib.sh"
need baresip python3 sox tshark
[ -e /usr/lib/baresip/modules/srtp.so ] || fail "baresip's srtp module is missing (/usr/lib/baresip/modules/srtp.so)"

RTP_LO=32600 RTP_HI=32699 A_LO=32500 A_HI=32519
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
"$PALISADE_BIN" ext set 100 --require-tls true --srtp enforced --data "$data" >/dev/null ||
  fail "ext set 100 --require-tls true --srtp enforced"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

port=$(free_port 2)
tport=$((port + 1))
pal_start "$data" --listen "udp:$HOST:$port" --listen "tls:$HOST:$tport" --rtp-ports "$RTP_LO-$RTP_HI"
ca=$data/tls/cert.pem

d=$E2E_TMP/vm
mkdir -p "$d"
sa=$(free_port 3)
sec_baresip_conf "$d/a" "$sa" $((sa + 2)) "$A_LO" "$A_HI" 440 "$ca" \
  "<sip:100@$HOST:$tport;transport=tls>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600;mediaenc=srtp-mand"
spawn "$d/tshark.log" timeout -k 2 40 tshark -i lo -F pcap -a duration:30 -w "$d/cap.pcap" \
  -f "port $tport or portrange $A_LO-$A_HI or portrange $RTP_LO-$RTP_HI"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
spawn "$d/a.log" timeout -k 2 30 baresip -f "$d/a" -t 28
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" && break
  sleep 0.1
done
grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" || fail "A did not register over TLS"

sec_ctrl "$HOST:$((sa + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:999@$HOST:$tport;transport=tls" \
  >"$d/dial.out" 2>&1 || fail "A's call to 999 over TLS with SRTP was not answered: $(tail -3 "$d/dial.out")"
grep -q "srtp" "$d/a.log" || fail "A's log shows no SRTP for the voicemail call"
ok "999 answered over TLS with SRTP (A requires it)"
sleep 5
sec_ctrl "$HOST:$((sa + 2))" --wait-event CALL_CLOSED --timeout 10 hangup >/dev/null 2>&1 || fail "A could not hang up"
sec_ctrl "$HOST:$((sa + 2))" --timeout 2 quit >/dev/null 2>&1 || true
wait_exit "$apid" 5 || true
stop_pid "$apid" 2
sleep 0.5
stop_pid "$tpid" 3

dec=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
[ -n "$dec" ] || fail "baresip A recorded no received audio"
rms=$(sox "$dec" -n stat 2>&1 | awk '/RMS +amplitude/{print $3}')
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0.02 else 1)' "${rms:-0}" ||
  fail "A's received audio is (nearly) silent: RMS ${rms:-?} (the prompt did not get through SRTP)"
ok "A heard the prompt through SRTP (RMS amplitude $rms)"

# relay -> A: SRTP (payload + 10-byte tag = 170 bytes), high entropy
read -r n sizes ent < <(tshark -r "$d/cap.pcap" -T fields -e udp.payload \
  -Y "udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= $A_LO && udp.dstport <= $A_HI" 2>/dev/null |
  python3 -c '
import math, sys
sizes, counts, n = set(), [0] * 256, 0
for line in sys.stdin:
    b = bytes.fromhex(line.strip().replace(":", ""))
    if len(b) < 12 or b[0] >> 6 != 2 or (b[1] & 0x7f) in (72, 73):
        continue
    n += 1
    sizes.add(len(b) - 12)
    for x in b[12:]:
        counts[x] += 1
total = sum(counts) or 1
ent = -sum(c / total * math.log2(c / total) for c in counts if c)
print(n, ",".join(map(str, sorted(sizes))) or "-", "%.2f" % ent)')
[ "${n:-0}" -ge 100 ] || fail "only ${n:-0} RTP packets from the relay to A"
[ "$sizes" = 170 ] || fail "relay -> A payload sizes $sizes (want 170: G.711 + SRTP tag)"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 7.0 else 1)' "$ent" ||
  fail "relay -> A payload entropy $ent bits/byte: not encrypted"
clear=$(tshark -r "$d/cap.pcap" -Y "tcp.port == $tport && sip" 2>/dev/null | wc -l)
[ "$clear" = 0 ] || fail "$clear SIP messages readable on the TLS port"
ok "relay -> A: $n SRTP packets, 170-byte payload+tag, entropy $ent bits/byte; no clear SIP on TLS"
pal_stop
