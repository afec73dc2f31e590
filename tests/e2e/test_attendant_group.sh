#!/usr/bin/env bash
# An auto attendant hands callers to a ring group and a queue; DIDs lead to groups and queues, under the outside
# caller's policy. Spoken greeting (espeak-ng, converted on upload). Real phones: headless baresip A (100, 440 Hz),
# the operator O (200, 660 Hz, auto-answer), group 600 = 201 (300 Hz), 202 (880 Hz, auto-answer), 203 (550 Hz).
#   * CLI: an option to a group or a queue that does not exist is refused; `did add --target` to a missing
#     queue or to an extension-kind target is refused; DIDs 4930600 -> group:600, 4930601 -> group:601 (whose only
#     member is a UK number), 4930700 -> queue:700 listed by `did list --json`;
#   * A dials the attendant (800), hears the spoken greeting, keys 1 (RFC 4733): 201, 202 and 203 ring at once,
#     202 answers, `palisade calls` shows 100 -> 202 talking and A hears 202's 880 Hz;
#   * A dials 800 and keys nothing: after the 3 s timeout the operator 200 answers;
#   * an outside caller (sipp on the trunk's address) through DID 4930600 reaches group 600 (202 answers); through
#     DID 4930700 it is answered by queue 700's music (the queue counts it); through DID 4930601 it reaches nobody:
#     group 601's UK member is never dialled for an outside caller (policy event outside_caller_external_member)
#     and the provider gets no INVITE.
# Ports: SIP/ctrl from free_port in 26000-26059, baresip RTP 26060-26109, palisade relay 26120-26179.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26059
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark sipp espeak-ng

RTP_LO=26120 RTP_HI=26179
PROV=127.0.0.5
CTRL=$E2E_DIR/baresip_ctrl.py
TONES=$E2E_DIR/rtp_tones.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
for n in 100 200 201 202 203; do
  "$PALISADE_BIN" ext add-range "$n" "$n" --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
    fail "ext add-range $n $n"
done
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }

base=$(free_port 30)
port=$base cport=$((base + 1)) pu=$((base + 6))
sa=$((base + 10)) so=$((base + 13)) s1=$((base + 16)) s2=$((base + 19)) s3=$((base + 22))
ca=$((sa + 2)) co=$((so + 2)) c1=$((s1 + 2)) c2=$((s2 + 2)) c3=$((s3 + 2))

pal policy set country_code 49 >/dev/null
pal policy set international_prefix 00 >/dev/null
pal policy set national_prefix 0 >/dev/null
pal policy set allowed_country_codes 44 >/dev/null
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --source "$PROV/32" >/dev/null ||
  fail "trunk add carrier"
pal rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add intl"
pal group add 600 --members 201,202,203 --strategy all --ring-seconds 20 --fallback hangup >/dev/null ||
  fail "group add 600"
pal group add 601 --members 00441234567 --strategy all --ring-seconds 10 --fallback hangup >/dev/null ||
  fail "group add 601 (an external member)"
pal queue add 700 --agents 203 --max-wait 60 >/dev/null || fail "queue add 700"

espeak-ng -w "$E2E_TMP/greeting.wav" "Welcome to Palisade. For sales, press one. To reach the operator, stay on the line." ||
  fail "espeak-ng could not write the greeting"
# refused: targets that do not exist, and a DID target of the wrong kind
if out=$(pal attendant add bad --greeting "$E2E_TMP/greeting.wav" --option 1=group:699 2>&1); then fail "group:699 accepted: $out"; fi
case $out in *"ring group 699 does not exist"*) ;; *) fail "group:699: unclear error: $out" ;; esac
if out=$(pal attendant add bad --greeting "$E2E_TMP/greeting.wav" --option 1=queue:799 2>&1); then fail "queue:799 accepted: $out"; fi
case $out in *"queue 799 does not exist"*) ;; *) fail "queue:799: unclear error: $out" ;; esac
if out=$(pal did add 4930799 --trunk carrier --target queue:799 2>&1); then fail "did --target queue:799 accepted: $out"; fi
case $out in *"queue 799 does not exist"*) ;; *) fail "did --target queue:799: unclear error: $out" ;; esac
if out=$(pal did add 4930799 --trunk carrier --target ext:201 2>&1); then fail "did --target ext:201 accepted: $out"; fi
case $out in *"group:NUMBER or queue:NUMBER"*) ;; *) fail "did --target ext:201: unclear error: $out" ;; esac
pal attendant add main --number 800 --greeting "$E2E_TMP/greeting.wav" --option 1=group:600 --option 2=queue:700 \
  --option 0=ext:200 --timeout 3 >/dev/null || fail "attendant add main"
pal did add 4930600 --trunk carrier --target group:600 >/dev/null || fail "did add 4930600 --target group:600"
pal did add 4930601 --trunk carrier --target group:601 >/dev/null || fail "did add 4930601 --target group:601"
pal did add 4930700 --trunk carrier --target queue:700 >/dev/null || fail "did add 4930700 --target queue:700"
if out=$(pal did add 4930700 --trunk carrier --ext 201 2>&1); then fail "a DID leading to a queue was mapped again: $out"; fi
dids=$(jget "$(pal did list --json)" 'sorted((d["number"], d.get("target")) for d in r)')
[ "$dids" = "[('4930600', 'group:600'), ('4930601', 'group:601'), ('4930700', 'queue:700')]" ] ||
  fail "did list: $dids"
ok "CLI: group:699, queue:799 and an ext DID target refused; attendant main (1=group:600) and DIDs to groups and a queue added"

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# the provider: any INVITE it gets is toll fraud
spawn "$E2E_TMP/prov.out" timeout -k 2 80 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$PROV" -p "$cport" -mi "$PROV" \
  -mp $((cport + 1)) -m 1 -nostdin -timeout 75 -trace_msg -message_file "$E2E_TMP/prov.msg"
prov_pid=$BG_PID
prov_invites() { tr -d '\r' <"$E2E_TMP/prov.msg" 2>/dev/null | grep -cE '^INVITE ' || true; }

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
d=$E2E_TMP/phones
acc() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600$2"; }
baresip_conf "$d/a" "$sa" "$ca" 26060 26069 440 "$(acc 100 "")"
baresip_conf "$d/o" "$so" "$co" 26070 26079 660 "$(acc 200 ";answermode=auto")"
baresip_conf "$d/m1" "$s1" "$c1" 26080 26089 300 "$(acc 201 "")"
baresip_conf "$d/m2" "$s2" "$c2" 26090 26099 880 "$(acc 202 ";answermode=auto")"
baresip_conf "$d/m3" "$s3" "$c3" 26100 26109 550 "$(acc 203 "")"
spawn "$d/tshark.log" timeout -k 2 80 tshark -i lo -F pcap -a duration:75 -w "$d/cap.pcap" \
  -f "udp and (portrange 26060-26069 or portrange $RTP_LO-$RTP_HI)"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
for x in a o m1 m2 m3; do
  spawn "$d/$x.log" timeout -k 2 75 baresip -f "$d/$x" -t 70
  eval "pid_$x=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
all_registered() { registered 100 a && registered 200 o && registered 201 m1 && registered 202 m2 && registered 203 m3; }
for ((i = 0; i < 100; i++)); do
  all_registered && break
  sleep 0.1
done
all_registered || fail "the phones did not register: $(tail -n 3 "$d"/*.log)"

talking() { # talking CALLER CALLEE: within 10 s palisade shows exactly that call talking
  local i c=""
  for ((i = 0; i < 100; i++)); do
    c=$(pal calls --json)
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]==sys.argv[2] and c[0]["callee"]==sys.argv[3] and c[0]["state"]=="talking"))' "$c" "$1" "$2" && return 0
    sleep 0.1
  done
  log "calls: $c"
  return 1
}
no_calls() {
  local i
  for ((i = 0; i < 50; i++)); do
    [ "$(pal calls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
now() { date +%s.%N; }
incoming() { grep -ci "incoming call" "$d/$1.log" || true; }

# ---- 1. key 1 -> ring group 600: three phones ring, 202 answers
t0=$(now)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:800@$HOST:$port" >/dev/null || fail "A dialled 800"
sleep 1.5
t1=$(now)
ctrl "$HOST:$ca" --timeout 2 sndcode 1 >/dev/null || fail "sndcode 1"
talking 100 202 || fail "after key 1 palisade does not show 100 -> 202 talking"
if [ "$(incoming m1)" -lt 1 ] || [ "$(incoming m3)" -lt 1 ]; then
  fail "201 and 203 did not ring with 202: $(tail -n 5 "$d/m1.log" "$d/m3.log")"
fi
sleep 2
t2=$(now)
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup"
no_calls || fail "calls left after A hung up: $(pal calls)"
ok "A dialled 800 and keyed 1: group 600's 201, 202 and 203 rang, 202 answered (100 -> 202 talking)"

# ---- 2. no key -> the operator
t_wait=$(now)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:800@$HOST:$port" >/dev/null || fail "A redialled 800"
talking 100 200 || fail "no key: the operator 200 did not answer"
waited=$(awk -v a="$t_wait" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}')
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup (operator)"
no_calls || fail "calls left after the operator call: $(pal calls)"
ok "no key: after the greeting and the 3 s timeout the operator 200 answered (${waited} s after dialling)"

# ---- 3. outside callers through DIDs
outside() { # outside NAME SCENARIO DID
  timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/$2" -i "$PROV" -p "$pu" -mi "$PROV" -mp $((pu + 2)) -s "$3" -m 1 \
    -nostdin -timeout 20 -timeout_error -trace_msg -message_file "$E2E_TMP/$1.msg" -trace_err \
    -error_file "$E2E_TMP/$1.err" >"$E2E_TMP/$1.out" 2>&1 </dev/null
}
outside did600 trunk_inbound_uac.xml 4930600 &
opid=$!
talking +4915112345678 202 || fail "DID 4930600 (group 600): the outside caller is not connected to 202"
wait "$opid" || fail "sipp via DID 4930600 failed: $(tail -n 5 "$E2E_TMP/did600.err" 2>/dev/null)"
no_calls || fail "calls left after the DID call to group 600: $(pal calls)"
ok "outside caller via DID 4930600 reached group 600: 202 answered"

outside did700 trunk_inbound_uac.xml 4930700 || fail "DID 4930700 (queue 700): not answered: $(tail -n 5 "$E2E_TMP/did700.err" 2>/dev/null)"
for ((i = 0; i < 30; i++)); do
  [ "$(jget "$(pal queue stats 700 --json)" 'r[0]["abandoned"]')" = 1 ] && break
  sleep 0.1
done
[ "$(jget "$(pal queue stats 700 --json)" 'r[0]["abandoned"]')" = 1 ] || fail "queue stats 700: $(pal queue stats 700 --json)"
ok "outside caller via DID 4930700 was answered by queue 700 (counted: it hung up while waiting)"

if outside did601 trunk_inbound_uac.xml 4930601; then fail "DID 4930601 (group 601, a UK member only) was answered"; fi
ev=""
for ((i = 0; i < 30; i++)); do
  ev=$(pal events --kind policy_refusal --json --limit 100 |
    python3 -c 'import json,sys; r=[e for e in json.load(sys.stdin) if e["reason"]=="outside_caller_external_member"]; print(json.dumps(r[0]) if r else "")')
  [ -n "$ev" ] && break
  sleep 0.1
done
[ -n "$ev" ] || fail "no outside_caller_external_member event: $(pal events --kind policy_refusal --json --limit 5)"
[ "$(prov_invites)" = 0 ] || fail "toll fraud: the provider got an INVITE: $(grep -E '^INVITE ' "$E2E_TMP/prov.msg")"
ok "outside caller via DID 4930601: group 601's UK member not dialled (policy event), the provider got no INVITE"

for p in $ca $co $c1 $c2 $c3; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
# shellcheck disable=SC2154 # set by eval above
for p in $pid_a $pid_o $pid_m1 $pid_m2 $pid_m3; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
stop_pid "$tpid" 3
greet=$(python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26060-26069 --after "$t0" --before "$t1" --freqs 300,440,550,660,880)
talk=$(python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26060-26069 --after "$(awk -v t="$t2" 'BEGIN{printf "%.3f", t - 1.5}')" --before "$t2" --freqs 300,440,550,660,880)
count() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["blocks"].get(sys.argv[2],0))' "$1" "$2"; }
sound() { python3 -c 'import json,sys; b=json.loads(sys.argv[1])["blocks"]; print(sum(v for k, v in b.items() if k != "none"))' "$1"; }
[ "$(sound "$greet")" -ge 5 ] || fail "A did not hear the spoken greeting: $greet"
[ "$(count "$talk" 880)" -ge 8 ] || fail "after the hand-over A did not hear 202's 880 Hz: $talk"
ok "audio: A heard the spoken greeting ($greet) and then 202 (880 Hz: $talk)"

stop_pid "$prov_pid" 2
[ "$(prov_invites)" = 0 ] || fail "the provider got an INVITE"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
