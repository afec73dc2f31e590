#!/usr/bin/env bash
# Blind transfer (REFER) with real phones, over UDP: headless baresip A (extension 100, a 440 Hz sine as
# microphone), B (101, 880 Hz, auto-answer) and C (102, 660 Hz, auto-answer), and 103, a sipp UAS
# (scenarios/transfer_refer_refused.xml). A sipp provider on 127.0.0.5 sits behind trunk `carrier` (rule intl:
# prefix 00), with allowed_country_codes "" (home only).
#   * A calls 103, which sends REFER to 0044207946000 (the UK, not allowed): 403, a policy_refusal event
#     country_not_allowed says "transfer by 103", the provider gets no INVITE, and the call goes on
#     (`palisade calls`: 100 -> 103 talking) until 103 hangs up 3 s later (A's call ends). baresip is not
#     used for this case: its menu hangs the call up itself after any failed transfer;
#   * B puts A on hold (re-INVITE sendonly: A answers recvonly and stops sending), then transfers A to 102: C
#     rings and answers, B's call closes ("Call transfered", after the NOTIFY with SIP/2.0 200 OK), Palisade
#     re-INVITEs A itself (a=sendrecv, the same relay port) and A answers it, `palisade calls` shows 100 -> 102
#     talking; after ~4 s C has received A's 440 Hz (sndfile dump) and, on the loopback capture, after the
#     transfer A sends the relay its 440 Hz, the relay sends C 440 Hz and A C's 660 Hz: audio flows both ways
#     although the transferor had held the call;
#   * A hangs up, C sees CALL_CLOSED; the records: 100 -> 103 (bye), 100 -> 101 ended by `transfer`, then
#     100 -> 102 answered (bye).
# Ports: SIP/ctrl 29800-29849, baresip RTP 29850-29909, palisade relay 29910-29999.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29800 E2E_PORT_MAX=29849
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 ss sox tshark sipp

RTP_LO=29910 RTP_HI=29999
PROV=127.0.0.5
CTRL=$E2E_DIR/baresip_ctrl.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 103 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 103"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

# One free_port call: palisade; the provider (+1, and the four media ports sipp binds from -mp, +2..+5); per
# baresip SIP (UDP/TCP), TLS (+1) and ctrl (+2): A at +6, B at +9, C at +12; 103's sipp at +15 (media +16..+19).
base=$(free_port 20)
port=$base cport=$((base + 1)) p103=$((base + 15))
sa=$((base + 6)) sb=$((base + 9)) sc=$((base + 12))
ca=$((sa + 2)) cb=$((sb + 2)) cc=$((sc + 2))

pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal policy set international_prefix 00 >/dev/null || fail "policy set international_prefix"
pal policy set national_prefix 0 >/dev/null || fail "policy set national_prefix"
pal policy set allowed_country_codes "" >/dev/null || fail "policy set allowed_country_codes"
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --source "$PROV/32" >/dev/null ||
  fail "trunk add carrier"
pal rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add intl"

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }
calls_json() { pal calls --json; }
# talking CALLER CALLEE: palisade shows exactly one talking call CALLER -> CALLEE (polled: written within a second)
talking() {
  local i c
  for ((i = 0; i < 30; i++)); do
    c=$(calls_json)
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]==sys.argv[2] and c[0]["callee"]==sys.argv[3] and c[0]["state"]=="talking"))' "$c" "$1" "$2" && return 0
    sleep 0.1
  done
  log "calls: $c"
  return 1
}
refusals() { pal events --kind policy_refusal --json --limit 1000; }
nref() { refusals | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# RTP from the relay to a phone's RTP range after epoch time T, decoded; prints "PACKETS FREQUENCY". With
# "from" as 6th argument: RTP from that phone range to the relay instead.
rtp_after() { # pcap phone_lo phone_hi T out [from]
  local pcap=$1 lo=$2 hi=$3 t=$4 out=$5 src=udp.srcport dst=udp.dstport
  [ "${6:-}" = from ] && src=udp.dstport dst=udp.srcport
  tshark -r "$pcap" -o rtp.heuristic_rtp:TRUE -T fields -e rtp.p_type -e rtp.payload \
    -Y "rtp && $src >= $RTP_LO && $src <= $RTP_HI && $dst >= $lo && $dst <= $hi && frame.time_epoch > $t" \
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
  local n enc
  read -r n enc <"$out.meta"
  if [ "$n" -gt 0 ]; then
    echo "$n $(sox -t "$enc" -r 8000 -c 1 "$out.raw" -n stat 2>&1 | awk '/Rough +frequency/{print $3}')"
  else
    echo "0 none"
  fi
}

# the provider: any INVITE it gets is a policy failure
spawn "$E2E_TMP/prov.out" timeout -k 2 90 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$PROV" -p "$cport" -mi "$PROV" \
  -mp $((cport + 1)) -m 1 -nostdin -timeout 85 -trace_msg -message_file "$E2E_TMP/prov.msg" -trace_err \
  -error_file "$E2E_TMP/prov.err"
prov_pid=$BG_PID

d=$E2E_TMP/phones
baresip_conf "$d/a" "$sa" "$ca" 29850 29869 440 \
  "<sip:100@$HOST:$port;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$d/b" "$sb" "$cb" 29870 29889 880 \
  "<sip:101@$HOST:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"
baresip_conf "$d/c" "$sc" "$cc" 29890 29909 660 \
  "<sip:102@$HOST:$port;transport=udp>;auth_user=$(cred 102 2);auth_pass=$(cred 102 3);answermode=auto;regint=600"

spawn "$d/tshark.log" timeout -k 2 70 tshark -i lo -F pcap -a duration:60 -w "$d/cap.pcap" \
  -f "port $port or portrange 29850-29909 or portrange $RTP_LO-$RTP_HI"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
spawn "$d/c.log" timeout -k 2 60 baresip -f "$d/c" -t 55
cpid=$BG_PID
spawn "$d/b.log" timeout -k 2 60 baresip -f "$d/b" -t 55
bpid=$BG_PID
spawn "$d/a.log" timeout -k 2 60 baresip -f "$d/a" -t 55
apid=$BG_PID
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 101 b && registered 102 c && break
  sleep 0.1
done
if ! registered 100 a || ! registered 101 b || ! registered 102 c; then
  show "$d/a.log"
  show "$d/b.log"
  show "$d/c.log"
  fail "baresip A (100), B (101) and C (102) did not all register"
fi
ok "100, 101 and 102 registered"

prov_invites() { tr -d '\r' <"$E2E_TMP/prov.msg" 2>/dev/null | grep -cE '^INVITE ' || true; }

# ---- 1. A calls 103, which asks to transfer A to a disallowed country: refused, the call goes on
r=$(timeout -k 2 10 python3 "$E2E_DIR/call_client.py" register "$HOST:$port" 103 "$(cred 103 2)" "$(cred 103 3)" \
  --contact "$HOST:$p103" --bind "$p103") || fail "register 103: $r"
[ "$(jget "$r" 'r["final"]')" = 200 ] || fail "register 103: $r"
spawn "$E2E_TMP/refer.out" timeout -k 2 40 sipp -sf "$SCEN/transfer_refer_refused.xml" -i "$HOST" -p "$p103" \
  -mi "$HOST" -mp $((p103 + 1)) -s 103 -key target 0044207946000 -m 1 -nostdin -timeout 35 -trace_msg \
  -message_file "$E2E_TMP/refer.msg" -trace_err -error_file "$E2E_TMP/refer.err"
refer_pid=$BG_PID
sleep 0.5
e0=$(nref)
if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:103@$HOST:$port" >"$d/dial103.json" 2>&1; then
  show "$d/dial103.json"
  show "$d/a.log" 30
  show "$E2E_TMP/refer.msg" 30
  fail "A dialled 103: no CALL_ESTABLISHED within 10 s"
fi
for ((i = 0; i < 40; i++)); do
  [ "$(nref)" -gt "$e0" ] && break
  sleep 0.1
done
ev=$(refusals | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(r[0]) if r else "{}")')
[ "$(jget "$ev" 'r.get("reason")')" = country_not_allowed ] || fail "no country_not_allowed event for the transfer: $ev"
case $(jget "$ev" 'r.get("detail")') in *"transfer by 103"*) ;; *) fail "the transfer's event detail: $ev" ;; esac
grep -q '403 Forbidden' "$E2E_TMP/refer.msg" || fail "103's REFER did not get 403: $(grep -A1 REFER "$E2E_TMP/refer.msg" | head)"
talking 100 103 || fail "after the refused transfer palisade does not show 100 -> 103 talking: $(calls_json)"
if grep -q "Call with sip:103@[^ ]* terminated" "$d/a.log"; then fail "A's call ended right after the refused transfer"; fi
[ "$(prov_invites)" = 0 ] || fail "the refused transfer reached the provider: $(grep -E '^INVITE ' "$E2E_TMP/prov.msg")"
ok "103's REFER to 0044207946000: $(tr -d '\r' <"$E2E_TMP/refer.msg" | grep -m1 '^SIP/2.0 403'), event $(jget "$ev" 'r["reason"], r["detail"]'); provider got nothing; 100 -> 103 still talking"
rc=0
wait "$refer_pid" || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/refer.msg" 40
  fail "sipp 103 did not complete its scenario (exit $rc)"
}
for ((i = 0; i < 30; i++)); do
  grep -q "Call with sip:103@[^ ]* terminated" "$d/a.log" && break
  sleep 0.1
done
grep -q "Call with sip:103@[^ ]* terminated" "$d/a.log" || fail "103 hung up but A's call did not end"
ok "103 hung up 3 s later (its scenario completed: BYE, 200), A's call ended"

# ---- A calls B
if ! ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$HOST:$port" >"$d/dial.json" 2>&1; then
  show "$d/dial.json"
  show "$d/a.log" 30
  show "$d/b.log" 30
  fail "A dialled 101: no CALL_ESTABLISHED within 10 s"
fi
talking 100 101 || fail "palisade does not show 100 -> 101 talking: $(calls_json)"
ok "A (100) called B (101): established, palisade shows 100 -> 101 talking"

# ---- 2. B holds A, then transfers A to C (102)
sleep 1
ctrl "$HOST:$cb" --timeout 5 hold >"$d/hold.json" 2>&1 || fail "B's hold command refused: $(cat "$d/hold.json")"
sleep 1.5
talking 100 101 || fail "during the hold palisade does not show 100 -> 101 talking: $(calls_json)"
ok "B put A on hold (the capture is checked at the end)"
spawn "$d/c_est.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 12
cwait=$BG_PID
sleep 0.3
a_ended=$(grep -c 'terminated' "$d/a.log" || true)
t_xfer=$(date +%s.%N)
if ! ctrl "$HOST:$cb" --wait-event CALL_CLOSED --timeout 12 transfer "sip:102@$HOST:$port" >"$d/xfer_c.json" 2>&1; then
  show "$d/xfer_c.json"
  show "$d/b.log" 30
  show "$d/c.log" 30
  show "$PAL_ERR" 30
  fail "B's transfer to 102: B's call did not close"
fi
rc=0
for ((i = 0; i < 100; i++)); do alive "$cwait" || break; sleep 0.1; done
wait "$cwait" || rc=$?
[ "$rc" = 0 ] || {
  show "$d/c_est.json"
  show "$d/c.log" 30
  fail "C (102) did not report CALL_ESTABLISHED after the transfer"
}
talking 100 102 || fail "after the transfer palisade does not show 100 -> 102 talking: $(calls_json)"
ok "B transferred A to 102: C answered, B's call closed ($(grep -o '"param":"[^"]*"' "$d/xfer_c.json" | tail -1)), palisade shows 100 -> 102 talking"

sleep 4
if [ "$(grep -c 'terminated' "$d/a.log")" != "$a_ended" ] || ! talking 100 102; then
  show "$d/a.log" 20
  fail "A's call ended after the transfer: $(calls_json)"
fi

# ---- A hangs up, C sees the end
spawn "$d/c_closed.json" timeout -k 1 15 python3 "$CTRL" "$HOST:$cc" --wait-event CALL_CLOSED --timeout 10
wpid=$BG_PID
sleep 0.3
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$d/hangup.json" 2>&1 ||
  fail "A's hangup: no CALL_CLOSED: $(cat "$d/hangup.json")"
rc=0
for ((i = 0; i < 100; i++)); do alive "$wpid" || break; sleep 0.1; done
wait "$wpid" || rc=$?
[ "$rc" = 0 ] || fail "A hung up but C saw no CALL_CLOSED"
ok "A hung up, C saw CALL_CLOSED"

# ---- records: the conversation with B ended by the transfer, then A with C
recs=""
for ((i = 0; i < 40; i++)); do
  recs=$(pal cdr --json | python3 -c '
import json, sys
r = sorted(json.load(sys.stdin), key=lambda x: x["id"])
print(" | ".join("%s->%s %s %s" % (x["caller"], x["callee"], x["disposition"], x["reason"]) for x in r))')
  case $recs in *"100->102 answered"*) break ;; esac
  sleep 0.1
done
case $recs in *"100->103 answered bye | 100->101 answered transfer | 100->102 answered bye"*) ;; *) fail "call records: $recs" ;; esac
ok "call records: $recs"

for p in $ca $cb $cc; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
for p in $apid $bpid $cpid; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
sleep 0.5
stop_pid "$tpid" 3

# ---- signalling: A answered B's hold recvonly; after the transfer palisade re-INVITEd A (sendrecv), A said 200
sipf() { tshark -r "$d/cap.pcap" -Y "$1" -T fields -e sip.CSeq.seq 2>/dev/null | head -1 || true; }
held=$(sipf "sip.Status-Code == 200 && sip.CSeq.method == \"INVITE\" && udp.srcport == $sa && udp.dstport == $port && sdp.media_attr == \"recvonly\" && frame.time_epoch < $t_xfer")
[ -n "$held" ] || fail "B's hold: no 200 (a=recvonly) from A before the transfer"
resumed=$(sipf "sip.Method == \"INVITE\" && udp.srcport == $port && udp.dstport == $sa && sdp.media_attr == \"sendrecv\" && frame.time_epoch > $t_xfer")
[ -n "$resumed" ] || fail "no re-INVITE (a=sendrecv) from palisade to A after the transfer"
answered=$(sipf "sip.Status-Code == 200 && sip.CSeq.method == \"INVITE\" && sip.CSeq.seq == $resumed && udp.srcport == $sa && udp.dstport == $port && sdp.media_attr == \"sendrecv\"")
[ -n "$answered" ] || fail "A did not answer palisade's re-INVITE (CSeq $resumed) with 200 sendrecv"
ok "signalling: A answered the hold recvonly; after the transfer palisade's re-INVITE (CSeq $resumed, sendrecv) got 200 sendrecv from A"

# ---- audio: C heard A; after the transfer audio flows both ways between A and C
wc_=$(find "$d/c/snd" -name '*dec.wav' | sort | head -1)
[ -n "$wc_" ] || fail "no received-audio dump (sndfile *dec.wav) at C"
fc=$(freq "$wc_")
near "$fc" 440 || fail "C received ${fc:-?} Hz (want 440, A's tone)"
t_after=$(awk -v t="$t_xfer" 'BEGIN{printf "%.3f", t + 1.5}')
ra=$(rtp_after "$d/cap.pcap" 29850 29869 "$t_after" "$d/rx_a")
na=${ra% *}
if [ "$na" -lt 50 ] || ! near "${ra#* }" 660; then
  fail "after the transfer the relay sent A $na RTP packets at ${ra#* } Hz (want >= 50 at 660, C's tone)"
fi
sa_=$(rtp_after "$d/cap.pcap" 29850 29869 "$t_after" "$d/tx_a" from)
nsa=${sa_% *}
if [ "$nsa" -lt 50 ] || ! near "${sa_#* }" 440; then
  fail "after the transfer A sent the relay $nsa RTP packets at ${sa_#* } Hz (want >= 50 at 440: still on hold?)"
fi
rc_=$(rtp_after "$d/cap.pcap" 29890 29909 "$t_after" "$d/rx_c")
nc=${rc_% *}
if [ "$nc" -lt 50 ] || ! near "${rc_#* }" 440; then
  fail "after the transfer the relay sent C $nc RTP packets at ${rc_#* } Hz (want >= 50 at 440, A's tone)"
fi
ok "audio: C received ${fc} Hz (A's 440); after the transfer A sent $nsa packets at ${sa_#* } Hz, the relay sent C $nc at ${rc_#* } Hz and A $na at ${ra#* } Hz (C's 660)"

stop_pid "$prov_pid" 2
[ "$(prov_invites)" = 0 ] || fail "the provider got an INVITE"
sleep 0.5
[ "$(calls_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] ||
  fail "calls in progress left: $(calls_json)"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
