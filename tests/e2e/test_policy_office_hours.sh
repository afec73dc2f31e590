#!/usr/bin/env bash
# Office hours end to end, over UDP. Extension 100 is office-hours-only; the office is open every day all day
# (`palisade hours set "mon-sun 00:00-24:00"`, time zone UTC) but today (and tomorrow, in case the test runs
# across midnight) are holidays. The caller is a sipp UAC with digest auth (scenarios/policy_uac_*.xml); the
# provider is a sipp UAS on its own loopback address 127.0.0.60 (scenarios/trunk_provider_auth.xml).
# What must happen:
#   * 0301234567 (rule out: strip the 0 -> carrier) -> 407, then 403 whose Warning carries outside_office_hours
#     (checked by the scenario); a policy_refusal event with reason outside_office_hours; the provider gets no
#     INVITE;
#   * `palisade hours holiday remove TODAY TOMORROW` on the running server (applied within about a second) ->
#     the same call reaches the provider (INVITE sip:301234567@127.0.0.60:PORT) and is answered (200, BYE 200).
# Ports: signalling and sipp media 31500-31549, relay 31550-31599.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31500 E2E_PORT_MAX=31549
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

RTP_LO=31550 RTP_HI=31599
PROV=127.0.0.60
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# One block of ports: palisade, the provider's SIP and 4 media ports, the caller's SIP and 4 media ports.
block=$(free_port 12)
port=$block pport=$((block + 1)) pmedia=$((block + 2)) cport=$((block + 6)) cmedia=$((block + 8))

"$PALISADE_BIN" ext add-range 100 100 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 100"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
printf 'SEQUENTIAL\n100;%s;%s;0301234567\n' "$(cred 100 2)" "$(cred 100 3)" >"$E2E_TMP/call.csv"

pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal trunk add carrier --host "$PROV" --port "$pport" --username "$TRUNK_USER" --password "$TRUNK_PASS" \
  --source "$PROV/32" >/dev/null || fail "trunk add carrier"
pal rule add out --prefix 0 --strip 1 --trunks carrier >/dev/null || fail "rule add out"
pal ext set 100 --office-hours-only true >/dev/null || fail "ext set 100 --office-hours-only true"
today=$(date -u +%F)
tomorrow=$(date -u -d tomorrow +%F)
pal hours timezone UTC >/dev/null || fail "hours timezone UTC"
pal hours set "mon-sun 00:00-24:00" >/dev/null || fail "hours set"
shown=$(pal hours holiday add "$today" "$tomorrow") || fail "hours holiday add $today $tomorrow"
log "hours: $(echo "$shown" | tr '\n' '|')"
case $shown in *"open now:     no"*) ;; *) fail "hours with today as a holiday should show 'open now: no': $shown" ;; esac

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# The provider listens through both calls; it takes exactly one (-m 1).
spawn "$E2E_TMP/prov.out" timeout -k 2 60 sipp -sf "$SCEN/trunk_provider_auth.xml" -i "$PROV" -p "$pport" \
  -mi "$PROV" -mp "$pmedia" -m 1 -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/prov.msg" \
  -trace_err -error_file "$E2E_TMP/prov.err"
prov_pid=$BG_PID
sleep 0.5
alive "$prov_pid" || {
  show "$E2E_TMP/prov.out"
  fail "sipp provider did not start"
}
invites() { tr -d '\r' <"$E2E_TMP/prov.msg" 2>/dev/null | grep -E '^INVITE ' || true; }

# call SCENARIO NAME: one call from 100 with the sipp UAC; exit status of sipp
call() {
  local rc=0
  timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/$1" -inf "$E2E_TMP/call.csv" -i "$HOST" -p "$cport" \
    -mi "$HOST" -mp "$cmedia" -m 1 -nostdin -timeout 25 -recv_timeout 10000 -trace_msg \
    -message_file "$E2E_TMP/$2.msg" -trace_err -error_file "$E2E_TMP/$2.err" >"$E2E_TMP/$2.out" 2>&1 </dev/null ||
    rc=$?
  return "$rc"
}
refusals() { pal events --kind policy_refusal --json --limit 100; }

# ---- 1. outside office hours (today is a holiday): 403 outside_office_hours, an event, nothing at the provider
call policy_uac_refused.xml refused || {
  show "$E2E_TMP/refused.msg" 40
  show "$E2E_TMP/refused.err" 10
  fail "sipp UAC: the call to 0301234567 on a holiday did not end with 403 and a Warning carrying outside_office_hours"
}
warning=$(tr -d '\r' <"$E2E_TMP/refused.msg" | grep -i '^Warning:' | tail -1)
status=$(tr -d '\r' <"$E2E_TMP/refused.msg" | grep -E '^SIP/2.0 403' | tail -1)
ev=
for ((i = 0; i < 30; i++)); do
  ev=$(refusals | python3 -c 'import json,sys; r=[e for e in json.load(sys.stdin) if e["reason"]=="outside_office_hours"]; print(json.dumps(r[0]) if r else "")')
  [ -n "$ev" ] && break
  sleep 0.1
done
[ -n "$ev" ] || fail "no policy_refusal event with reason outside_office_hours (events: $(refusals))"
log "event: $ev"
sleep 0.5
[ -z "$(invites)" ] || fail "the refused call reached the provider: $(invites)"
ok "holiday $today: 100 dialling 0301234567 got '$status' with '$warning'; policy_refusal event outside_office_hours; the provider got no INVITE"

# ---- 2. the holidays removed on the running server: the same call goes out
pal hours holiday remove "$today" "$tomorrow" >/dev/null || fail "hours holiday remove"
sleep 1.2 # the server polls the store twice a second
call policy_uac_answered.xml answered || {
  show "$E2E_TMP/answered.msg" 40
  show "$E2E_TMP/answered.err" 10
  show "$E2E_TMP/prov.msg" 30
  fail "sipp UAC: the call to 0301234567 after the holidays were removed was not answered"
}
ruri=$(invites | head -1)
[ "$ruri" = "INVITE sip:301234567@$PROV:$pport SIP/2.0" ] ||
  fail "provider's INVITE '$ruri' (expected INVITE sip:301234567@$PROV:$pport SIP/2.0)"
rc=0
wait_exit "$prov_pid" 10 || fail "sipp provider still waiting after the answered call"
wait "$prov_pid" || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/prov.err" 10
  fail "sipp provider exited $rc"
}
ok "holidays removed on the running server, call placed 1.2 s later: provider got '$ruri'; answered, BYE 200"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
