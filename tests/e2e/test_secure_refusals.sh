#!/usr/bin/env bash
# TLS and SRTP policy refusals (issue 6, "Show"), with real baresip phones and small python clients.
# Extensions 100-105: 101 = callee (baresip on UDP, plain RTP, auto-answer), the others:
#   * 102 srtp=enforced, baresip over TLS WITHOUT mediaenc (plain RTP/AVP offer): its call to 101 ends
#     with 488 and B is never rung. Control: `ext set 102 --srtp enabled` on the running server, the
#     same phone's next call is established (so the 488 came from the policy, not the phone);
#   * 103 (srtp enabled, the default), baresip on UDP with `;mediaenc=srtp-mand` (RTP/SAVP + a=crypto
#     over UDP): 488 (keys only over TLS), B not rung; the 488 is read off the capture, in clear;
#   * 104 require_tls: REGISTER over UDP and over TCP with the right credentials (reg_client.py) gets
#     403 "Forbidden (TLS required)", an INVITE over UDP (call_client.py) gets 403 too, and
#     `palisade events --kind policy_refusal` holds `tls_required` events for 104; no binding is made.
#     Control: baresip registers 104 over TLS: 200, a TLS binding;
#   * 105 srtp=enforced registered over UDP: a call to 105 must not ring it (an enforced callee is
#     never rung on a non-TLS contact) and does not end in 2xx.
# Ports: SIP/ctrl 30300-30349, baresip RTP 30350-30389, relay 30400-30449.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=30300 E2E_PORT_MAX=30349
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/secure_lib.sh
. "$(dirname "$0")/secure_lib.sh"
need baresip python3 ss sox tshark
[ -e /usr/lib/baresip/modules/srtp.so ] || fail "baresip's srtp module is missing (/usr/lib/baresip/modules/srtp.so)"

RTP_LO=30400 RTP_HI=30449
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 105 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 105"
"$PALISADE_BIN" ext set 102 --srtp enforced --data "$data" >/dev/null || fail "ext set 102 --srtp enforced"
"$PALISADE_BIN" ext set 104 --require-tls true --data "$data" >/dev/null || fail "ext set 104 --require-tls true"
"$PALISADE_BIN" ext set 105 --srtp enforced --data "$data" >/dev/null || fail "ext set 105 --srtp enforced"
# 105 must not be answered by its mailbox when no contact can take SRTP: this test is about refusals.
"$PALISADE_BIN" ext set 105 --voicemail off --data "$data" >/dev/null || fail "ext set 105 --voicemail off"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port 2) # UDP/TCP on port, TLS on port+1
tport=$((port + 1))
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port" --listen "tls:$HOST:$tport" \
  --rtp-ports "$RTP_LO-$RTP_HI"
ca=$data/tls/cert.pem

# baresip phones: each gets 3 ports (SIP, TLS = +1, ctrl = +2), distinct from all others
used=" $port $tport "
phone_ports() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$(free_port 3)
    case $used in *" $p "* | *" $((p + 1)) "* | *" $((p + 2)) "*) continue ;; esac
    used+="$p $((p + 1)) $((p + 2)) "
    echo "$p"
    return 0
  done
  fail "no 3 free ports for a phone"
}
declare -A PID CTL LOG
rtp_next=30350
# start_phone NAME NUMBER TRANSPORT EXTRA_ACCOUNT_PARAMS: registers (waits for 200 on that transport)
start_phone() {
  local name=$1 num=$2 tp=$3 extra=$4 sp dir reg TP i
  sp=$(phone_ports)
  dir=$E2E_TMP/$name
  reg=$port
  [ "$tp" = tls ] && reg=$tport
  sec_baresip_conf "$dir" "$sp" "$((sp + 2))" "$rtp_next" "$((rtp_next + 7))" 440 "$ca" \
    "<sip:$num@$HOST:$reg;transport=$tp>;auth_user=$(cred "$num" 2);auth_pass=$(cred "$num" 3);regint=600$extra"
  rtp_next=$((rtp_next + 8))
  spawn "$dir.log" timeout -k 2 60 baresip -f "$dir" -t 55
  PID[$name]=$BG_PID
  CTL[$name]=$((sp + 2))
  LOG[$name]=$dir.log
  TP=${tp^^}
  for ((i = 0; i < 100; i++)); do
    grep -q "$num@$HOST: {0/$TP/v4} 200 OK" "$dir.log" && break
    sleep 0.1
  done
  grep -q "$num@$HOST: {0/$TP/v4} 200 OK" "$dir.log" || {
    show "$dir.log"
    show "$PAL_ERR"
    fail "$name ($num over $tp) did not register ({0/$TP/v4} 200 OK)"
  }
}
incoming() { grep -c 'Incoming call' "${LOG[$1]}" || true; }
# dial NAME TARGET_URI OUT: waits for CALL_ESTABLISHED or CALL_CLOSED; prints the last event's param
dial() {
  local name=$1 uri=$2 out=$3
  sec_ctrl "$HOST:${CTL[$name]}" --wait-event CALL_ESTABLISHED,CALL_CLOSED --timeout 10 dial "$uri" >"$out" 2>&1 || true
  python3 -c '
import json, sys
last = None
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("event") and j.get("type") in ("CALL_ESTABLISHED", "CALL_CLOSED"):
        last = "%s %s" % (j["type"], j.get("param", ""))
print(last or "NONE")' "$out"
}

# capture of the clear-text signalling (UDP/TCP port) and of the TLS port
spawn "$E2E_TMP/tshark.log" timeout -k 2 90 tshark -i lo -F pcap -a duration:80 -w "$E2E_TMP/cap.pcap" \
  -f "port $port or port $tport"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$E2E_TMP/tshark.log" && break
  sleep 0.1
done

start_phone b 101 udp ";answermode=auto"
ok "callee 101 registered over UDP (plain RTP, auto-answer)"

# ---- 1. enforced extension offering plain RTP over TLS -> 488
start_phone p102 102 tls ""
r=$(dial p102 "sip:101@$HOST:$tport;transport=tls" "$E2E_TMP/dial102.json")
rung=$(incoming b)
case $r in
  "CALL_CLOSED 488"*) ;;
  *)
    show "${LOG[p102]}" 20
    show "$PAL_ERR" 20
    fail "102 (srtp=enforced) offering plain RTP over TLS: '$r', expected CALL_CLOSED 488"
    ;;
esac
[ "$rung" = 0 ] || fail "102's refused call rang 101 ($rung incoming call(s) at B)"
grep -q 'SRTP is Enabled' "${LOG[p102]}" && fail "102's baresip enabled SRTP without mediaenc"
ok "102 (srtp=enforced) over TLS offering plain RTP/AVP: $r; 101 not rung"

# control: the same phone, extension changed to srtp=enabled on the running server, gets through
"$PALISADE_BIN" ext set 102 --srtp enabled --data "$data" >/dev/null || fail "ext set 102 --srtp enabled"
r2=NONE
for ((i = 0; i < 4; i++)); do
  sleep 0.5
  r2=$(dial p102 "sip:101@$HOST:$tport;transport=tls" "$E2E_TMP/dial102b.$i.json")
  case $r2 in CALL_ESTABLISHED*) break ;; esac
done
case $r2 in CALL_ESTABLISHED*) ;; *) fail "control: 102 set to srtp=enabled still cannot call 101 over TLS with plain RTP: '$r2'" ;; esac
sleep 1
sec_ctrl "$HOST:${CTL[p102]}" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null 2>&1 || true
ok "control: after 'ext set 102 --srtp enabled' the same plain offer is established (then hung up)"
before_b=$(incoming b)

# ---- 2. SRTP offer (RTP/SAVP + a=crypto) over UDP -> 488
start_phone p103 103 udp ";mediaenc=srtp-mand"
r=$(dial p103 "sip:101@$HOST:$port" "$E2E_TMP/dial103.json")
case $r in
  "CALL_CLOSED 488"*) ;;
  *)
    show "${LOG[p103]}" 20
    show "$PAL_ERR" 20
    fail "103 offering SRTP over UDP: '$r', expected CALL_CLOSED 488"
    ;;
esac
[ "$(incoming b)" = "$before_b" ] || fail "103's SRTP-over-UDP call rang 101"
ok "103 over UDP with mediaenc=srtp-mand (RTP/SAVP + a=crypto): $r; 101 not rung"

# ---- 3. require_tls: REGISTER/INVITE over UDP and TCP -> 403, event; over TLS -> 200
for tp in udp tcp; do
  timeout -k 1 10 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" "$tp" 104 "$(cred 104 2)" "$(cred 104 3)" \
    >"$E2E_TMP/reg104.$tp.json" 2>&1 || true
  st=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["final"]["status"])' "$E2E_TMP/reg104.$tp.json" 2>/dev/null || echo "no answer: $(tail -c 300 "$E2E_TMP/reg104.$tp.json")")
  case $st in
    "SIP/2.0 403 Forbidden (TLS required)") ;;
    *) fail "104 (require_tls) REGISTER over $tp with the right password: '$st', expected 'SIP/2.0 403 Forbidden (TLS required)'" ;;
  esac
  ok "104 (require_tls) REGISTER over ${tp^^} with the right password: $st"
done
timeout -k 1 20 python3 "$E2E_DIR/call_client.py" call "$HOST:$port" 104 "$(cred 104 2)" "$(cred 104 3)" 101 --wait 5 \
  >"$E2E_TMP/call104.json" 2>&1 || true
fc=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["final"], [r[2] for r in j["responses"] if r[1]==j["final"]][0])' "$E2E_TMP/call104.json" 2>/dev/null || echo "none")
case $fc in 403*) ;; *) fail "104 (require_tls) INVITE over UDP with credentials: '$fc' ($(tail -c 300 "$E2E_TMP/call104.json")), expected 403" ;; esac
[ "$(incoming b)" = "$before_b" ] || fail "104's INVITE over UDP rang 101"
ok "104 (require_tls) INVITE over UDP with credentials: $fc; 101 not rung"

evs=""
for ((i = 0; i < 30; i++)); do
  evs=$("$PALISADE_BIN" events --kind policy_refusal --json --data "$data" 2>&1)
  python3 -c '
import json, sys
ev = [e for e in json.loads(sys.argv[1]) if e.get("reason") == "tls_required"]
sys.exit(0 if len(ev) >= 3 else 1)' "$evs" 2>/dev/null && break
  sleep 0.1
done
evline=$(python3 -c '
import json, sys
evs = json.loads(sys.argv[1])
ev = [e for e in evs if e.get("kind") == "policy_refusal" and e.get("reason") == "tls_required"]
if len(ev) < 3:
    sys.exit("%d policy_refusal/tls_required events (expected >= 3: REGISTER udp, tcp, INVITE udp): %s" % (len(ev), evs))
if not all("104" in json.dumps(e) or sys.argv[2] in json.dumps(e) for e in ev):
    sys.exit("tls_required events that do not name 104: %s" % ev)
if sys.argv[3] in json.dumps(evs):
    sys.exit("an event holds the password")
print("%d policy_refusal/tls_required events, e.g. %s" % (len(ev), json.dumps(ev[0], sort_keys=True)))' "$evs" "$(cred 104 2)" "$(cred 104 3)" 2>&1) ||
  fail "palisade events: $evline"
ok "$evline"
regs=$("$PALISADE_BIN" registrations --json --data "$data")
python3 -c 'import json,sys; sys.exit(any(r["extension"]=="104" for r in json.loads(sys.argv[1])))' "$regs" ||
  fail "104 has a binding after refused UDP/TCP registrations: $regs"

start_phone p104 104 tls ""
regs_ok() {
  regs=$("$PALISADE_BIN" registrations --json --data "$data")
  python3 -c 'import json,sys; sys.exit(not any(r["extension"]=="104" and r["transport"].lower()=="tls" for r in json.loads(sys.argv[1])))' "$regs"
}
for ((i = 0; i < 40; i++)); do
  regs_ok && break
  sleep 0.1
done
regs_ok || fail "104 registered over TLS (baresip 200 OK) but palisade registrations has no TLS binding: $regs"
ok "control: 104 (require_tls) registers over TLS: {0/TLS/v4} 200 OK, a TLS binding"

# ---- 4. enforced callee (105) registered over UDP is never rung
start_phone p105 105 udp ";answermode=auto"
r=$(dial b "sip:105@$HOST:$port" "$E2E_TMP/dial105.json")
n105=$(incoming p105)
case $r in CALL_ESTABLISHED*) fail "a call to 105 (srtp=enforced) on a UDP contact was established: $r" ;; esac
[ "$n105" = 0 ] || fail "105 (srtp=enforced) on a UDP contact was rung ($n105 incoming call(s))"
ok "101 calls 105 (srtp=enforced, registered over UDP): '$r', 105 not rung"

for n in "${!CTL[@]}"; do sec_ctrl "$HOST:${CTL[$n]}" --timeout 2 quit >/dev/null 2>&1 || true; done
for n in "${!PID[@]}"; do
  wait_exit "${PID[$n]}" 5 || true
  stop_pid "${PID[$n]}" 2
done
sleep 0.3
stop_pid "$tpid" 3

# the clear-text 488 to 103 and the 403s on the wire
wire=$(tshark -r "$E2E_TMP/cap.pcap" -d "udp.port==$port,sip" -d "tcp.port==$port,sip" \
  -Y "sip.Status-Code >= 400 && sip.Status-Code != 401 && sip.Status-Code != 407" -T fields -e sip.Status-Line \
  -e sip.CSeq.method 2>/dev/null | sort | uniq -c | awk '{$1=$1; print}' | tr '\n' ';')
case $wire in *"488 Not Acceptable"*) ;; *) fail "no 488 on the clear-text wire for 103's SRTP-over-UDP offer: $wire" ;; esac
case $wire in *"403 Forbidden (TLS required)"*) ;; *) fail "no '403 Forbidden (TLS required)' on the wire: $wire" ;; esac
ok "on the wire (UDP/TCP): $wire"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
