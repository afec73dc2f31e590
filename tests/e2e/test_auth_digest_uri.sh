#!/usr/bin/env bash
# Issue 12 item 14: a digest `uri` written differently from the Request-URI. sipp, out of the box, answers the
# challenge to `REGISTER sip:DOMAIN` with uri="sip:SERVER_IP:PORT" (scenarios/reg_auth_domain.xml); Palisade
# accepts a uri naming this server (its domain, any address it listens on or advertises) and still refuses one
# naming another host.
#   * attack first: sipp aimed at 192.0.2.9:5060 but sending to the server (-rsa), so its digest uri names
#     another host: 401 again, an auth_failure event uri_mismatch from its source, no binding;
#   * then sipp's default scenario to the domain pbx.test from another source: its uri is sip:127.0.0.1:PORT
#     (checked in the trace), the answer is 200, a binding exists, and no uri_mismatch event names that source.
# Before the fix the second sipp got 401 (uri_mismatch) and, after 25 tries, a ban.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

DOMAIN=pbx.test ATTACKER=127.0.0.2 PHONE=127.0.0.3
data=$E2E_TMP/data
mkdir -p "$data"
printf 'domain = "%s"\n' "$DOMAIN" >"$data/palisade.toml"
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add-range 100 100 2>/dev/null | grep -E '^[0-9]+,' >"$E2E_TMP/credentials.csv" || fail "ext add-range 100 100"
IFS=, read -r number auth_id password _ <"$E2E_TMP/credentials.csv"
printf 'SEQUENTIAL\n%s;%s;%s\n' "$number" "$auth_id" "$password" >"$E2E_TMP/inf.csv"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# sipp_reg NAME SRC TARGET [sipp args...] -> sipp's exit status; messages in $E2E_TMP/NAME.msg
sipp_reg() {
  local name=$1 src=$2 target=$3 lport rc=0
  shift 3
  lport=$(free_port)
  timeout -k 2 20 sipp "$target" -sf "$E2E_DIR/scenarios/reg_auth_domain.xml" -inf "$E2E_TMP/inf.csv" \
    -key domain "$DOMAIN" -i "$src" -p "$lport" -m 1 -nostdin -timeout 10 -recv_timeout 3000 \
    -trace_msg -message_file "$E2E_TMP/$name.msg" "$@" >"$E2E_TMP/$name.out" 2>&1 </dev/null || rc=$?
  return "$rc"
}
statuses() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^SIP/2.0 ' | cut -d' ' -f2 | tr '\n' ' '; }
digest_uri() { tr -d '\r' <"$E2E_TMP/$1.msg" | grep -o 'uri="[^"]*"' | head -n1; }
events_from() { # events_from SRC REASON -> count of auth_failure events with REASON from SRC
  pal events --kind auth_failure --json --limit 1000 | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("reason") == sys.argv[2] and str(e.get("source", "")).startswith(sys.argv[1] + ":")))' "$1" "$2"
}
bound_from() { pal registrations --json | grep -c "$1" || true; }

# ---- 1. the attack: a digest uri naming another host is refused and counted
rc=0
sipp_reg other "$ATTACKER" 192.0.2.9:5060 -rsa "$HOST:$port" || rc=$?
st=$(statuses other)
[ "$(digest_uri other)" = 'uri="sip:192.0.2.9:5060"' ] || fail "sipp -rsa did not write the other host's uri: $(digest_uri other)"
[ "$rc" != 0 ] || fail "a digest uri naming another host registered (statuses: $st)"
case $st in "401 401"*) ;; *) fail "uri for another host: expected 401 then 401, got '$st'" ;; esac
n=0
for ((i = 0; i < 30; i++)); do
  n=$(events_from "$ATTACKER" uri_mismatch)
  [ "$n" -ge 1 ] && break
  sleep 0.1
done
[ "$n" -ge 1 ] || fail "no auth_failure/uri_mismatch event from $ATTACKER: $(pal events --limit 20)"
[ "$(bound_from "$ATTACKER")" = 0 ] || fail "a binding from $ATTACKER: $(pal registrations --json)"
ok "digest $(digest_uri other) for REGISTER sip:$DOMAIN from $ATTACKER: statuses $st, $n uri_mismatch event(s), no binding"

# ---- 2. sipp's default form: uri="sip:SERVER_IP:PORT" for REGISTER sip:DOMAIN registers
rc=0
sipp_reg default "$PHONE" "$HOST:$port" || rc=$?
st=$(statuses default)
[ "$(digest_uri default)" = "uri=\"sip:$HOST:$port\"" ] || fail "sipp's digest uri is not sip:$HOST:$port: $(digest_uri default)"
[ "$rc" = 0 ] || fail "sipp's default REGISTER to the domain failed: exit $rc, statuses '$st' ($(tail -n 5 "$E2E_TMP/default.out"))"
case $st in "401 200"*) ;; *) fail "sipp's default REGISTER: expected 401 then 200, got '$st'" ;; esac
for ((i = 0; i < 30; i++)); do
  [ "$(bound_from "$PHONE")" -ge 1 ] && break
  sleep 0.1
done
[ "$(bound_from "$PHONE")" -ge 1 ] || fail "no binding from $PHONE after its 200: $(pal registrations --json)"
[ "$(events_from "$PHONE" uri_mismatch)" = 0 ] || fail "uri_mismatch events from $PHONE"
ok "digest $(digest_uri default) for REGISTER sip:$DOMAIN from $PHONE: statuses $st, a binding from $PHONE"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
