#!/usr/bin/env bash
# Auto attendant with real phones. `attendant add main --number 800 --greeting g.wav (a 1 kHz tone, 44.1 kHz WAV:
# converted on upload) --option 1=ext:210 --option 0=ext:200 --timeout 3 --dial-by-extension`; DID 4930555 of
# trunk `carrier` (sipp provider on 127.0.0.5) answered by it. Outbound rule 00 -> carrier and country 44 allowed:
# an extension could dial the UK, the attendant must not.
#   * CLI refusals: a trunk target, a group that does not exist, an unknown after-hours attendant;
#   * baresip A (100, 440 Hz) dials 800: it hears the greeting (1 kHz), keys 3 (ext 220, no phone: the hand-over
#     fails and the menu plays again), then 1 (RFC 4733): 210 (baresip, 880 Hz, auto-answer) rings and answers,
#     `palisade calls` shows 100 -> 210 talking and A hears 880 Hz;
#   * A dials 800 and keys nothing: after the greeting and 3 s, the operator 200 (baresip, auto-answer) answers;
#   * an outside caller through the DID (sipp on the trunk's address) keys 0 0 4 4 1 # by SIP INFO (dial by
#     extension): refused with a policy event attendant_target_refused, the provider gets no INVITE;
#   * the same caller keys 2 1 0 #: reaches extension 210 (dial by extension works for real extensions).
# Ports: SIP/ctrl from free_port in 26770-26789, baresip RTP 26600-26639 (shared with test_moh_baresip: the
# tests run one at a time), palisade relay 26640-26669.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26770 E2E_PORT_MAX=26799
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 sox tshark sipp

RTP_LO=26640 RTP_HI=26669
PROV=127.0.0.5
CTRL=$E2E_DIR/baresip_ctrl.py
TONES=$E2E_DIR/rtp_tones.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
for n in 100 200 210 220; do
  "$PALISADE_BIN" ext add-range "$n" "$n" --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
    fail "ext add-range $n $n"
done
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

base=$(free_port 20)
port=$base cport=$((base + 1)) pu=$((base + 6))
sa=$((base + 10)) so=$((base + 13)) ss_=$((base + 16))
ca=$((sa + 2)) co=$((so + 2)) cs=$((ss_ + 2))

pal policy set country_code 49 >/dev/null
pal policy set international_prefix 00 >/dev/null
pal policy set national_prefix 0 >/dev/null
pal policy set allowed_country_codes 44 >/dev/null
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --source "$PROV/32" >/dev/null ||
  fail "trunk add carrier"
pal rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add intl"

sox -n -r 44100 -c 1 -b 16 "$E2E_TMP/g.wav" synth 2 sine 1000 vol 0.4
if out=$(pal attendant add bad --greeting "$E2E_TMP/g.wav" --option 1=trunk:carrier 2>&1); then
  fail "a trunk target was accepted: $out"
fi
case $out in *"unknown target kind"*) ;; *) fail "trunk target: unclear error: $out" ;; esac
if out=$(pal attendant add bad --greeting "$E2E_TMP/g.wav" --option 1=group:600 2>&1); then fail "a missing group accepted: $out"; fi
case $out in *"ring group 600 does not exist"*) ;; *) fail "group target: unclear error: $out" ;; esac
if out=$(pal attendant add bad --greeting "$E2E_TMP/g.wav" --after-hours night 2>&1); then fail "unknown after-hours: $out"; fi
case $out in *"attendant night does not exist"*) ;; *) fail "after-hours: unclear error: $out" ;; esac
pal attendant add main --number 800 --greeting "$E2E_TMP/g.wav" --option 1=ext:210 --option 0=ext:200 \
  --option 3=ext:220 --timeout 3 --dial-by-extension >/dev/null || fail "attendant add main"
pal attendant did add 4930555 --trunk carrier --attendant main >/dev/null || fail "attendant did add"
ok "attendant CLI: trunk and group targets and an unknown after-hours attendant refused; main added on 800 and DID 4930555"

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# the provider: any INVITE it gets is toll fraud
spawn "$E2E_TMP/prov.out" timeout -k 2 60 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$PROV" -p "$cport" -mi "$PROV" \
  -mp $((cport + 1)) -m 1 -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/prov.msg"
prov_pid=$BG_PID
prov_invites() { tr -d '\r' <"$E2E_TMP/prov.msg" 2>/dev/null | grep -cE '^INVITE ' || true; }

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
d=$E2E_TMP/phones
acc() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600$2"; }
baresip_conf "$d/a" "$sa" "$ca" 26600 26614 440 "$(acc 100 "")"
baresip_conf "$d/o" "$so" "$co" 26615 26624 660 "$(acc 200 ";answermode=auto")"
baresip_conf "$d/s" "$ss_" "$cs" 26625 26639 880 "$(acc 210 ";answermode=auto")"
spawn "$d/tshark.log" timeout -k 2 60 tshark -i lo -F pcap -a duration:55 -w "$d/cap.pcap" \
  -f "udp and portrange 26600-26669"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
for x in a o s; do
  spawn "$d/$x.log" timeout -k 2 55 baresip -f "$d/$x" -t 50
  eval "pid_$x=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 200 o && registered 210 s && break
  sleep 0.1
done
if ! registered 100 a || ! registered 200 o || ! registered 210 s; then
  show "$d/a.log"
  fail "the phones did not register"
fi

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

# ---- 1. key 1 -> 210
t0=$(now)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:800@$HOST:$port" >/dev/null || fail "A dialled 800"
sleep 1.2
t1=$(now)
# 3 leads to 220, which has no phone: back to the menu, and the caller can choose again.
ctrl "$HOST:$ca" --timeout 2 sndcode 3 >/dev/null || fail "sndcode 3"
for ((i = 0; i < 30; i++)); do
  grep -q 'transfer failed' "$PAL_ERR" && break
  sleep 0.1
done
grep -q 'transfer failed' "$PAL_ERR" || fail "key 3 (220, no phone): no failed hand-over logged"
sleep 0.5
ctrl "$HOST:$ca" --timeout 2 sndcode 1 >/dev/null || fail "sndcode 1"
talking 100 210 || fail "after key 1 palisade does not show 100 -> 210 talking"
sleep 2
t2=$(now)
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup"
no_calls || fail "calls left after A hung up: $(pal calls)"
ok "A dialled 800, keyed 3 (220 has no phone: back to the menu), then 1: 210 answered, palisade showed 100 -> 210 talking"

# ---- 2. no key -> the operator
t_wait=$(now)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:800@$HOST:$port" >/dev/null || fail "A redialled 800"
talking 100 200 || fail "no key: the operator 200 did not answer"
waited=$(awk -v a="$t_wait" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}')
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup (operator)"
no_calls || fail "calls left after the operator call: $(pal calls)"
ok "no key: after the greeting and the 3 s timeout the operator 200 answered (${waited} s after dialling)"

stop_pid "$tpid" 3
greet=$(python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26600-26614 --after "$t0" --before "$t1" --freqs 440,660,880,1000)
talk=$(python3 "$TONES" "$d/cap.pcap" --src "$RTP_LO-$RTP_HI" --dst 26600-26614 --after "$(awk -v t="$t2" 'BEGIN{printf "%.3f", t - 1.5}')" --before "$t2" --freqs 440,660,880,1000)
count() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["blocks"].get(sys.argv[2],0))' "$1" "$2"; }
[ "$(count "$greet" 1000)" -ge 5 ] || fail "A did not hear the 1 kHz greeting: $greet"
[ "$(count "$talk" 880)" -ge 8 ] || fail "after the hand-over A did not hear 210's 880 Hz: $talk"
ok "audio: A heard the greeting (1 kHz: $greet) and then 210 (880 Hz: $talk)"

# ---- 3. outside caller through the DID: dial by extension to the UK is refused
refusals() { pal events --kind policy_refusal --json --limit 100; }
outside() { # outside NAME "k;k;k;k;k;k" HOLD_MS
  printf 'SEQUENTIAL\n%s\n' "$2" >"$E2E_TMP/$1.csv"
  (cd "$E2E_TMP" && timeout -k 2 30 sipp -sf "$SCEN/attendant_trunk_info.xml" -inf "$E2E_TMP/$1.csv" -i "$PROV" \
    -p "$pu" -mi "$PROV" -mp $((pu + 2)) -s 4930555 -m 1 -d "$3" -nostdin -timeout 25 -timeout_error \
    -trace_err -error_file "$E2E_TMP/$1.err" "$HOST:$port" >"$E2E_TMP/$1.out" 2>&1)
}
outside fraud "0;0;4;4;1;#" 2500 || fail "sipp (outside caller, 00441#) failed: $(tail -3 "$E2E_TMP/fraud.err" 2>/dev/null)"
ev=$(refusals | python3 -c 'import json,sys; r=[e for e in json.load(sys.stdin) if e["reason"]=="attendant_target_refused"]; print(json.dumps(r[0]) if r else "")')
[ -n "$ev" ] || fail "no attendant_target_refused event: $(refusals)"
case $ev in *"outside caller may not reach ext:00441"*) ;; *) fail "the refusal event: $ev" ;; esac
[ "$(prov_invites)" = 0 ] || fail "toll fraud: the provider got an INVITE: $(grep -E '^INVITE ' "$E2E_TMP/prov.msg")"
ok "outside caller via DID keyed 00441#: refused ($ev), the provider got no INVITE"

# ---- 4. the same outside caller dials 210 by extension: connected
outside ext "2;1;0;#;#;#" 3000 &
opid=$!
talking +4915112345678 210 || fail "the outside caller keyed 210#: not connected to 210"
wait "$opid" || fail "sipp (outside caller, 210#) failed: $(tail -3 "$E2E_TMP/ext.err" 2>/dev/null)"
ok "outside caller via DID keyed 210#: connected to extension 210"

for p in $ca $co $cs; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
# shellcheck disable=SC2154 # set by eval above
for p in $pid_a $pid_o $pid_s; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
stop_pid "$prov_pid" 2
[ "$(prov_invites)" = 0 ] || fail "the provider got an INVITE"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
