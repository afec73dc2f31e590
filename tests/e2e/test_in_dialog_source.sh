#!/usr/bin/env bash
# In-dialog requests only from the call's own signalling address (issue 12 item 9):
#   * 200 (dialog_hijack.py, on 127.0.0.1) calls 101 (a sipp UAS with RTP echo) and sends RTP through the relay;
#   * an attacker on 127.0.0.66 sends a BYE and then a re-INVITE (SDP pointing at itself) with the call's
#     Call-ID, tags and Request-URI: both get 403, the callee gets no BYE, the caller no BYE, and the echo keeps
#     coming back through the relay; `palisade events` holds `policy_refusal` events `in_dialog_foreign_source`;
#   * the caller's own BYE then gets 200 and the call record says the caller hung up;
#   * a CANCEL from 127.0.0.66 copying a ringing INVITE's Via, Call-ID, tags and CSeq (callee 102: a sipp UAS that
#     only rings) cancels nothing: the INVITE keeps ringing, and the caller's own CANCEL then gets 200 and 487.
# Before the fix the attacker's BYE got 200 and ended the call.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3

RTP_LO=40300 RTP_HI=40399
SCEN=$E2E_DIR/scenarios
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 101 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 101 102"
"$PALISADE_BIN" ext add-range 200 200 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
  fail "ext add-range 200 200"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# The callee: 101 registered from the UAS's port (sipp binds its SIP port and media ports mp..mp+3).
ublock=$(free_port 6)
uport=$ublock umedia=$((ublock + 2))
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$uport" --bind "$uport") || fail "register 101: $r"
case $r in *'"final": 200'*) ;; *) fail "register 101 -> $HOST:$uport: $r" ;; esac
spawn "$E2E_TMP/uas.out" timeout -k 2 30 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$uport" \
  -mi "$HOST" -mp "$umedia" -rtp_echo -m 1 -nostdin -timeout 25 -trace_err -error_file "$E2E_TMP/uas.err"
upid=$BG_PID
sleep 0.5
alive "$upid" || {
  show "$E2E_TMP/uas.out"
  fail "sipp UAS did not start"
}

res=$(timeout -k 2 30 python3 "$E2E_DIR/dialog_hijack.py" "$HOST:$port" 200 "$(cred 200 2)" "$(cred 200 3)" 101 127.0.0.66) || {
  show "$PAL_ERR" 20
  fail "dialog_hijack.py: $res"
}
log "result: $res"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$res" "$1"; }

# The attack first.
[ "$(field attack_bye)" = 403 ] || fail "a BYE from 127.0.0.66 with the call's identifiers got $(field attack_bye) (want 403)"
[ "$(field attack_reinvite)" = 403 ] || fail "a re-INVITE from 127.0.0.66 got $(field attack_reinvite) (want 403)"
[ "$(field server_bye)" = False ] || fail "Palisade sent the caller a BYE after the attack"
alive "$upid" || fail "the callee's sipp ended (it got a BYE) after the attack"
after=$(field rtp_after)
[ "$after" -ge 40 ] || fail "after the attack the caller got $after echoed RTP packets in 1.5 s (want >= 40)"
ok "BYE and re-INVITE from 127.0.0.66 refused with 403; the call goes on ($after RTP packets echoed in 1.5 s after, $(field rtp_before) in 1 s before)"
foreign_events() {
  events=$("$PALISADE_BIN" events --json --kind policy_refusal --data "$data")
  python3 -c 'import json,sys; print(sum(1 for e in json.loads(sys.argv[1]) if e["reason"] == "in_dialog_foreign_source" and e["source"].startswith("127.0.0.66:")))' "$events"
}
for ((i = 0; i < 30; i++)); do # events reach the database a moment later
  n=$(foreign_events)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
[ "$n" -ge 2 ] || fail "palisade events: $n in_dialog_foreign_source events from 127.0.0.66 (want >= 2): $(head -c 600 <<<"$events")"
ok "palisade events: $n in_dialog_foreign_source policy events from 127.0.0.66"

# Then the genuine BYE.
[ "$(field bye)" = 200 ] || fail "the caller's own BYE got $(field bye) (want 200)"
for ((i = 0; i < 30; i++)); do
  cdr=$("$PALISADE_BIN" cdr --json --data "$data")
  grep -q '"hung_up_by": *"caller"' <<<"$cdr" && break
  sleep 0.1
done
grep -q '"hung_up_by": *"caller"' <<<"$cdr" || fail "call record: $cdr"
ok "the caller's own BYE ended the call (200, hung up by caller)"

# A CANCEL from elsewhere: 102 only rings.
rblock=$(free_port 6)
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 102 "$(cred 102 2)" "$(cred 102 3)" \
  --contact "$HOST:$rblock" --bind "$rblock") || fail "register 102: $r"
case $r in *'"final": 200'*) ;; *) fail "register 102 -> $HOST:$rblock: $r" ;; esac
spawn "$E2E_TMP/ring.out" timeout -k 2 30 sipp -sf "$SCEN/call_uas_ring.xml" -i "$HOST" -p "$rblock" \
  -mi "$HOST" -mp $((rblock + 2)) -m 1 -nostdin -timeout 25
sleep 0.5
res=$(timeout -k 2 30 python3 "$E2E_DIR/dialog_hijack.py" "$HOST:$port" 200 "$(cred 200 2)" "$(cred 200 3)" 102 127.0.0.66 --cancel) || {
  show "$PAL_ERR" 20
  fail "dialog_hijack.py --cancel: $res"
}
log "result: $res"
[ "$(field still_ringing)" = True ] || fail "after a CANCEL from 127.0.0.66 the INVITE was ended ($(field final))"
case $(field attack_cancel) in 200) fail "the CANCEL from 127.0.0.66 got 200" ;; esac
ok "a CANCEL from 127.0.0.66 copying the INVITE cancelled nothing (answer: $(field attack_cancel)); the call kept ringing"
if [ "$(field cancel)" != 200 ] || [ "$(field final)" != 487 ]; then
  fail "the caller's own CANCEL: $(field cancel), INVITE $(field final) (want 200, 487)"
fi
ok "the caller's own CANCEL: 200, INVITE 487"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
