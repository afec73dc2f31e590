#!/usr/bin/env bash
# Issue 12 item 2: a rule about where an extension may be used holds for everything its credentials
# authenticate, not only REGISTER. `policy set local_networks 127.0.0.1/32`; 300 is `--lan-only true`.
#   * attack first, from 127.0.0.2 (outside) with 300's right password: a call (call_client.py INVITE to
#     999, 407 answered) gets 403, a message-waiting SUBSCRIBE (sipp scenarios/mwi_subscribe_once.xml) gets
#     403; each leaves a policy_refusal event lan_only from 127.0.0.2 naming the method; no call record;
#   * then from 127.0.0.1 (inside): the same call is answered (200, by the voicemail) and the subscription
#     gets 200 and its NOTIFYs; inside that answered call an INFO sent from 127.0.0.2 gets 403 (a lan_only event
#     "INFO inside a dialog"), one from the caller's own socket 200;
#   * --require-tls: the same call from inside over UDP gets 403 and a tls_required event.
# Before the fix the INVITE and the SUBSCRIBE from outside were served.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

INSIDE=127.0.0.1 OUTSIDE=127.0.0.2
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add-range 300 300 2>/dev/null | grep -E '^[0-9]+,' >"$csv" || fail "ext add-range 300 300"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
pal ext set 300 --lan-only true >/dev/null || fail "ext set 300 --lan-only true"
pal policy set local_networks 127.0.0.1/32 >/dev/null || fail "policy set local_networks 127.0.0.1/32"

port=$(free_port)
rtp=$((45000 + (port - E2E_PORT_MIN) * 10))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$rtp-$((rtp + 9))"

# call_from SRC -> call_client's JSON for 300 calling 999 (its mailbox) from SRC
call_from() { # call_from SRC [call_client options...]
  local src=$1
  shift
  timeout -k 2 30 python3 "$CLIENT" call "$HOST:$port" 300 "$(cred 300 2)" "$(cred 300 3)" 999 --src "$src" --wait 10 "$@"
}
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }
# subscribe_from NAME SRC -> sipp's exit status; messages in $E2E_TMP/NAME.msg
subscribe_from() {
  local lport rc=0
  lport=$(free_port)
  timeout -k 2 20 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/mwi_subscribe_once.xml" -s 300 \
    -au "$(cred 300 2)" -ap "$(cred 300 3)" -i "$2" -p "$lport" -m 1 -nostdin -timeout 15 -recv_timeout 5000 \
    -trace_msg -message_file "$E2E_TMP/$1.msg" >"$E2E_TMP/$1.out" 2>&1 </dev/null || rc=$?
  return "$rc"
}
statuses() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^SIP/2.0 ' | cut -d' ' -f2 | tr '\n' ' '; }
# refusals REASON METHOD SRC -> how many policy_refusal events with REASON name METHOD and come from SRC
refusals() {
  pal events --kind policy_refusal --json --limit 1000 | python3 -c '
import json, sys
reason, method, src = sys.argv[1:4]
print(sum(1 for e in json.load(sys.stdin) if e.get("reason") == reason and method in (e.get("detail") or "")
          and str(e.get("source", "")).startswith(src + ":")))' "$1" "$2" "$3"
}
wait_refusal() { # wait_refusal REASON METHOD SRC: the event is written behind (0.5 s)
  local i
  for ((i = 0; i < 30; i++)); do
    [ "$(refusals "$@")" -ge 1 ] && return 0
    sleep 0.1
  done
  fail "no policy_refusal $1 event for $2 from $3: $(pal events --kind policy_refusal --limit 20)"
}

# ---- 1. outside: the call and the subscription are refused
r=$(call_from "$OUTSIDE") || fail "call from $OUTSIDE: $r"
[ "$(jget "$r" challenge)/$(jget "$r" final)" = 407/403 ] ||
  fail "300 (lan-only) calling 999 from $OUTSIDE: expected 407 then 403, got $r"
wait_refusal lan_only INVITE "$OUTSIDE"
ok "call from $OUTSIDE: 407 then $(jget "$r" final); policy_refusal lan_only (INVITE)"

rc=0
subscribe_from sub_out "$OUTSIDE" || rc=$?
st=$(statuses sub_out)
[ "$rc" != 0 ] || fail "SUBSCRIBE of 300 from $OUTSIDE succeeded ($st)"
case $st in "407 403"*) ;; *) fail "SUBSCRIBE of 300 from $OUTSIDE: expected 407 then 403, got '$st'" ;; esac
wait_refusal lan_only SUBSCRIBE "$OUTSIDE"
ok "SUBSCRIBE from $OUTSIDE: $st; policy_refusal lan_only (SUBSCRIBE)"

# ---- 2. inside: both work
r=$(call_from "$INSIDE") || fail "call from $INSIDE: $r"
[ "$(jget "$r" final)" = 200 ] || fail "300 calling 999 from $INSIDE: expected 200 (voicemail), got $r"
ok "call from $INSIDE: 407 then $(jget "$r" final), BYE $(jget "$r" bye)"
# inside the call started from inside: an INFO from outside is refused, one from the caller's socket is not
r=$(call_from "$INSIDE" --probe-from "$OUTSIDE") || fail "call from $INSIDE with an in-dialog probe: $r"
[ "$(jget "$r" final)/$(jget "$r" probe_other)/$(jget "$r" probe_same)" = 200/403/200 ] ||
  fail "in-dialog INFO: expected 403 from $OUTSIDE and 200 from $INSIDE, got $r"
# Two rules refuse it: the call's own (in-dialog requests only from the leg's signalling flow) fires first; the
# location rule ("INFO inside a dialog") covers a request from another registered flow of the extension.
in_dialog_event='INFO inside a dialog|INFO in call .* from outside the leg'"'"'s signalling'
pal events --kind policy_refusal --json --limit 1000 | grep -Eq "$in_dialog_event" || sleep 1
pal events --kind policy_refusal --json --limit 1000 | grep -Eq "$in_dialog_event" ||
  fail "no policy_refusal event for the in-dialog INFO from $OUTSIDE"
ok "INFO inside 300's call: from $OUTSIDE -> $(jget "$r" probe_other) (policy event), from $INSIDE -> $(jget "$r" probe_same)"
rc=0
subscribe_from sub_in "$INSIDE" || rc=$?
st=$(statuses sub_in)
[ "$rc" = 0 ] || fail "SUBSCRIBE of 300 from $INSIDE failed: exit $rc, statuses '$st' ($(tail -n 5 "$E2E_TMP/sub_in.out"))"
ok "SUBSCRIBE from $INSIDE: $st"
[ "$(refusals lan_only "" "$INSIDE")" = 0 ] || fail "lan_only refusals from $INSIDE"

# ---- 3. TLS required: the same call over UDP from inside is refused
pal ext set 300 --lan-only false --require-tls true >/dev/null || fail "ext set 300 --require-tls true"
for ((i = 0; i < 20; i++)); do
  r=$(call_from "$INSIDE") || fail "call from $INSIDE: $r"
  [ "$(jget "$r" final)" = 403 ] && break
  sleep 0.25
done
[ "$(jget "$r" final)" = 403 ] || fail "300 (--require-tls) calling over UDP: expected 403, got $r"
wait_refusal tls_required INVITE "$INSIDE"
ok "--require-tls: call over UDP from $INSIDE: $(jget "$r" final); policy_refusal tls_required (INVITE)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
