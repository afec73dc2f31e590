#!/usr/bin/env bash
# Call forwarding under the call policy, over UDP. Extension 100 calls with call_client.py; callees are sipp
# UASes registered as extensions (call_client.py register --contact); the provider is a sipp UAS on 127.0.0.5
# behind trunk `carrier` (no credentials). Policy: country_code 49, international_prefix 00, national_prefix 0,
# allowed_country_codes "" (home only); rules intl (prefix 00) and out (prefix 0, strip 1) -> carrier.
# A forward is placed as if the FORWARDING extension dialled the target:
#   * 101 --forward-always 102 (101 not even registered): the caller gets 181 then 200 from 102's sipp, which
#     got the INVITE; `ext show 101` shows the forward; records: 100 -> 101 `forward_always:102`, then an
#     answered 100 -> 102;
#   * 101 --forward-busy 0301234567, 101's phone answers 486: the call goes out through the trunk (the provider
#     gets INVITE sip:301234567@127.0.0.5:PORT, From user 101) and is answered;
#   * internal-only 101 --forward-always 0301234567: 403 with Warning internal_only, a policy_refusal event
#     (reason internal_only, detail "forward always from 101: …"), and the provider gets no INVITE;
#   * 103 (unregistered) --forward-no-answer 0044207946000: 403 country_not_allowed (event), no INVITE out;
#   * 101 -> 102 -> 101 (forward always both ways): 482 Loop Detected with Warning forward_loop.
# Ports: signalling 29700-29749, relay 29750-29799.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=29700 E2E_PORT_MAX=29749
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

RTP_LO=29750 RTP_HI=29799
PROV=127.0.0.5
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 103 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 103"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

# One free_port call: palisade, then three sipp UASes, each with its SIP port and the four media ports sipp binds
# from -mp: 102's phone (+1), 101's phone (+6), the provider (+11).
base=$(free_port 16)
port=$base p102=$((base + 1)) p101=$((base + 6)) cport=$((base + 11))
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal policy set international_prefix 00 >/dev/null || fail "policy set international_prefix"
pal policy set national_prefix 0 >/dev/null || fail "policy set national_prefix"
pal policy set allowed_country_codes "" >/dev/null || fail "policy set allowed_country_codes"
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --source "$PROV/32" >/dev/null ||
  fail "trunk add carrier"
pal rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add intl"
pal rule add out --prefix 0 --strip 1 --trunks carrier >/dev/null || fail "rule add out"

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
call_as100() { # CALLEE [call_client options...] -> JSON on stdout
  local n=$1
  shift
  timeout -k 2 30 python3 "$CLIENT" call "$HOST:$port" 100 "$(cred 100 2)" "$(cred 100 3)" "$n" "$@"
}
register_sipp() { # NUMBER PORT: NUMBER's contact is a sipp UAS on HOST:PORT, registered from that port
  local r
  r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" "$1" "$(cred "$1" 2)" "$(cred "$1" 3)" \
    --contact "$HOST:$2" --bind "$2") || fail "register $1 -> $HOST:$2: $r"
  [ "$(jget "$r" 'r["final"]')" = 200 ] || fail "register $1 -> $HOST:$2: $r"
}
# start_uas SCENARIO IP PORT NAME: one-call sipp UAS (media port PORT+1); PID in UAS_PID
start_uas() {
  spawn "$E2E_TMP/$4.out" timeout -k 2 40 sipp -sf "$SCEN/$1" -i "$2" -p "$3" -mi "$2" -mp $(($3 + 1)) -m 1 \
    -nostdin -timeout 35 -trace_msg -message_file "$E2E_TMP/$4.msg" -trace_err -error_file "$E2E_TMP/$4.err"
  UAS_PID=$BG_PID
  sleep 0.5
  alive "$UAS_PID" || {
    show "$E2E_TMP/$4.out"
    fail "sipp UAS $4 did not start"
  }
}
uas_done() { # NAME PID: sipp ran its one call to the end
  local i rc=0
  for ((i = 0; i < 100; i++)); do alive "$2" || break; sleep 0.1; done
  alive "$2" && {
    show "$E2E_TMP/$1.msg" 40
    fail "sipp UAS $1 still waiting (its scenario did not complete)"
  }
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$1.msg" 40
    show "$E2E_TMP/$1.err" 10
    fail "sipp UAS $1 exited $rc (scenario not completed)"
  }
}
invites() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^INVITE ' || true; }
cdr_json() { pal cdr --json --limit 1000; }
ncdr() { cdr_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
cdr_wait() { # N: wait (bounded) until there are N records
  local i
  for ((i = 0; i < 40; i++)); do
    [ "$(ncdr)" -ge "$1" ] && return 0
    sleep 0.1
  done
}
# cdr_nth_newest K: the K-th newest record (1 = newest)
cdr_nth_newest() { cdr_json | python3 -c 'import json,sys; r=sorted(json.load(sys.stdin), key=lambda x: -x["id"]); print(json.dumps(r[int(sys.argv[1]) - 1]) if len(r) >= int(sys.argv[1]) else "{}")' "$1"; }
refusals() { pal events --kind policy_refusal --json --limit 1000; }
nref() { refusals | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
newest_refusal() { # N: the newest policy_refusal event once there are N
  local i
  for ((i = 0; i < 40; i++)); do
    [ "$(nref)" -ge "$1" ] && break
    sleep 0.1
  done
  refusals | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(r[0]) if r else "{}")'
}
settle() { sleep 1.5; } # a running server picks up `ext set` within a second

# ---- 1. forward always to an allowed internal extension
pal ext set 101 --forward-always 102 >/dev/null || fail "ext set 101 --forward-always 102"
show101=$(pal ext show 101)
grep -q 'Forward always: *to 102' <<<"$show101" || fail "ext show 101 does not show the forward: $show101"
settle
register_sipp 102 "$p102"
start_uas call_uas_rtp.xml "$HOST" "$p102" ext102
n0=$(ncdr)
out=$(call_as100 101) || fail "call 101 (forwarded always to 102): $out"
log "101 -> 102: $out"
uas_done ext102 "$UAS_PID"
[ "$(invites ext102 | head -1)" = "INVITE sip:102@$HOST:$p102 SIP/2.0" ] ||
  fail "102's phone got '$(invites ext102 | head -1)'"
if [ "$(jget "$out" 'r["final"]')" != 200 ] || [ "$(jget "$out" 'r["bye"]')" != 200 ]; then
  fail "forward always 101 -> 102: expected 200 and BYE 200, got $out"
fi
[ "$(jget "$out" 'any(c == 181 for _, c, _ in r["responses"])')" = True ] ||
  fail "forward always: no 181 Call Is Being Forwarded: $out"
cdr_wait $((n0 + 2))
fwd=$(cdr_nth_newest 2)
ans=$(cdr_nth_newest 1)
[ "$(jget "$fwd" 'r.get("callee"), r.get("reason")')" = "('101', 'forward_always:102')" ] ||
  fail "record of the forward: $fwd"
[ "$(jget "$ans" 'r.get("caller"), r.get("callee"), r.get("disposition")')" = "('100', '102', 'answered')" ] ||
  fail "record of the forwarded call: $ans"
ok "forward always 101 -> 102: caller got $(jget "$out" '[c for _, c, _ in r["responses"]]'), 102's phone got the INVITE; records '$(jget "$fwd" 'r["reason"]')' and 100 -> 102 answered"

# ---- 2. forward on busy to an allowed external number, out through the trunk
pal ext set 101 --forward-always "" --forward-busy 0301234567 >/dev/null || fail "ext set 101 --forward-busy"
settle
register_sipp 101 "$p101"
start_uas call_uas_busy.xml "$HOST" "$p101" busy101
busy_pid=$UAS_PID
start_uas call_uas_rtp.xml "$PROV" "$cport" national
out=$(call_as100 101) || fail "call 101 (busy, forwarded to 0301234567): $out"
log "101 busy -> 0301234567: $out"
uas_done busy101 "$busy_pid"
uas_done national "$UAS_PID"
[ "$(invites national | head -1)" = "INVITE sip:301234567@$PROV:$cport SIP/2.0" ] ||
  fail "forward on busy: the provider got '$(invites national | head -1)'"
from=$(tr -d '\r' <"$E2E_TMP/national.msg" | grep -m1 -iE '^From:')
case $from in *"sip:101@"*) ;; *) fail "forward on busy: the provider's INVITE is $from (expected user 101, the forwarding extension)" ;; esac
[ "$(jget "$out" 'r["final"]')" = 200 ] || fail "forward on busy: expected 200, got $out"
ok "forward on busy: 101 answered 486, the provider got '$(invites national | head -1)' ($from), call answered"

# ---- 3. an internal-only extension cannot forward out
pal ext set 101 --forward-busy "" --forward-always 0301234567 --internal-only true >/dev/null ||
  fail "ext set 101 --internal-only true --forward-always 0301234567"
settle
start_uas call_uas_rtp.xml "$PROV" "$cport" refused
prov_pid=$UAS_PID
e0=$(nref)
out=$(call_as100 101) || fail "call 101 (internal-only, forwarded out): $out"
log "internal-only 101 -> 0301234567: $out"
[ "$(jget "$out" 'r["final"]')" = 403 ] || fail "internal-only forward: expected 403, got $out"
case $(jget "$out" 'r.get("warning")') in *internal_only*) ;; *) fail "internal-only forward: Warning is '$(jget "$out" 'r.get("warning")')'" ;; esac
ev=$(newest_refusal $((e0 + 1)))
[ "$(jget "$ev" 'r.get("reason")')" = internal_only ] || fail "internal-only forward: newest policy_refusal: $ev"
case $(jget "$ev" 'r.get("detail")') in *"forward always from 101"*) ;; *) fail "internal-only forward: event detail: $ev" ;; esac
ok "internal-only 101 forwarding to 0301234567: 403 ($(jget "$out" 'r.get("warning")')), event $(jget "$ev" 'r["reason"], r["detail"]')"

# ---- 4. forward on no answer (unregistered) to a disallowed country
pal ext set 103 --forward-no-answer 0044207946000 >/dev/null || fail "ext set 103 --forward-no-answer"
settle
e0=$(nref)
out=$(call_as100 103) || fail "call 103 (unregistered, forwarded to the UK): $out"
log "unregistered 103 -> 0044207946000: $out"
[ "$(jget "$out" 'r["final"]')" = 403 ] || fail "forward to a disallowed country: expected 403, got $out"
case $(jget "$out" 'r.get("warning")') in *country_not_allowed*) ;; *) fail "forward to the UK: Warning '$(jget "$out" 'r.get("warning")')'" ;; esac
ev=$(newest_refusal $((e0 + 1)))
[ "$(jget "$ev" 'r.get("reason")')" = country_not_allowed ] || fail "forward to the UK: newest policy_refusal: $ev"
sleep 0.5
[ -z "$(invites refused)" ] || fail "a refused forward reached the provider: $(invites refused)"
stop_pid "$prov_pid" 2
ok "unregistered 103 forwarding on no answer to 0044207946000: 403 ($(jget "$out" 'r.get("warning")')), event $(jget "$ev" 'r["reason"]'); the provider got no INVITE in cases 3 and 4"

# ---- 5. a forwarding loop
pal ext set 101 --internal-only false --forward-always 102 >/dev/null || fail "ext set 101 --forward-always 102"
pal ext set 102 --forward-always 101 >/dev/null || fail "ext set 102 --forward-always 101"
settle
out=$(call_as100 101) || fail "call 101 (loop): $out"
[ "$(jget "$out" 'r["final"]')" = 482 ] || fail "forward loop 101 -> 102 -> 101: expected 482, got $out"
case $(jget "$out" 'r.get("warning")') in *forward_loop*) ;; *) fail "forward loop: Warning '$(jget "$out" 'r.get("warning")')'" ;; esac
ok "forward loop 101 -> 102 -> 101: $(jget "$out" 'r["responses"][-1][1:]') ($(jget "$out" 'r.get("warning")'))"

sleep 0.5
[ "$(pal calls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] ||
  fail "calls in progress left: $(pal calls --json)"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
