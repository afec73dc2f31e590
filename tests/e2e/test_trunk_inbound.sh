#!/usr/bin/env bash
# Inbound calls from a trunk, over UDP. Trunk `carrier`: host and --source 127.0.0.50; DIDs 4930123456 -> 101
# and 4930123457 -> 102 (internal only). 101's phone is a sipp UAS (scenarios/call_uas_rtp.xml) registered
# from its own port with call_client.py. The provider is a sipp UAC bound to 127.0.0.50 sending INVITEs
# without credentials:
#   * INVITE sip:4930123456@PBX (scenarios/trunk_inbound_uac.xml) -> 101's sipp rings and answers, the
#     provider gets 200, ACKs, hangs up after 1 s (BYE 200); an answered call record to 101;
#   * the same INVITE from 127.0.0.60 (not a trunk source; scenarios/trunk_inbound_refused.xml) -> 407 (treated
#     like a phone: it must authenticate), and 101 is not rung;
#   * from 127.0.0.50 to an unknown DID 4930999999 -> 404; to 4930123457 (internal-only 102) -> 403, with a
#     policy_refusal event internal_only (issue 7: every refusal is a security event).
# Ports: signalling 31200-31299, relay 31300-31399.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31200 E2E_PORT_MAX=31299
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

RTP_LO=31300 RTP_HI=31399
PROV=127.0.0.50 STRANGER=127.0.0.60
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 102"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pport=$(free_port)
pal trunk add carrier --host "$PROV" --port "$pport" --transport udp --source "$PROV/32" --caller-id 4930123450 \
  >/dev/null || fail "trunk add carrier"
pal did add 4930123456 --trunk carrier --ext 101 >/dev/null || fail "did add 4930123456"
pal did add 4930123457 --trunk carrier --ext 102 >/dev/null || fail "did add 4930123457"
pal ext set 102 --internal-only true >/dev/null || fail "ext set 102 --internal-only true"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
cdr_json() { pal cdr --json --limit 1000; }
ncdr() { cdr_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# register_sipp NUMBER PORT: bind NUMBER to a sipp UAS on HOST:PORT, registering from that port
register_sipp() {
  local r
  r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" "$1" "$(cred "$1" 2)" "$(cred "$1" 3)" \
    --contact "$HOST:$2" --bind "$2") || fail "register $1 -> $HOST:$2: $r"
  [ "$(jget "$r" 'r["final"]')" = 200 ] || fail "register $1 -> $HOST:$2: $r"
}
# start_phone PORT NAME: a one-call answering sipp UAS (the extension's phone); PID in UAS_PID
start_phone() {
  local media
  media=$(free_port 4) # audio and video RTP/RTCP; free_port never hands out the SIP port again
  spawn "$E2E_TMP/$2.out" timeout -k 2 60 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$1" -mi "$HOST" \
    -mp "$media" -m 1 -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/$2.msg" -trace_stat \
    -stf "$E2E_TMP/$2.csv" -fd 1 -trace_err -error_file "$E2E_TMP/$2.err"
  UAS_PID=$BG_PID
  sleep 0.5
  alive "$UAS_PID" || {
    show "$E2E_TMP/$2.out"
    fail "sipp phone $2 did not start"
  }
}
# provider_call SCENARIO SRC_IP DID NAME -> sipp's exit status; message log in $E2E_TMP/NAME.msg
provider_call() {
  local lport media rc=0
  lport=$(free_port 5) # SIP port, then 4 media ports (sipp binds audio and video RTP/RTCP)
  media=$((lport + 1))
  timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/$1" -i "$2" -p "$lport" -mi "$2" -mp "$media" -s "$3" \
    -m 1 -nostdin -timeout 25 -recv_timeout 10000 -trace_msg -message_file "$E2E_TMP/$4.msg" -trace_stat \
    -stf "$E2E_TMP/$4.csv" -fd 1 -trace_err -error_file "$E2E_TMP/$4.err" >"$E2E_TMP/$4.out" 2>&1 </dev/null ||
    rc=$?
  return "$rc"
}
# statuses NAME: the status lines the sipp UAC received, in order
statuses() {
  tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | awk '/message received/ { getline; getline; if ($1 == "SIP/2.0") print }' |
    tr '\n' '|'
}
invites() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^INVITE ' || true; }

# ---- 1. DID 4930123456 from the trunk's address rings 101
p101=$(free_port)
register_sipp 101 "$p101"
start_phone "$p101" phone1
rc=0
provider_call trunk_inbound_uac.xml "$PROV" 4930123456 in1 || rc=$?
log "provider (from $PROV) got: $(statuses in1)"
if [ "$rc" != 0 ]; then
  show "$E2E_TMP/in1.msg" 60
  show "$E2E_TMP/in1.err" 10
  show "$E2E_TMP/phone1.msg" 30
  fail "inbound call to DID 4930123456 from $PROV: sipp UAC exit $rc (answers: $(statuses in1))"
fi
for ((i = 0; i < 60; i++)); do alive "$UAS_PID" || break; sleep 0.1; done
rc=0
alive "$UAS_PID" && fail "101's sipp phone did not finish its call"
wait "$UAS_PID" || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/phone1.msg" 40
  fail "101's sipp phone exited $rc"
}
ring=$(invites phone1 | head -1)
[ -n "$ring" ] || fail "101's phone got no INVITE"
for ((i = 0; i < 40; i++)); do
  [ "$(ncdr)" -ge 1 ] && break
  sleep 0.1
done
rec=$(cdr_json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(r[0]) if r else "{}")')
log "record: $rec"
[ "$(jget "$rec" 'r.get("disposition")')" = answered ] || fail "inbound call record: $rec"
[ "$(jget "$rec" 'r.get("callee")')" = 101 ] || [ "$(jget "$rec" 'r.get("callee")')" = 4930123456 ] ||
  fail "inbound call record callee: $rec"
ok "DID 4930123456 from $PROV (no credentials): 101's phone got '$ring' and answered; provider got $(statuses in1); record answered, caller $(jget "$rec" 'r.get("caller")'), callee $(jget "$rec" 'r.get("callee")')"

# ---- 2. the same INVITE from an address that is not the trunk's -> 407, 101 not rung
start_phone "$p101" phone2
provider_call trunk_inbound_refused.xml "$STRANGER" 4930123456 stranger || true
st=$(statuses stranger)
log "from $STRANGER: $st"
case $st in *"SIP/2.0 407 "*) ;; *)
  show "$E2E_TMP/stranger.msg" 40
  fail "INVITE to DID 4930123456 from $STRANGER (not a trunk source): expected 407, got '$st'"
  ;;
esac
case $st in *"SIP/2.0 200 "* | *"SIP/2.0 18"*) fail "the INVITE from $STRANGER rang: $st" ;; esac

# ---- 3. unknown DID and internal-only extension, from the trunk's address
provider_call trunk_inbound_refused.xml "$PROV" 4930999999 unknown || true
st=$(statuses unknown)
log "unknown DID from $PROV: $st"
case $st in *"SIP/2.0 404 "*) ;; *)
  show "$E2E_TMP/unknown.msg" 40
  fail "INVITE to unknown DID 4930999999 from $PROV: expected 404, got '$st'"
  ;;
esac
ok "unknown DID 4930999999 from $PROV -> ${st%|}"
provider_call trunk_inbound_refused.xml "$PROV" 4930123457 internal || true
st=$(statuses internal)
log "DID of internal-only 102 from $PROV: $st"
case $st in *"SIP/2.0 403 "*) ;; *)
  show "$E2E_TMP/internal.msg" 40
  fail "INVITE to DID 4930123457 (internal-only 102) from $PROV: expected 403, got '$st'"
  ;;
esac
ok "DID 4930123457 of internal-only 102 from $PROV -> ${st%|}"
int_ev=$E2E_TMP/internal_events.json

sleep 0.5
[ -z "$(invites phone2)" ] || fail "101's phone was rung by a refused INVITE: $(invites phone2)"
ok "INVITE to DID 4930123456 from $STRANGER -> $(statuses stranger | sed 's/|$//'); 101's phone not rung (nor by the refused calls after it)"
stop_pid "$UAS_PID" 2

# issue 7: every refusal is a security event with a reason code, the inbound internal-only one included
for ((i = 0; i < 30; i++)); do
  pal events --kind policy_refusal --json --limit 1000 >"$int_ev"
  grep -q internal_only "$int_ev" && break
  sleep 0.1
done
grep -q internal_only "$int_ev" ||
  fail "the inbound 403 to internal-only 102 left no policy_refusal/internal_only event (policy_refusal events: $(cat "$int_ev"); all events: $(pal events --json | tr -d '\n' | head -c 1500))"
ok "the inbound refusal left a policy_refusal/internal_only event"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
