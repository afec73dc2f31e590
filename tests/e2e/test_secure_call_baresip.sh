#!/usr/bin/env bash
# A secure leg and a plain leg in one call (issue 6, "Show"): headless baresip A (extension 100,
# require_tls, srtp=enforced, 440 Hz microphone) registers over TLS with mandatory SRTP
# (`;transport=tls;mediaenc=srtp-mand`) and dials baresip B (101, 880 Hz, auto-answer) registered on
# plain UDP. Palisade terminates SRTP on A's leg and relays plain RTP on B's. Checks:
#   * both register (A over TLS, B over UDP), the call is established on both sides, A's log says
#     "SRTP is Enabled";
#   * each side receives the other's tone (sndfile *dec.wav, sox, within 10 %): 880 Hz at A, 440 at B;
#   * A hangs up, B sees CALL_CLOSED; `palisade cdr --json` has one answered 100 -> 101 record;
#   * a tshark capture on lo (signalling ports, both phones' RTP ranges, the relay range) shows:
#       - B's UDP leg: SDP in clear, every m=audio is RTP/AVP and there is no a=crypto, both in the
#         INVITE Palisade sends B and in B's 200;
#       - A's TLS port: TLS records (a handshake) and no SIP: tshark decodes no `sip` packet there and
#         no TCP payload on that port contains "SIP/2.0", "INVITE", "REGISTER" or "a=crypto";
#       - A's media leg (A <-> relay, both directions) is SRTP: RTP headers with payloads 10 bytes
#         longer than G.711's 160 (the HMAC-SHA1-80 tag), byte entropy > 7.5 bits, and decoded as
#         G.711 they are not a tone (sox's rough frequency is neither ~440 nor ~880 Hz);
#       - B's media leg (B <-> relay, both directions) is plain RTP: 160-byte payloads that decode to
#         880 Hz (B -> relay) and 440 Hz (relay -> B, i.e. decrypted by Palisade).
# Afterwards no call in progress and no palisade socket left in the relay range.
# Ports: SIP/ctrl 30000-30099, baresip RTP 30100-30139 (A 30100-30119, B 30120-30139), relay 30200-30299.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=30000 E2E_PORT_MAX=30099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/secure_lib.sh
. "$(dirname "$0")/secure_lib.sh"
need baresip python3 ss sox soxi tshark
[ -e /usr/lib/baresip/modules/srtp.so ] || fail "baresip's srtp module is missing (/usr/lib/baresip/modules/srtp.so)"

RTP_LO=30200 RTP_HI=30299
A_LO=30100 A_HI=30119 B_LO=30120 B_HI=30139
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
"$PALISADE_BIN" ext set 100 --require-tls true --srtp enforced --data "$data" >/dev/null ||
  fail "ext set 100 --require-tls true --srtp enforced"
"$PALISADE_BIN" ext show 100 --json --data "$data" >"$E2E_TMP/ext100.json" 2>&1 || true
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port 2) # UDP/TCP on port, TLS on port+1
tport=$((port + 1))
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port" --listen "tls:$HOST:$tport" \
  --rtp-ports "$RTP_LO-$RTP_HI"
ca=$data/tls/cert.pem
[ -s "$ca" ] || fail "no certificate at $ca after start"

relay_sockets() { ss -Huanp | awk -v pid="$PAL_PID" -v lo="$RTP_LO" -v hi="$RTP_HI" '$0 ~ "pid=" pid "," {
  n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) print $4 }'; }

d=$E2E_TMP/call
mkdir -p "$d"
sa=$(free_port 3) # SIP udp/tcp, tls (+1), ctrl (+2)
for ((i = 0; i < 20; i++)); do
  sb=$(free_port 3)
  { [ "$sb" -gt $((sa + 2)) ] || [ $((sb + 2)) -lt "$sa" ]; } && [ "$sb" != "$port" ] && [ "$sb" != "$tport" ] && break
done
actl=$((sa + 2)) bctl=$((sb + 2))
sec_baresip_conf "$d/a" "$sa" "$actl" "$A_LO" "$A_HI" 440 "$ca" \
  "<sip:100@$HOST:$tport;transport=tls>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600;mediaenc=srtp-mand"
sec_baresip_conf "$d/b" "$sb" "$bctl" "$B_LO" "$B_HI" 880 "$ca" \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"

# loopback capture of signalling and media (self-terminating)
spawn "$d/tshark.log" timeout -k 2 60 tshark -i lo -F pcap -a duration:45 -w "$d/cap.pcap" \
  -f "port $port or port $tport or portrange $A_LO-$B_HI or portrange $RTP_LO-$RTP_HI"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
grep -q 'Capturing on' "$d/tshark.log" || {
  show "$d/tshark.log"
  fail "tshark did not start capturing on lo"
}

spawn "$d/b.log" timeout -k 2 45 baresip -f "$d/b" -t 40
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 45 baresip -f "$d/a" -t 40
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" && grep -q "101@$HOST: {0/UDP/v4} 200 OK" "$d/b.log" && break
  sleep 0.1
done
if ! grep -q "100@$HOST: {0/TLS/v4} 200 OK" "$d/a.log" || ! grep -q "101@$HOST: {0/UDP/v4} 200 OK" "$d/b.log"; then
  show "$d/a.log"
  show "$d/b.log"
  show "$PAL_ERR"
  fail "A (100) over TLS and B (101) over UDP did not both register ({0/TLS/v4} / {0/UDP/v4} 200 OK)"
fi
regs_ok() {
  regs=$("$PALISADE_BIN" registrations --json --data "$data")
  python3 -c '
import json, sys
r = json.loads(sys.argv[1])
tp = {x.get("extension", x.get("number")): str(x.get("transport", "")).lower() for x in r}
sys.exit(0 if tp.get("100") == "tls" and tp.get("101") == "udp" else "registrations: %s" % r)' "$regs"
}
for ((i = 0; i < 40; i++)); do
  regs_ok 2>/dev/null && break
  sleep 0.1
done
regs_ok ||
  fail "palisade registrations do not show 100 over TLS and 101 over UDP: $regs"
ok "100 registered over TLS (require_tls, srtp enforced), 101 over UDP"

t_dial=$(date +%s.%N)
if ! sec_ctrl "$HOST:$actl" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$tport;transport=tls" \
  >"$d/dial.json" 2>&1; then
  show "$d/dial.json"
  show "$d/a.log" 30
  show "$d/b.log" 30
  show "$PAL_ERR" 30
  fail "A dialled 101 over TLS with mandatory SRTP: no CALL_ESTABLISHED within 10 s"
fi
for ((i = 0; i < 20; i++)); do
  grep -q "101@$HOST: Call established" "$d/b.log" && break
  sleep 0.1
done
grep -q "101@$HOST: Call established" "$d/b.log" || {
  show "$d/b.log" 30
  fail "A is in the call but B does not say 'Call established'"
}
t_est=$(date +%s.%N)
ok "A dialled 101, call established on both sides in $(awk -v a="$t_dial" -v b="$t_est" 'BEGIN{printf "%.2f", b - a}') s"

calls=""
for ((i = 0; i < 30; i++)); do
  calls=$("$PALISADE_BIN" calls --json --data "$data")
  python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="100" and c[0]["callee"]=="101" and c[0]["state"]=="talking"))' "$calls" && break
  sleep 0.1
done
python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="100" and c[0]["callee"]=="101" and c[0]["state"]=="talking"))' "$calls" ||
  fail "palisade calls --json does not show one talking call 100->101: $calls"
socks=$(relay_sockets | sort | tr '\n' ' ')
ok "palisade calls: one talking call 100->101; relay sockets $socks"

sleep 5

# A hangs up, B watches for the end of the call
spawn "$d/closed.json" timeout -k 1 15 python3 "$E2E_DIR/baresip_ctrl.py" "$HOST:$bctl" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
sec_ctrl "$HOST:$actl" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup.json" 2>&1 ||
  fail "hangup by A: no CALL_CLOSED: $(cat "$d/hangup.json")"
rc=0
for ((i = 0; i < 100; i++)); do
  alive "$wpid" || break
  sleep 0.1
done
wait "$wpid" || rc=$?
[ "$rc" = 0 ] || {
  show "$d/closed.json"
  fail "A hung up but B saw no CALL_CLOSED"
}
ok "A hung up, B saw CALL_CLOSED"

srtp_line=$(sed 's/\x1b\[[0-9;]*m//g' "$d/a.log" | grep -m1 'SRTP is Enabled' || true)
[ -n "$srtp_line" ] || {
  show "$d/a.log" 40
  fail "A's log does not say 'SRTP is Enabled'"
}
! grep -q 'SRTP is Enabled' "$d/b.log" || fail "B (plain UDP leg) says 'SRTP is Enabled': $(grep 'SRTP is' "$d/b.log")"
ok "A's log: ${srtp_line#*srtp: }; B's log has no SRTP"

cdr=""
for ((i = 0; i < 40; i++)); do
  cdr=$("$PALISADE_BIN" cdr --json --data "$data")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (len(r)==1 and r[0]["disposition"]=="answered"))' "$cdr" && break
  sleep 0.1
done
cdr_line=$(python3 -c '
import json, sys
recs = json.loads(sys.argv[1])
if len(recs) != 1:
    sys.exit("%d call records, expected 1: %s" % (len(recs), recs))
r = recs[0]
errs = ["%s=%r (expected %r)" % (k, r.get(k), v) for k, v in
        (("caller", "100"), ("callee", "101"), ("disposition", "answered"), ("hung_up_by", "caller")) if r.get(k) != v]
d = r.get("duration_secs")
if not isinstance(d, int) or not 4 <= d <= 20:
    errs.append("duration_secs=%r (expected 4..20)" % d)
if errs:
    sys.exit("call record: " + ", ".join(errs) + ": %s" % r)
print("%s->%s %s hung_up_by=%s duration=%ss" % (r["caller"], r["callee"], r["disposition"], r["hung_up_by"], d))' "$cdr" 2>&1) ||
  fail "palisade cdr: $cdr_line"
ok "call record: $cdr_line"

sec_ctrl "$HOST:$actl" --timeout 2 quit >/dev/null 2>&1 || true
sec_ctrl "$HOST:$bctl" --timeout 2 quit >/dev/null 2>&1 || true
wait_exit "$apid" 5 || true
wait_exit "$bpid" 5 || true
stop_pid "$apid" 2
stop_pid "$bpid" 2
sleep 0.5
stop_pid "$tpid" 3

# ---- received audio (sndfile dumps get their WAV header when the stream stops)
wa=$(find "$d/a/snd" -name '*dec.wav' | sort | head -1)
wb=$(find "$d/b/snd" -name '*dec.wav' | sort | head -1)
if [ -z "$wa" ] || [ -z "$wb" ]; then fail "no received-audio dump (sndfile *dec.wav) at A or B"; fi
fa=$(sec_freq "$wa")
fb=$(sec_freq "$wb")
la=$(soxi -D "$wa" 2>/dev/null || echo 0)
lb=$(soxi -D "$wb" 2>/dev/null || echo 0)
if ! sec_near "$fa" 880 || ! sec_near "$fb" 440; then
  fail "received audio: A (SRTP) got ${fa:-?} Hz in ${la}s (want 880), B (RTP) got ${fb:-?} Hz in ${lb}s (want 440)"
fi
ok "received audio: A (SRTP leg) ${fa} Hz in ${la}s (want 880), B (plain leg) ${fb} Hz in ${lb}s (want 440)"

# ---- the capture
cap=$d/cap.pcap
tsh() { tshark -r "$cap" -d "udp.port==$port,sip" -d "tcp.port==$port,sip" -d "tcp.port==$tport,tls" "$@" 2>/dev/null; }

# B's UDP leg: SDP in clear, RTP/AVP, no a=crypto
tsh -Y "udp.port == $port && sdp" -T fields -e frame.number -e udp.srcport -e udp.dstport -e sip.Method \
  -e sip.Status-Code -e sdp.media.proto -e sdp.crypto.crypto_suite -e sdp.media_attr >"$d/sdp_b.txt" || true
tsh -Y "udp.port == $port && sdp" -V >"$d/sdp_b_full.txt" || true
python3 - "$d/sdp_b.txt" "$port" <<'PY' >"$d/sdp_b.check" 2>&1 || { cat "$d/sdp_b.check" >&2; fail "SDP on B's UDP leg: $(tail -1 "$d/sdp_b.check")"; }
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
port = sys.argv[2]
invite_to_b = [r for r in rows if r[1] == port and r[3] == "INVITE"]
ok_from_b = [r for r in rows if r[2] == port and r[4] == "200"]
errs = []
if not invite_to_b:
    errs.append("no INVITE with SDP from palisade to B on UDP")
if not ok_from_b:
    errs.append("no 200 with SDP from B on UDP")
for r in rows:
    protos = [p for p in r[5].split(",") if p]
    if not protos or any(p != "RTP/AVP" for p in protos):
        errs.append("frame %s: m= proto %r (want RTP/AVP)" % (r[0], r[5]))
    if r[6] or "crypto" in r[7]:
        errs.append("frame %s: a=crypto on the plain leg (%r %r)" % (r[0], r[6], r[7]))
if errs:
    print("; ".join(errs))
    sys.exit(1)
print("%d SDP bodies on B's UDP leg (%d INVITE to B, %d 200 from B): all RTP/AVP, no a=crypto" % (len(rows), len(invite_to_b), len(ok_from_b)))
PY
ok "$(tail -1 "$d/sdp_b.check")"
grep -q 'crypto' "$d/sdp_b_full.txt" && fail "the word 'crypto' appears in an SDP on B's UDP leg: $(grep -m3 crypto "$d/sdp_b_full.txt")"

# A's TLS port: TLS, no SIP in clear
ntls=$(tsh -Y "tcp.port == $tport && tls.record" | wc -l)
nhello=$(tsh -Y "tcp.port == $tport && tls.handshake.type == 1" | wc -l)
nsip=$(tshark -r "$cap" -d "tcp.port==$tport,sip" -Y "tcp.port == $tport && sip.Method" 2>/dev/null | wc -l)
nsip2=$(tsh -Y "tcp.port == $tport && sip" | wc -l)
clear=$(tsh -Y "tcp.port == $tport && tcp.len > 0" -T fields -e tcp.payload | python3 -c '
import sys
data = b"".join(bytes.fromhex(l.strip().replace(":", "")) for l in sys.stdin if l.strip())
print(len(data), " ".join(w for w in ("SIP/2.0", "INVITE", "REGISTER", "a=crypto", "RTP/SAVP", "Digest") if w.encode() in data) or "-")')
{ [ "$ntls" -gt 5 ] && [ "$nhello" -ge 1 ]; } || fail "A's TLS port $tport: $ntls TLS records, $nhello ClientHello (expected a TLS handshake and records)"
{ [ "$nsip" = 0 ] && [ "$nsip2" = 0 ]; } || fail "A's TLS port $tport: $nsip/$nsip2 packets decode as SIP"
[ "${clear#* }" = - ] || fail "A's TLS port $tport: clear-text SIP in the TCP payload (${clear%% *} bytes): ${clear#* }"
ok "A's TLS port $tport: $ntls TLS records ($nhello ClientHello), 0 packets decodable as SIP, no SIP words in ${clear%% *} payload bytes"

# the media legs
legs() { # name slo shi dlo dhi
  local r
  r=$(sec_rtp_leg "$cap" "$2" "$3" "$4" "$5" "$d/$1")
  echo "$r"
}
a_up=$(legs a_up "$A_LO" "$A_HI" "$RTP_LO" "$RTP_HI")     # A -> relay (baresip's SRTP)
a_down=$(legs a_down "$RTP_LO" "$RTP_HI" "$A_LO" "$A_HI") # relay -> A (palisade's SRTP)
b_up=$(legs b_up "$B_LO" "$B_HI" "$RTP_LO" "$RTP_HI")     # B -> relay
b_down=$(legs b_down "$RTP_LO" "$RTP_HI" "$B_LO" "$B_HI") # relay -> B
log "legs (packets pt bytes entropy freq src_ports): A->relay $a_up | relay->A $a_down | B->relay $b_up | relay->B $b_down"
srtp_why() { # "n pt size ent freq ports" -> prints why it is not SRTP, status 1; status 0 when it is
  local n pt size ent f ports
  read -r n pt size ent f ports <<<"$1"
  if [ "$n" -lt 100 ]; then
    echo "$n RTP packets (expected >= 100)"
  elif [ "$size" != 170 ] && [ "$size" != 164 ]; then
    echo "payload+tag $size bytes (expected 170 or 164: 160 bytes of G.711 + SRTP auth tag)"
  elif ! awk -v e="$ent" 'BEGIN{exit !(e > 7.5)}'; then
    echo "payload entropy $ent bits/byte (expected > 7.5 for encrypted audio)"
  elif sec_near "$f" 440 || sec_near "$f" 880; then
    echo "payload decodes as G.711 to a ${f} Hz tone: not encrypted"
  else
    return 0
  fi
  return 1
}
check_srtp() { # name "n pt size ent freq ports"
  local name=$1 why n pt size ent f ports
  why=$(srtp_why "$2") || fail "$name: $why"
  read -r n pt size ent f ports <<<"$2"
  ok "$name: SRTP: $n packets from port(s) $ports, $size bytes payload+tag, entropy $ent bits/byte, decoded as G.711 ${f} Hz (not a tone)"
}
check_plain() { # name "n pt size ent freq ports" want_hz
  local name=$1 n pt size ent f ports
  read -r n pt size ent f ports <<<"$2"
  [ "$n" -ge 100 ] || fail "$name: $n RTP packets (expected >= 100)"
  [ "$size" = 160 ] || fail "$name: payload $size bytes (expected 160: plain 20 ms G.711)"
  sec_near "$f" "$3" || fail "$name: payload decodes to ${f} Hz (want $3)"
  ok "$name: plain RTP: $n packets from port(s) $ports, $size bytes, entropy $ent bits/byte, decodes to ${f} Hz (want $3)"
}
check_srtp "A -> relay" "$a_up"
check_srtp "relay -> A" "$a_down"
check_plain "B -> relay" "$b_up" 880
check_plain "relay -> B" "$b_down" 440
# control: the same SRTP criteria reject both plain directions
for leg in "$b_up" "$b_down"; do
  why=$(srtp_why "$leg") && fail "control: the SRTP check accepts B's plain RTP leg ($leg)"
done
ok "control: the SRTP check rejects B's plain legs ($why)"

sleep 0.5
calls=$("$PALISADE_BIN" calls --json --data "$data")
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$calls")" = 0 ] ||
  fail "palisade calls --json after the call: $calls"
left=$(relay_sockets | tr '\n' ' ')
[ -z "$left" ] || fail "palisade still holds UDP sockets in the relay range $RTP_LO-$RTP_HI: $left"
ok "after the call: palisade calls empty, no palisade socket in $RTP_LO-$RTP_HI"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
