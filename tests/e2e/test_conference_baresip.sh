#!/usr/bin/env bash
# Conference rooms with real phones, over UDP. `conference add 900 --pin 4826`; `policy set
# pin_failures_before_lockout 3`. Headless baresip A (100, 440 Hz), B (101, 660 Hz), C (102, 880 Hz).
#   * CLI refusals: a room on an extension's number, a second room 900, a trivial PIN, mute of nobody;
#   * A, B and C dial 900 and key 4826# (RFC 4733): `conference participants 900` lists the three; sipp as 103
#     joins with the PIN sent by SIP INFO and is listed as a fourth;
#   * the mix (loopback capture, tests/e2e/rtp_tones.py): each phone receives the other two tones and not its own;
#   * `conference mute 900 N` (A): B stops hearing 440 Hz but still hears C; `conference kick 900 N` (C): C's call
#     ends;
#   * PIN lockout: A hangs up, dials again and keys a wrong PIN three times: the call ends, events
#     conference_pin_wrong and conference_pin_lockout; the right PIN is then refused (conference_locked) and A is
#     not let in; `conference unlock 900` lifts it and the right PIN joins again.
# Ports: SIP/ctrl from free_port in 26670-26689, baresip RTP 26690-26729, palisade relay 26730-26769.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26670 E2E_PORT_MAX=26689
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need baresip python3 tshark sipp

RTP_LO=26730 RTP_HI=26769
CTRL=$E2E_DIR/baresip_ctrl.py
TONES=$E2E_DIR/rtp_tones.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 103 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 103"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
PIN=4826

pal policy set pin_failures_before_lockout 3 >/dev/null || fail "policy set pin_failures_before_lockout 3"
if out=$(pal conference add 100 2>&1); then fail "a room on extension 100's number was accepted: $out"; fi
case $out in *"100 is an extension"*) ;; *) fail "conference add 100: unclear error: $out" ;; esac
if out=$(pal conference add 900 --pin 1234 2>&1); then fail "a trivial PIN was accepted: $out"; fi
case $out in *"PIN refused"*) ;; *) fail "conference add --pin 1234: unclear error: $out" ;; esac
pal conference add 900 --pin "$PIN" >/dev/null || fail "conference add 900"
if out=$(pal conference add 900 2>&1); then fail "a second room 900 was accepted: $out"; fi
case $out in *"already exists"*) ;; *) fail "second conference add 900: unclear error: $out" ;; esac
if out=$(pal conference mute 900 1 2>&1); then fail "mute of nobody succeeded: $out"; fi
case $out in *"participant 1 in conference 900 is not in the room"*) ;; *) fail "mute of nobody: $out" ;; esac
ok "conference CLI refuses an extension's number, a duplicate, a trivial PIN and a mute of nobody"

base=$(free_port 16)
port=$base sa=$((base + 1)) sb=$((base + 4)) sc=$((base + 7)) sp=$((base + 10))
ca=$((sa + 2)) cb=$((sb + 2)) cc=$((sc + 2))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
d=$E2E_TMP/phones
acc() { echo "<sip:$1@$HOST:$port;transport=udp>;auth_user=$(cred "$1" 2);auth_pass=$(cred "$1" 3);regint=600"; }
baresip_conf "$d/a" "$sa" "$ca" 26690 26699 440 "$(acc 100)"
baresip_conf "$d/b" "$sb" "$cb" 26700 26709 660 "$(acc 101)"
baresip_conf "$d/c" "$sc" "$cc" 26710 26719 880 "$(acc 102)"

spawn "$d/tshark.log" timeout -k 2 60 tshark -i lo -F pcap -a duration:55 -w "$d/cap.pcap" \
  -f "udp and portrange 26690-26769"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark.log" && break
  sleep 0.1
done
for x in a b c; do
  spawn "$d/$x.log" timeout -k 2 55 baresip -f "$d/$x" -t 50
  eval "pid_$x=\$BG_PID"
done
registered() { grep -q "$1@$HOST: {0/UDP/v4} 200 OK" "$d/$2.log"; }
for ((i = 0; i < 100; i++)); do
  registered 100 a && registered 101 b && registered 102 c && break
  sleep 0.1
done
if ! registered 100 a || ! registered 101 b || ! registered 102 c; then
  show "$d/a.log"
  fail "the three phones did not register"
fi

in_room() { pal conference participants 900 --json | python3 -c 'import json,sys; print(" ".join(p["caller"] for p in json.load(sys.stdin)))'; }
position_of() { pal conference participants 900 --json | python3 -c 'import json,sys; print([p["participant"] for p in json.load(sys.stdin) if p["caller"]==sys.argv[1]][0])' "$1"; }
wait_room() { # wait_room "CALLERS" — the room holds exactly these callers (sorted), within 6 s
  local i got=""
  for ((i = 0; i < 60; i++)); do
    got=$(in_room | tr ' ' '\n' | sort | xargs)
    [ "$got" = "$1" ] && return 0
    sleep 0.1
  done
  log "in the room: '$got', want '$1'"
  return 1
}
join() { # join CTRL_PORT KEYS
  ctrl "$HOST:$1" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:900@$HOST:$port" >/dev/null ||
    fail "dial 900 from ctrl $1: not established"
  sleep 0.8
  ctrl "$HOST:$1" --timeout 2 sndcode "$2" >/dev/null || fail "sndcode from ctrl $1"
}
join "$ca" "$PIN#"
join "$cb" "$PIN#"
join "$cc" "$PIN#"
wait_room "100 101 102" || fail "A, B and C are not all in room 900"
ok "A, B and C joined 900 with the PIN by RFC 4733: participants $(in_room)"

# sipp as 103: the PIN by SIP INFO, then it stays 3 s.
printf 'SEQUENTIAL\n103;%s;%s;900;4;8;2;6\n' "$(cred 103 2)" "$(cred 103 3)" >"$E2E_TMP/info.csv"
spawn "$E2E_TMP/info.out" timeout -k 2 30 sipp -sf "$SCEN/vm_uac_info.xml" -inf "$E2E_TMP/info.csv" -i "$HOST" \
  -p "$sp" -mi "$HOST" -mp $((sp + 2)) -m 1 -d 3000 -nostdin -timeout 25 -timeout_error -trace_err \
  -error_file "$E2E_TMP/info.err" "$HOST:$port"
sipp_pid=$BG_PID
wait_room "100 101 102 103" || fail "sipp 103 (PIN by SIP INFO) did not join"
ok "103 joined with the PIN by SIP INFO: participants $(in_room)"

now() { date +%s.%N; }
t0=$(now)
sleep 3
t1=$(now)
heard() { # heard PHONE_LO-HI FROM TO -> JSON with mean powers
  python3 "$TONES" "$pcap" --src "$RTP_LO-$RTP_HI" --dst "$1" --after "$2" --before "$3" --freqs 440,660,880
}
power() { python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["power"].get(sys.argv[2], 0)))' "$1" "$2"; }
# check_mix NAME RANGE OWN OTHER1 OTHER2 RESULT: the others' tones loud, its own absent
check_mix() {
  local name=$1 r=$6 own o1 o2
  own=$(power "$r" "$3") o1=$(power "$r" "$4") o2=$(power "$r" "$5")
  if [ "$o1" -lt 100000 ] || [ "$o2" -lt 100000 ] || [ "$own" -gt $((o1 / 100)) ] || [ "$own" -gt $((o2 / 100)) ]; then
    fail "$name hears $3 Hz (own) at $own, $4 Hz at $o1, $5 Hz at $o2: $r"
  fi
  ok "$name hears $4 Hz ($o1) and $5 Hz ($o2), not its own $3 Hz ($own)"
}
stop_pid "$tpid" 3
pcap=$d/cap.pcap
check_mix A "26690-26699" 440 660 880 "$(heard 26690-26699 "$t0" "$t1")" &&
  check_mix B "26700-26709" 660 440 880 "$(heard 26700-26709 "$t0" "$t1")" &&
  check_mix C "26710-26719" 880 440 660 "$(heard 26710-26719 "$t0" "$t1")"

wait "$sipp_pid" || fail "sipp 103 did not complete (INFO PIN, 3 s in the room, BYE): $(tail -3 "$E2E_TMP/info.err" 2>/dev/null)"
wait_room "100 101 102" || fail "103 hung up but is still listed"

# mute A, kick C
spawn "$d/tshark2.log" timeout -k 2 30 tshark -i lo -F pcap -a duration:25 -w "$d/cap2.pcap" \
  -f "udp and portrange 26690-26769"
tpid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$d/tshark2.log" && break
  sleep 0.1
done
pa=$(position_of 100)
pal conference mute 900 "$pa" >/dev/null || fail "conference mute 900 $pa"
sleep 1.2
pal conference participants 900 --json | python3 -c 'import json,sys; sys.exit(not any(p["muted"] for p in json.load(sys.stdin)))' || fail "the mute is not shown: $(pal conference participants 900)"
t2=$(now)
sleep 2
t3=$(now)
pc=$(position_of 102)
pal conference kick 900 "$pc" >/dev/null || fail "conference kick 900 $pc"
for ((i = 0; i < 100; i++)); do
  grep -q 'terminated' "$d/c.log" && break
  sleep 0.1
done
grep -q 'terminated' "$d/c.log" || fail "C was kicked but its call did not close"
wait_room "100 101" || fail "C still listed after the kick"
stop_pid "$tpid" 3
pcap=$d/cap2.pcap
mb=$(heard 26700-26709 "$t2" "$t3")
if [ "$(power "$mb" 880)" -lt 100000 ] || [ "$(power "$mb" 440)" -gt $(($(power "$mb" 880) / 100)) ]; then
  fail "after muting A, B hears 440 Hz at $(power "$mb" 440) and 880 Hz at $(power "$mb" 880): $mb"
fi
ok "muted A (participant $pa): B hears C's 880 Hz but not A's 440 Hz; kicked C (participant $pc): its call closed"

# PIN lockout across calls (3 failures)
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >/dev/null || fail "A's hangup"
# ended N: A's log shows more than N ended calls within 15 s
ended_calls() { grep -c 'terminated' "$d/a.log" || true; }
ended() {
  local i
  for ((i = 0; i < 150; i++)); do
    [ "$(ended_calls)" -gt "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
n=$(ended_calls)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:900@$HOST:$port" >/dev/null || fail "A redial"
for try in 1 2 3; do
  sleep 1
  ctrl "$HOST:$ca" --timeout 2 sndcode "1357#" >/dev/null || fail "sndcode wrong PIN $try"
done
ended "$n" || fail "three wrong PINs but A's call did not end"
events() { pal events --json --limit 200 | python3 -c 'import json,sys; print(" ".join(e["reason"] for e in json.load(sys.stdin) if e["reason"].startswith("conference")))'; }
ev=$(events)
case $ev in *conference_pin_lockout*conference_pin_wrong*) ;; *) fail "events after three wrong PINs: $ev" ;; esac
pal conference list --json | python3 -c 'import json,sys; sys.exit(not json.load(sys.stdin)[0]["locked_until"])' || fail "conference list shows no lockout: $(pal conference list)"
n=$(ended_calls)
ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:900@$HOST:$port" >/dev/null || fail "A redial 2"
sleep 1
ctrl "$HOST:$ca" --timeout 2 sndcode "$PIN#" >/dev/null || fail "sndcode right PIN while locked"
ended "$n" || fail "the room was locked but A's call did not end"
[ "$(in_room)" = 101 ] || fail "A got in while the room was locked: $(in_room)"
case $(events) in conference_locked*) ;; *) fail "no conference_locked event: $(events)" ;; esac
ok "three wrong PINs ended the call and locked the room ($(events)); the right PIN was then refused"
pal conference unlock 900 >/dev/null || fail "conference unlock 900"
join "$ca" "$PIN#"
wait_room "100 101" || fail "after conference unlock the right PIN did not let A in"
ok "conference unlock 900: the right PIN joins again"

for p in $ca $cb $cc; do ctrl "$HOST:$p" --timeout 2 quit >/dev/null 2>&1 || true; done
# shellcheck disable=SC2154 # set by eval above
for p in $pid_a $pid_b $pid_c; do wait_exit "$p" 5 || true; stop_pid "$p" 2; done
wait_room "" || fail "participants left after everyone hung up: $(in_room)"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
