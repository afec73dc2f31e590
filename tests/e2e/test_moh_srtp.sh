#!/usr/bin/env bash
# Music on hold on an SRTP leg: baresip A (100, TLS only, SRTP enforced, mediaenc=srtp-mand, 440 Hz) calls B (101,
# plain UDP, 880 Hz, auto-answer); A decodes B's 880 Hz through SRTP. B holds for 3 s, then resumes. While held, the
# relay sends A one stream, not B's: the music, as SRTP (12 + 160 + 10-byte tag, encrypted payload). That it is
# protected with A's own leg key, kept through the hold re-INVITE, is checked where it can be read back: the relay
# tests (media/src/relay/tests.rs, music to an SRTP leg) and the call tests (the hold offer keeps the key in use).
# (baresip 1.0's sndfile dump stops at a re-INVITE, so what A decodes after it cannot be read here.)
# Ports: SIP/ctrl from free_port in 26690-26699, baresip RTP 26700-26729, palisade relay 26730-26769.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26690 E2E_PORT_MAX=26699
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/secure_lib.sh
. "$(dirname "$0")/secure_lib.sh"
need baresip python3
[ -e /usr/lib/baresip/modules/srtp.so ] || fail "baresip's srtp module is missing (/usr/lib/baresip/modules/srtp.so)"

RTP_LO=26730 RTP_HI=26769
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
"$PALISADE_BIN" ext set 100 --require-tls true --srtp enforced --data "$data" >/dev/null ||
  fail "ext set 100 --require-tls true --srtp enforced"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

base=$(free_port 8)
port=$base tport=$((base + 1)) sa=$((base + 2)) sb=$((base + 5))
pal_start "$data" --listen "udp:$HOST:$port" --listen "tls:$HOST:$tport" --rtp-ports "$RTP_LO-$RTP_HI"
ca=$data/tls/cert.pem
d=$E2E_TMP/phones
sec_baresip_conf "$d/a" "$sa" $((sa + 2)) 26700 26714 440 "$ca" \
  "<sip:100@$HOST:$tport;transport=tls>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600;mediaenc=srtp-mand"
baresip_conf "$d/b" "$sb" $((sb + 2)) 26715 26729 880 \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"
spawn "$d/tshark.log" timeout -k 2 35 tshark -i lo -F pcap -a duration:30 -w "$d/cap.pcap" \
  -f "udp and portrange 26700-26769"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
spawn "$d/b.log" timeout -k 2 30 baresip -f "$d/b" -t 28
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 30 baresip -f "$d/a" -t 28
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" && grep -q "101@$HOST: {0/UDP/v4} 200 OK" "$d/b.log" && break
  sleep 0.1
done
grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" || fail "A did not register over TLS"

sec_ctrl "$HOST:$((sa + 2))" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$tport;transport=tls" \
  >"$d/dial.out" 2>&1 || fail "A's SRTP call to 101 was not answered: $(tail -3 "$d/dial.out")"
grep -q "srtp" "$d/a.log" || fail "A's log shows no SRTP"
sleep 2
t_talk=$(date +%s.%N)
sec_ctrl "$HOST:$((sb + 2))" --timeout 5 hold >/dev/null || fail "B's hold"
t_hold1=$(awk -v t="$(date +%s.%N)" 'BEGIN{printf "%.3f", t + 0.8}')
sleep 3
t_resume=$(date +%s.%N)
sec_ctrl "$HOST:$((sb + 2))" --timeout 5 resume >/dev/null || fail "B's resume"
sleep 2
sec_ctrl "$HOST:$((sa + 2))" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup"
for p in $((sa + 2)) $((sb + 2)); do sec_ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in $apid $bpid; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done

stop_pid "$tpid" 3
dec=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
[ -n "$dec" ] || fail "baresip A dumped no received audio"
f=$(sec_freq "$dec")
sec_near "$f" 880 || fail "before the hold A decoded ${f:-?} Hz through SRTP (want 880)"
# relay -> A while held: one new SSRC, every packet SRTP-sized (12 + 160 + the 10-byte tag), encrypted (entropy).
held=$(tshark -r "$d/cap.pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.ssrc -e udp.payload \
  -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= 26700 && udp.dstport <= 26714 && frame.time_epoch > $t_hold1 && frame.time_epoch < $t_resume" \
  2>/dev/null | python3 -c '
import collections, math, sys
ssrcs, sizes, hist, n = set(), collections.Counter(), collections.Counter(), 0
for line in sys.stdin:
    f = line.split()
    if len(f) != 2:
        continue
    b = bytes.fromhex(f[1].replace(":", ""))
    ssrcs.add(f[0]); sizes[len(b)] += 1; hist.update(b[12:172]); n += 1
t = sum(hist.values())
ent = -sum(c / t * math.log2(c / t) for c in hist.values()) if t else 0
print(n, ",".join(sorted(ssrcs)), sizes.most_common(1)[0][0] if sizes else 0, "%.2f" % ent)')
read -r n ssrcs size ent <<<"$held"
log "relay -> A while held: $n packets, SSRC $ssrcs, $size bytes, entropy $ent bits/byte"
[ "$n" -ge 60 ] || fail "while held the relay sent A only $n packets: $held"
case $ssrcs in *,*) fail "while held A got more than one stream (B's audio leaked?): $held" ;; esac
pre=$(tshark -r "$d/cap.pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.ssrc \
  -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && udp.dstport >= 26700 && udp.dstport <= 26714 && frame.time_epoch < $t_talk" \
  2>/dev/null | sort -u | head -1)
[ "$ssrcs" != "$pre" ] || fail "while held A still got B's stream: $held / $pre"
[ "$size" = 182 ] || fail "music packets to A are $size bytes, not SRTP (182 = 12 + 160 + 10-byte tag): $held"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 7.0 else 1)' "$ent" || fail "music to A is not encrypted (entropy $ent)"
ok "SRTP leg: A decoded B's 880 Hz; while held the relay sent A $n SRTP packets (182 bytes, entropy $ent) on the music's own SSRC"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
