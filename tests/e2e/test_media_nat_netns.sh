#!/usr/bin/env bash
# A real phone behind a real NAT (issue 12 item 8), as offices and home workers have it:
#
#   [pnat-ph: baresip A, 10.1.2.10] --10.1.2.0/24-- [pnat-rtr: nftables masquerade] --203.0.113.0/24-- [pnat-srv:
#                                                                                     palisade 203.0.113.1]
#                                                   [pnat-pub: baresip B, 198.51.100.5] --198.51.100.0/24--'
#
# Four network namespaces: the phone's LAN, a router that masquerades the LAN behind its WAN address 203.0.113.2,
# the server's network (Palisade), and a second phone, B, with a public address reaching the server directly. A writes its private address
# (10.1.2.10) into SIP and SDP, exactly like a desk phone without STUN; Palisade sees it as 203.0.113.2.
#   * A (100) registers through the NAT: `palisade registrations` shows the NAT's address;
#   * A calls B (101, auto-answer): each side hears the other's tone (sndfile dumps: 880 Hz at A, 440 Hz at B;
#     before the fix A heard nothing and B nothing: A's packets came from 203.0.113.2, not 10.1.2.10);
#   * A's INVITE on the wire names c=10.1.2.10 and the relay never sends to 10.1.2.10;
#   * A holds and resumes: after the resume the relay's RTP reaches both phones again with the right tone;
#   * A hangs up; then B calls A (the NATed phone is the callee): audio both ways again.
# Needs root and `ip netns` (CI runs as root); skipped (77) where network namespaces cannot be made.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark ip nft

[ "$(id -u)" = 0 ] || skip "network namespaces need root"
SRV=pnat-srv-$$ RTR=pnat-rtr-$$ PH=pnat-ph-$$ PUB=pnat-pub-$$
netns_down() {
  local ns
  for ns in "$PH" "$PUB" "$RTR" "$SRV"; do ip netns del "$ns" 2>/dev/null || true; done
}
# lib.sh's cleanup (stop what was started, remove the scratch directory), then the namespaces.
trap 'rc=$?; set +e; (exit "$rc"); e2e_cleanup; netns_down; exit "$rc"' EXIT
ip netns add "$SRV" 2>/dev/null || skip "cannot create a network namespace (ip netns add)"
ip netns add "$RTR" || fail "ip netns add $RTR"
ip netns add "$PH" || fail "ip netns add $PH"
ip netns add "$PUB" || fail "ip netns add $PUB"
in_ns() { # NS command...: run in a namespace
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}
SRV_IP=203.0.113.1 PUB_GW=198.51.100.1 B_IP=198.51.100.5 WAN_IP=203.0.113.2 LAN_GW=10.1.2.1 A_IP=10.1.2.10
# Every step must work; a failure names the command.
net() { "$@" || fail "network setup failed: $*"; }
for ns in "$SRV" "$RTR" "$PH" "$PUB"; do net ip -n "$ns" link set lo up; done
net ip -n "$SRV" link add srv0 type veth peer name wan0 netns "$RTR"
net ip -n "$RTR" link add lan0 type veth peer name eth0 netns "$PH"
net ip -n "$SRV" addr add "$SRV_IP/24" dev srv0
net ip -n "$SRV" link set srv0 up
net ip -n "$SRV" link add srv1 type veth peer name eth0 netns "$PUB"
net ip -n "$SRV" addr add "$PUB_GW/24" dev srv1
net ip -n "$SRV" link set srv1 up
net ip -n "$PUB" addr add "$B_IP/24" dev eth0
net ip -n "$PUB" link set eth0 up
net ip -n "$PUB" route add default via "$PUB_GW"
net ip -n "$RTR" addr add "$WAN_IP/24" dev wan0
net ip -n "$RTR" addr add "$LAN_GW/24" dev lan0
net ip -n "$RTR" link set wan0 up
net ip -n "$RTR" link set lan0 up
net ip -n "$PH" addr add "$A_IP/24" dev eth0
net ip -n "$PH" link set eth0 up
net ip -n "$PH" route add default via "$LAN_GW"
net in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1
# nftables in the router namespace (a kernel without nf_tables NAT cannot run this test).
in_ns "$RTR" nft -f - <<EOF || skip "nftables masquerade is not available in a network namespace here (nft -f failed)"
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
}
EOF
# The server does not know the LAN at all: the phone reaches it only through the NAT.
if in_ns "$SRV" ip route get "$A_IP" >/dev/null 2>&1; then fail "the server's namespace has a route to the private $A_IP"; fi
ok "namespaces $PH (LAN $A_IP) -> $RTR (masquerade as $WAN_IP) -> $SRV ($SRV_IP) <- $PUB ($B_IP)"

RTP_LO=40200 RTP_HI=40299
CTRL=$E2E_DIR/baresip_ctrl.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

# Palisade in the server's namespace (its own ports: nothing else lives there). pal_start runs PALISADE_BIN.
real_bin=$PALISADE_BIN
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$SRV" "$real_bin" >"$E2E_TMP/palisade-in-ns"
chmod +x "$E2E_TMP/palisade-in-ns"
PALISADE_BIN=$E2E_TMP/palisade-in-ns
SIP_PORT=5060
pal_start "$data" --listen "udp:$SRV_IP:$SIP_PORT" --rtp-ports "$RTP_LO-$RTP_HI"
PALISADE_BIN=$real_bin

ctrl() { # NS PORT args...
  local ns=$1 port=$2
  shift 2
  in_ns "$ns" timeout -k 1 20 python3 "$CTRL" "127.0.0.1:$port" "$@"
}
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }

# The phones: A (440 Hz) behind the NAT, B (880 Hz, auto-answer) beside the server.
export BARESIP_CTRL_HOST=127.0.0.1
HOST=$A_IP baresip_conf "$E2E_TMP/a" 5060 5062 30000 30019 440 \
  "<sip:100@$SRV_IP:$SIP_PORT;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);answermode=auto;regint=600"
HOST=$B_IP baresip_conf "$E2E_TMP/b" 5070 5072 30100 30119 880 \
  "<sip:101@$SRV_IP:$SIP_PORT;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"

# Everything the server's namespace sees, on every interface (self-terminating).
spawn "$E2E_TMP/tshark.log" in_ns "$SRV" timeout -k 2 80 tshark -i any -F pcap -a duration:75 -w "$E2E_TMP/cap.pcap" \
  -f "udp"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$E2E_TMP/tshark.log" && break
  sleep 0.1
done
spawn "$E2E_TMP/b.log" in_ns "$PUB" timeout -k 2 70 baresip -f "$E2E_TMP/b" -t 65
bpid=$BG_PID
spawn "$E2E_TMP/a.log" in_ns "$PH" timeout -k 2 70 baresip -f "$E2E_TMP/a" -t 65
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  grep -q "100@$SRV_IP: {0/UDP/v4} 200 OK" "$E2E_TMP/a.log" && grep -q "101@$SRV_IP: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log" && break
  sleep 0.1
done
if ! grep -q "100@$SRV_IP: {0/UDP/v4} 200 OK" "$E2E_TMP/a.log" || ! grep -q "101@$SRV_IP: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log"; then
  show "$E2E_TMP/a.log"
  show "$E2E_TMP/b.log"
  show "$PAL_ERR"
  fail "baresip A (100, behind the NAT) and B (101) did not both register"
fi
for ((i = 0; i < 30; i++)); do # registrations reach the database a moment after the 200
  regs=$("$PALISADE_BIN" registrations --json --data "$data" 100)
  grep -q "\"source\": \"$WAN_IP:" <<<"$regs" && break
  sleep 0.1
done
grep -q "\"source\": \"$WAN_IP:" <<<"$regs" || fail "100's registration does not show the NAT's address $WAN_IP: $regs"
ok "A registered through the NAT (Palisade sees $WAN_IP), B registered directly"

# RTP the relay sent to IP after epoch T, decoded; prints "PACKETS FREQUENCY".
rtp_to() { # ip T out
  local ip=$1 t=$2 out=$3 n enc
  tshark -r "$E2E_TMP/cap.pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.p_type -e rtp.payload \
    -Y "rtp && udp.srcport >= $RTP_LO && udp.srcport <= $RTP_HI && ip.dst == $ip && frame.time_epoch > $t" \
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
print(n, "ul" if pt == "0" else "al")' "$out.raw" >"$out.meta"
  read -r n enc <"$out.meta"
  if [ "$n" -gt 0 ]; then
    echo "$n $(sox -t "$enc" -r 8000 -c 1 "$out.raw" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')"
  else
    echo "0 none"
  fi
}

# One call: CALLER_NS CALLER_CTRL CALLEE_NUMBER NAME [hold]; checks audio both ways (A hears 880, B 440).
ncall=0
call() {
  local ns=$1 cport=$2 callee=$3 name=$4 hold=${5:-} t0 t_resume r_a r_b
  ncall=$((ncall + 1))
  t0=$(date +%s.%N)
  if ! ctrl "$ns" "$cport" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:$callee@$SRV_IP:$SIP_PORT" >"$E2E_TMP/dial.$ncall.json" 2>&1; then
    show "$E2E_TMP/dial.$ncall.json"
    show "$E2E_TMP/a.log" 30
    show "$E2E_TMP/b.log" 30
    show "$PAL_ERR" 30
    fail "$name: no CALL_ESTABLISHED within 10 s"
  fi
  ok "$name: call established"
  sleep 4
  t_resume=$t0
  if [ -n "$hold" ]; then
    ctrl "$ns" "$cport" --timeout 5 hold >"$E2E_TMP/hold.json" 2>&1 || fail "$name: hold refused: $(cat "$E2E_TMP/hold.json")"
    sleep 1.5
    t_resume=$(date +%s.%N)
    ctrl "$ns" "$cport" --timeout 5 resume >"$E2E_TMP/resume.json" 2>&1 || fail "$name: resume refused: $(cat "$E2E_TMP/resume.json")"
    sleep 3
    if grep -qE "terminated|session closed" "$E2E_TMP/a.log" "$E2E_TMP/b.log"; then
      show "$E2E_TMP/a.log" 20
      fail "$name: the call ended during hold/resume"
    fi
  fi
  ctrl "$ns" "$cport" --wait-event CALL_CLOSED --timeout 5 hangup >"$E2E_TMP/hangup.$ncall.json" 2>&1 ||
    fail "$name: hangup: no CALL_CLOSED"
  sleep 1
  # The relay's RTP on the wire: to the NAT's address for A, to B's address (after the resume when held).
  r_a=$(rtp_to "$WAN_IP" "$t_resume" "$E2E_TMP/rx_a.$ncall")
  r_b=$(rtp_to "$B_IP" "$t_resume" "$E2E_TMP/rx_b.$ncall")
  if [ "${r_a% *}" -lt 50 ] || [ "${r_b% *}" -lt 50 ] || ! near "${r_a#* }" 880 || ! near "${r_b#* }" 440; then
    show "$PAL_ERR" 20
    fail "$name: relay->A (via NAT $WAN_IP) ${r_a% *} RTP packets at ${r_a#* } Hz (want >= 50 at 880), relay->B ${r_b% *} at ${r_b#* } Hz (want >= 50 at 440)"
  fi
  ok "$name: ${hold:+after hold and resume, }the relay sent A (through the NAT) ${r_a% *} packets at ${r_a#* } Hz and B ${r_b% *} at ${r_b#* } Hz"
}

call "$PH" 5062 101 "A (behind NAT) calls B" hold
# What each phone heard, from its own sndfile dump (the first stream: up to the hold).
wa=$(find "$E2E_TMP/a/snd" -name '*dec.wav' | sort | head -1)
wb=$(find "$E2E_TMP/b/snd" -name '*dec.wav' | sort | head -1)
{ [ -n "$wa" ] && [ -n "$wb" ]; } || fail "no received-audio dump (sndfile *dec.wav) at A or B"
fa=$(freq "$wa") fb=$(freq "$wb")
if ! near "$fa" 880 || ! near "$fb" 440; then
  fail "heard: A ${fa:-?} Hz (want 880), B ${fb:-?} Hz (want 440)"
fi
ok "heard (sndfile): A $fa Hz (B's tone), B $fb Hz (A's tone)"

call "$PUB" 5072 100 "B calls A (behind NAT)"
stop_pid "$tpid" 3

# The private address went over the wire in A's SDP, and the relay never sent anything there.
sdp_c=$(tshark -r "$E2E_TMP/cap.pcap" -Y "sdp && ip.src == $WAN_IP" -T fields -e sdp.connection_info 2>/dev/null | sort -u | tr '\n' ' ')
grep -q "$A_IP" <<<"$sdp_c" || fail "A's SDP did not name its private address (c= seen: $sdp_c)"
to_private=$(tshark -r "$E2E_TMP/cap.pcap" -Y "ip.dst == $A_IP" 2>/dev/null | wc -l)
[ "$to_private" = 0 ] || fail "$to_private packets were sent toward the private $A_IP"
ok "A's SDP says c=$A_IP (seen: $sdp_c); nothing was sent to $A_IP"

in_ns "$PH" timeout -k 1 5 python3 "$CTRL" "127.0.0.1:5062" --timeout 2 quit >/dev/null 2>&1 || true
in_ns "$PUB" timeout -k 1 5 python3 "$CTRL" "127.0.0.1:5072" --timeout 2 quit >/dev/null 2>&1 || true
wait_exit "$apid" 5 || true
wait_exit "$bpid" 5 || true
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
