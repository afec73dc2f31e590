#!/usr/bin/env bash
# PIN protection (hardening step 3) with a real client (call_client.py as extension 100, UDP) and a sipp
# provider on its own loopback address (127.0.0.60, scenarios/trunk_provider_auth.xml):
#   * 100 is PIN-protected: 0301234567 -> 403 with Warning "pin_protected", a policy event, the provider sees
#     nothing;
#   * 7770000 (never a valid PIN: one digit repeated) is answered by the unlock dialogue, which says the PIN is
#     wrong and hangs up; a voicemail_pin_wrong security event; calls are still refused;
#   * 777 + 100's voicemail PIN (printed once by `ext add-range`) is answered, the dialogue lifts the
#     protection (an auth_success event with reason pin_unlock); 0301234567 then reaches the provider and is
#     answered;
#   * pin_unlock_seconds (60, the minimum) later the protection is back: 403 again.
# Ports: signalling 32000-32099, relay 32100-32199.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=32000 E2E_PORT_MAX=32099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3

RTP_LO=32100 RTP_HI=32199
PROV=127.0.0.60
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password,4=PIN)
pin=$(cred 100 4)
[[ $pin =~ ^[0-9]{4}$ ]] || fail "no voicemail PIN for 100 in the add-range output"

cport=$(free_port)
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal policy set international_prefix 00 >/dev/null || fail "policy set international_prefix"
pal policy set national_prefix 0 >/dev/null || fail "policy set national_prefix"
pal policy set pin_unlock_seconds 60 >/dev/null || fail "policy set pin_unlock_seconds"
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --username "$TRUNK_USER" \
  --password "$TRUNK_PASS" --source "$PROV/32" >/dev/null || fail "trunk add carrier"
pal rule add out --prefix 0 --strip 1 --trunks carrier >/dev/null || fail "rule add out"
pal ext set 100 --pin-protect true >/dev/null || fail "ext set --pin-protect"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

call_as100() { timeout -k 2 50 python3 "$CLIENT" call "$HOST:$port" 100 "$(cred 100 2)" "$(cred 100 3)" "$1"; }
final() { python3 -c 'import json,sys; print(json.load(sys.stdin)["final"])'; }
events_with() { pal events --json --limit 1000 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("reason") == sys.argv[1]))' "$1"; }

spawn "$E2E_TMP/prov.out" timeout -k 2 120 sipp -sf "$E2E_DIR/scenarios/trunk_provider_auth.xml" -i "$PROV" \
  -p "$cport" -mi "$PROV" -m 1 -nostdin -timeout 115 -trace_msg -message_file "$E2E_TMP/prov.msg" \
  -trace_err -error_file "$E2E_TMP/prov.err"
prov_pid=$BG_PID
sleep 0.5
alive "$prov_pid" || fail "sipp provider did not start"
invites() { tr -d '\r' <"$E2E_TMP/prov.msg" 2>/dev/null | grep -c '^INVITE ' || true; }

# 1. Locked.
out=$(call_as100 0301234567) || fail "call 0301234567: $out"
[ "$(final <<<"$out")" = 403 ] || fail "PIN-protected call was not refused with 403: $out"
[ "$(events_with pin_protected)" -ge 1 ] || sleep 1
[ "$(events_with pin_protected)" -ge 1 ] || fail "no pin_protected policy event"
[ "$(invites)" = 0 ] || fail "the refused call reached the provider"
ok "PIN-protected 100 -> 0301234567: 403 pin_protected, nothing sent to the provider"

# 2. Wrong PIN as one number: answered by the unlock dialogue, still locked.
out=$(call_as100 7770000) || fail "call 7770000: $out"
[ "$(final <<<"$out")" = 200 ] || fail "777 + wrong PIN not answered by the unlock dialogue: $out"
for ((i = 0; i < 30; i++)); do [ "$(events_with voicemail_pin_wrong)" -ge 1 ] && break; sleep 0.1; done
[ "$(events_with voicemail_pin_wrong)" -ge 1 ] || fail "no voicemail_pin_wrong event for 7770000"
out=$(call_as100 0301234567) || fail "call after a wrong PIN: $out"
[ "$(final <<<"$out")" = 403 ] || fail "a wrong PIN unlocked external calls: $out"
ok "777 + wrong PIN: answered, security event, still locked"

# 3. The right PIN unlocks.
out=$(call_as100 "777$pin") || fail "call 777+PIN: $out"
[ "$(final <<<"$out")" = 200 ] || fail "777 + PIN not answered: $out"
sleep 0.5
out=$(call_as100 0301234567) || fail "call after unlocking: $out"
[ "$(final <<<"$out")" = 200 ] || fail "external call still refused after 777+PIN: $out"
for ((i = 0; i < 30; i++)); do [ "$(events_with pin_unlock)" -ge 1 ] && break; sleep 0.1; done
[ "$(events_with pin_unlock)" -ge 1 ] || fail "no pin_unlock event (audit trail of the unlock)"
[ "$(invites)" -ge 1 ] || fail "the provider saw no INVITE after the unlock"
ok "777 + PIN unlocked external calls: 0301234567 reached the provider and was answered"

# 4. The unlock expires.
log "waiting 60 s for the unlock to expire"
sleep 61
out=$(call_as100 0301234567) || fail "call after expiry: $out"
[ "$(final <<<"$out")" = 403 ] || fail "external call allowed after pin_unlock_seconds: $out"
ok "after pin_unlock_seconds the protection is back (403)"
pal_stop
