#!/usr/bin/env bash
# Media and NAT (issue 12 item 8): the relay expects a phone's media from where the phone signals from.
#   Four callers, each a sipp UAC on its own loopback address, call 101 (a sipp UAS on 127.0.0.1 whose SDP names
#   its own address) at once; both sides play 3 s of G.711 (play_pcap_audio), and a loopback capture counts what
#   the relay sends where:
#   * the attacks: 127.0.0.15 offers c=127.0.0.1 (the server's address), 127.0.0.16 a third party (c=127.0.0.77)
#     — the relay must send those addresses nothing (before the fix it sent them the callee's
#     audio); each caller still gets the callee's audio at the address it really sends from (latched);
#   * the NATed phone: 127.0.0.14 writes c=10.1.2.3 (its "private" address, as a desk phone behind NAT does) —
#     two-way audio (before the fix: 0 packets either way);
#   * a phone whose SDP names its own address (127.0.0.17) keeps working as before.
# The scenarios are the load test's (call_uac_rtp.xml, call_uas_rtp.xml), adapted here: the caller's SDP address
# comes from the injection file (field4), and the callee plays audio instead of echoing.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox tshark

RTP_LO=40100 RTP_HI=40199
SCEN=$E2E_DIR/scenarios
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 101 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 101 101"
"$PALISADE_BIN" ext add-range 201 204 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
  fail "ext add-range 201 204"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

# The caller's SDP address from the injection file; the callee plays the same tone instead of echoing.
sed 's/c=IN IP\[media_ip_type\] \[media_ip\]/c=IN IP4 [field4]/' "$SCEN/call_uac_rtp.xml" >"$E2E_TMP/uac.xml"
python3 - "$SCEN/call_uas_rtp.xml" "$E2E_TMP/uas.xml" <<'EOF'
import sys
s = open(sys.argv[1]).read()
ack = '<recv request="ACK" crlf="true"/>'
assert ack in s
s = s.replace(ack, ack + '\n  <nop><action><exec play_pcap_audio="g711.pcap"/></action></nop>')
open(sys.argv[2], "w").write(s)
EOF
grep -q 'c=IN IP4 \[field4\]' "$E2E_TMP/uac.xml" || fail "could not adapt call_uac_rtp.xml"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 3 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# The callee: 101 registered from the UAS's port (sipp binds its SIP port and media ports mp..mp+3).
ublock=$(free_port 6)
uport=$ublock umedia=$((ublock + 2))
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$uport" --bind "$uport") || fail "register 101: $r"
case $r in *'"final": 200'*) ;; *) fail "register 101 -> $HOST:$uport: $r" ;; esac
spawn "$E2E_TMP/uas.out" bash -c "cd '$E2E_TMP' && exec timeout -k 2 40 sipp -sf uas.xml -i $HOST -p $uport \
  -mi $HOST -mp $umedia -m 4 -nostdin -timeout 35 -trace_err -error_file uas.err"
upid=$BG_PID

spawn "$E2E_TMP/tshark.log" timeout -k 2 40 tshark -i lo -s 96 -F pcap -a duration:30 -w "$E2E_TMP/cap.pcap" \
  -f "udp and (src portrange $RTP_LO-$RTP_HI or dst portrange $RTP_LO-$RTP_HI)"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$E2E_TMP/tshark.log" && break
  sleep 0.1
done
sleep 0.3
alive "$upid" || {
  show "$E2E_TMP/uas.out"
  fail "sipp UAS did not start"
}

# caller extension, its address, the address its SDP names
CALLERS=(
  "201 127.0.0.14 10.1.2.3"
  "202 127.0.0.15 127.0.0.1"
  "203 127.0.0.16 127.0.0.77"
  "204 127.0.0.17 127.0.0.17"
)
declare -A MEDIA
pids=()
for c in "${CALLERS[@]}"; do
  read -r ext ip sdp_ip <<<"$c"
  block=$(free_port 6)
  MEDIA[$ext]=$((block + 2))
  {
    echo SEQUENTIAL
    echo "$ext;$(cred "$ext" 2);$(cred "$ext" 3);101;$sdp_ip"
  } >"$E2E_TMP/calls.$ext.csv"
  (cd "$E2E_TMP" && exec timeout -k 2 30 sipp "$HOST:$port" -sf uac.xml -inf "calls.$ext.csv" \
    -i "$ip" -p "$block" -mi "$ip" -mp $((block + 2)) -m 1 -d 3500 -nostdin -timeout 25 -recv_timeout 10000 \
    -trace_err -error_file "uac.$ext.err" >"$E2E_TMP/uac.$ext.out" 2>&1 </dev/null) &
  pids+=($!)
  E2E_PIDS+=("$!")
done
for i in "${!pids[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  read -r ext _ <<<"${CALLERS[$i]}"
  if [ "$rc" != 0 ]; then
    show "$E2E_TMP/uac.$ext.out" 20
    show "$E2E_TMP/uac.$ext.err" 20
    show "$PAL_ERR" 20
    fail "sipp caller $ext: exit $rc"
  fi
done
ok "four calls made and ended"
sleep 0.5
stop_pid "$tpid" 3

# What the relay sent, by destination address:port.
tshark -r "$E2E_TMP/cap.pcap" -Y "udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI" -T fields -e ip.dst -e udp.dstport 2>/dev/null | sort | uniq -c >"$E2E_TMP/sent.txt"
sent_to() { awk -v a="$1" -v p="$2" '$2 == a && $3 == p { n += $1 } END { print n + 0 }' "$E2E_TMP/sent.txt"; }
sent_to_ip() { awk -v a="$1" '$2 == a { n += $1 } END { print n + 0 }' "$E2E_TMP/sent.txt"; }
log "relay -> destination: $(tr -s ' \n' ' ' <"$E2E_TMP/sent.txt")"

MIN=100 # 3 s of audio is 150 packets
# The attacks first: nothing to the server's address, nothing to the third party (each at the port the caller
# named: its own media port).
n=$(sent_to "$HOST" "${MEDIA[202]}")
[ "$n" = 0 ] || fail "the relay sent $n packets to the server's address $HOST:${MEDIA[202]} (named in 202's SDP)"
n=$(sent_to_ip 127.0.0.77)
[ "$n" = 0 ] || fail "the relay sent $n packets to the third party 127.0.0.77 (named in 203's SDP)"
n=$(sent_to_ip 10.1.2.3)
[ "$n" = 0 ] || fail "the relay sent $n packets to the private address 10.1.2.3"
ok "nothing sent to the server's address, to the third party 127.0.0.77 nor to the private 10.1.2.3"

# Every caller got the callee's audio where it really sends from; the callee got every caller's.
for c in "${CALLERS[@]}"; do
  read -r ext ip sdp_ip <<<"$c"
  n=$(sent_to "$ip" "${MEDIA[$ext]}")
  [ "$n" -ge "$MIN" ] || {
    show "$PAL_ERR" 20
    fail "caller $ext ($ip, SDP c=$sdp_ip) got $n packets of the callee's audio (want >= $MIN)"
  }
  ok "caller $ext on $ip with c=$sdp_ip in its SDP got $n packets at $ip:${MEDIA[$ext]}"
done
n=$(sent_to "$HOST" "$umedia")
[ "$n" -ge $((4 * MIN)) ] || fail "the callee got $n packets from the 4 callers (want >= $((4 * MIN)))"
ok "the callee got $n packets from the 4 callers"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
