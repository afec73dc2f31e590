#!/usr/bin/env bash
# Issue 12 item 1: voicemail PIN guessing across calls. `policy set pin_failures_before_lockout 3` (the minimum):
#   * sipp (100) leaves 101 a message (101 is not registered, its mailbox answers);
#   * attack: 101's credentials guess the PIN over three calls, each with one wrong PIN — 999 with the PIN by SIP
#     INFO (vm_uac_info.xml), 777+0000 (call_client.py), 999 again: the third locks the mailbox (an auth_failure
#     event voicemail_pin_lockout); no call ever reached three wrong PINs, so the per-call limit alone would
#     never have stopped this;
#   * while locked the right PIN is refused too, by 999 (the message stays new; an event
#     voicemail_mailbox_locked) and by 777+PIN (no pin_unlock event); `ext show 101` says LOCKED;
#   * `ext unlock-pin 101` on the running server lifts it: `ext show` no longer says LOCKED and the right PIN by
#     999 logs in (the message is played and marked heard).
# Ports: signalling 26400-26799 (E2E_PORT_MIN/MAX), relay inside 45000-49999.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 sox

SCEN=$E2E_DIR/scenarios
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password,4=PIN)
pin=$(cred 101 4)
[ "$pin" != 0000 ] || fail "the generated PIN is 0000 (never: one digit repeated)"
pal policy set pin_failures_before_lockout 3 >/dev/null || fail "policy set pin_failures_before_lockout 3"
pal ext set 101 --pin-protect true >/dev/null || fail "ext set 101 --pin-protect true" # 777 answers only then

port=$(free_port)
rtp=$((45000 + (port - E2E_PORT_MIN) * 10))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$rtp-$((rtp + 9))"

sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 12 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"

# run_uac NAME SCENARIO HOLD_MS INJECTION_LINE: one sipp UAC call, exit status checked. sipp binds -p and
# -mp .. -mp+3 (audio and video RTP/RTCP): all six ports come from one free_port block.
run_uac() {
  local name=$1 scen=$2 hold=$3 line=$4 block rc=0
  printf 'SEQUENTIAL\n%s\n' "$line" >"$E2E_TMP/$name.csv"
  block=$(free_port 6)
  (cd "$E2E_TMP" && timeout -k 2 40 sipp -sf "$SCEN/$scen" -inf "$E2E_TMP/$name.csv" -i "$HOST" -p "$block" \
    -mi "$HOST" -mp $((block + 2)) -m 1 -d "$hold" -nostdin -timeout 30 -timeout_error \
    -trace_err -error_file "$E2E_TMP/$name.err" "$HOST:$port" >"$E2E_TMP/$name.out" 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "sipp $name exited $rc: $(tail -3 "$E2E_TMP/$name.err" 2>/dev/null)"
}
digits() { echo "$1" | sed 's/./&;/g; s/;$//'; }
vm999() { run_uac "$1" vm_uac_info.xml 2000 "101;$(cred 101 2);$(cred 101 3);999;$(digits "$2")"; }
call777() { # call777 PIN -> the final status of 101 calling 777+PIN
  local out
  out=$(timeout -k 2 30 python3 "$CLIENT" call "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" "777$1") ||
    fail "call 777: $out"
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["final"])' "$out"
}
message_new() { pal voicemail list 101 --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[0]["new"] if m else "none")'; }
count_events() { # count_events REASON -> events with that reason
  pal events --json --limit 1000 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("reason") == sys.argv[1]))' "$1"
}
wait_event() { # wait_event REASON MIN: at least MIN such events (written behind, 0.5 s)
  local i
  for ((i = 0; i < 40; i++)); do
    [ "$(count_events "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "fewer than $2 '$1' events: $(pal events --limit 20)"
}
show_lockout() { pal ext show 101 | grep -i 'PIN lockout' || true; }

# ---- a message to protect
run_uac deposit call_uac_rtp.xml 10000 "100;$(cred 100 2);$(cred 100 3);101"
for ((i = 0; i < 30; i++)); do
  [ "$(message_new)" = True ] && break
  sleep 0.1
done
[ "$(message_new)" = True ] || fail "no new message for 101 after the unanswered call"
ok "100 left 101 a message"

# ---- 1. the attack: one wrong PIN per call, across 999 and 777
vm999 guess1 0000
wait_event voicemail_pin_wrong 1
r=$(call777 0000)
[ "$r" = 200 ] || fail "777+0000 not answered by the unlock dialogue: $r"
wait_event voicemail_pin_wrong 2
[ "$(count_events voicemail_pin_lockout)" = 0 ] || fail "locked after two wrong PINs (limit 3)"
case $(show_lockout) in *LOCKED*) fail "ext show says locked after two wrong PINs: $(show_lockout)" ;; esac
vm999 guess3 0000
wait_event voicemail_pin_lockout 1
ok "three wrong PINs over three calls (999, 777, 999): voicemail_pin_lockout event; $(show_lockout)"

# ---- 2. while locked the right PIN is refused, by 999 and by 777
vm999 locked_right "$pin"
wait_event voicemail_mailbox_locked 1
sleep 0.5
[ "$(message_new)" = True ] || fail "the right PIN opened a locked mailbox (message no longer new)"
[ "$(call777 "$pin")" = 200 ] || fail "777+PIN not answered"
wait_event voicemail_mailbox_locked 2
[ "$(count_events pin_unlock)" = 0 ] || fail "777 + the right PIN unlocked external calls while the mailbox was locked"
case $(show_lockout) in *LOCKED*) ;; *) fail "ext show 101 does not say LOCKED: $(pal ext show 101)" ;; esac
ok "locked: the right PIN refused by 999 (message still new) and by 777 (no pin_unlock); $(show_lockout)"

# ---- 3. unlock-pin on the running server, then the right PIN works
pal ext unlock-pin 101 >"$E2E_TMP/unlock.out" || fail "ext unlock-pin 101: $(cat "$E2E_TMP/unlock.out")"
grep -q unlocked "$E2E_TMP/unlock.out" || fail "ext unlock-pin did not say it unlocked: $(cat "$E2E_TMP/unlock.out")"
case $(show_lockout) in *LOCKED*) fail "still LOCKED after unlock-pin: $(show_lockout)" ;; esac
run_uac right vm_uac_info.xml 4000 "101;$(cred 101 2);$(cred 101 3);999;$(digits "$pin")"
for ((i = 0; i < 30; i++)); do
  [ "$(message_new)" = False ] && break
  sleep 0.1
done
[ "$(message_new)" = False ] || fail "the right PIN after unlock-pin did not log in (message still new)"
ok "after ext unlock-pin: the right PIN logs in (message heard); $(show_lockout)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
