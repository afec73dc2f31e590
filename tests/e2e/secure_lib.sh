# shellcheck shell=bash
# Helpers for the TLS/SRTP tests (test_secure_*.sh), sourced after lib.sh:
#   . "$(dirname "$0")/secure_lib.sh"
#
# sec_baresip_conf DIR SIP_PORT CTRL_PORT RTP_LO RTP_HI TONE_HZ CAFILE ACCOUNT_LINE
#   headless loopback baresip (baresip_lib.sh's configuration plus the srtp module and sip_cafile): its "microphone" is a sine tone (ausine, 48 kHz only), its speaker nothing
#   (aubridge); sndfile dumps what it sends and receives into DIR/snd. baresip listens for SIP on
#   SIP_PORT (UDP/TCP) and SIP_PORT+1 (TLS); ctrl_tcp on CTRL_PORT (keep it off SIP_PORT+1).
# sec_ctrl ARGS...        baresip_ctrl.py, bounded
# sec_freq WAV            sox's rough frequency of a file
# sec_near HZ WANT        HZ within 10 % of WANT
# sec_rtp_leg PCAP SRC_LO SRC_HI DST_LO DST_HI OUT
#   the RTP (heuristic: any UDP that looks like RTP, SRTP included: its header is in clear) from
#   ports SRC_LO..SRC_HI to DST_LO..DST_HI in the capture; the payloads (decoded as the G.711 law of
#   their payload type, whatever they are) go to OUT.raw. Prints one line:
#     PACKETS PT PAYLOAD_BYTES_PER_PACKET ENTROPY_BITS_PER_BYTE ROUGH_FREQUENCY SRC_PORTS
#   (PAYLOAD_BYTES is the most common size, ENTROPY over all payload bytes; "0 - 0 0 none -" when
#   there is none). An SRTP packet carries the auth tag after the payload (10 bytes for _80, 4 for
#   _32), which tshark counts as payload.

# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/baresip_lib.sh"

sec_baresip_conf() {
  local dir=$1 sport=$2 cport=$3 rlo=$4 rhi=$5 hz=$6 ca=$7 acc=$8
  baresip_conf "$dir" "$sport" "$cport" "$rlo" "$rhi" "$hz" "$acc" "sip_cafile		$ca" "module			srtp.so"
}

sec_ctrl() { timeout -k 1 20 python3 "$E2E_DIR/baresip_ctrl.py" "$@"; }
sec_freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
sec_near() { [ -n "$1" ] && [ "$1" != none ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }

sec_rtp_leg() {
  local pcap=$1 slo=$2 shi=$3 dlo=$4 dhi=$5 out=$6 n pt size ent ports
  tshark -r "$pcap" -o rtp.heuristic_rtp:TRUE -T fields -e udp.srcport -e rtp.p_type -e rtp.payload \
    -Y "rtp && udp.srcport >= $slo && udp.srcport <= $shi && udp.dstport >= $dlo && udp.dstport <= $dhi" \
    2>/dev/null | python3 -c '
import collections, math, sys
out = open(sys.argv[1], "wb")
n, pts, sizes, ports, hist = 0, collections.Counter(), collections.Counter(), set(), collections.Counter()
for line in sys.stdin:
    f = line.split()
    if len(f) != 3 or f[1] not in ("0", "8"):
        continue
    b = bytes.fromhex(f[2].replace(":", ""))
    out.write(b)
    hist.update(b)
    n += 1
    pts[f[1]] += 1
    sizes[len(b)] += 1
    ports.add(f[0])
total = sum(hist.values())
ent = -sum(c / total * math.log2(c / total) for c in hist.values()) if total else 0
if n:
    print(n, pts.most_common(1)[0][0], sizes.most_common(1)[0][0], "%.2f" % ent, ",".join(sorted(ports)))
else:
    print(0, "-", 0, 0, "-")' "$out.raw" >"$out.meta"
  read -r n pt size ent ports <"$out.meta"
  local f=none
  if [ "$n" -gt 0 ]; then
    local enc=ul
    [ "$pt" = 8 ] && enc=al
    f=$(sox -t "$enc" -r 8000 -c 1 "$out.raw" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')
  fi
  echo "$n $pt $size $ent ${f:-none} $ports"
}
