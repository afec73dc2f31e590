#!/usr/bin/env bash
# Issue 16: an authenticated REGISTER keeps no server transaction (answered once, as Kamailio's `sl` answers), so
# the registration rate is set by CPU and not by a table holding every answered REGISTER for 32 s.
#   * extension 100 registers over UDP (401, then 200), then its authenticated REGISTER is retransmitted twice,
#     byte for byte: each copy is answered 200 again — not refused as a nonce-count replay, no auth failure;
#   * its credentials on another request (a new branch and CSeq, the same nonce and nc) are refused (401) and a
#     `replay` auth_failure event is recorded;
#   * after 20 more registrations, `palisade status --json` shows 0 server transactions (before issue 16 every
#     authenticated REGISTER kept one for 32 s), and the bindings are there.
# Ports: E2E_PORT_MIN..E2E_PORT_MAX (26600-26799 by default).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26600} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq

data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add 100 --json >"$E2E_TMP/ext.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext.json")
password=$(jq -r .password "$E2E_TMP/ext.json")
port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"
reg() { timeout 10 python3 "$(dirname "$0")/reg_client.py" "$HOST:$port" udp 100 "$authid" "$password" "$@"; }

reg --resend 2 --replay >"$E2E_TMP/reg.json" || fail "reg_client: $(cat "$E2E_TMP/reg.json")"
codes=$(jq -c '[.challenge.code, .final.code, .resent, .replayed]' "$E2E_TMP/reg.json")
[ "$codes" = '[401,200,[200,200],401]' ] ||
  fail "challenge, REGISTER, 2 retransmissions, replay: want [401,200,[200,200],401], got $codes"
ok "REGISTER 401 then 200; its 2 retransmissions answered 200; its credentials on a new request: 401"

sleep 1 # security events reach the store every 500 ms
pal events --kind auth_failure --json --limit 100 >"$E2E_TMP/events.json" || fail "palisade events"
replays=$(jq '[.[] | select(.reason == "replay")] | length' "$E2E_TMP/events.json")
[ "$replays" = 1 ] || fail "want exactly 1 replay event (the new request, not the retransmissions), got $replays"
ok "one replay event (for the new request), none for the retransmissions"

for i in $(seq 20); do reg >/dev/null || fail "registration $i"; done
sleep 5.5 # the status file is rewritten every 5 s
pal status --json >"$E2E_TMP/status.json" || fail "palisade status --json"
tx=$(jq .server.counts.server_transactions "$E2E_TMP/status.json")
regs=$(jq .server.counts.registrations "$E2E_TMP/status.json")
[ "$tx" = 0 ] || fail "want 0 server transactions 5 s after 21 registrations, got $tx"
# Each run of reg_client.py is a phone on a new port, so a new contact (up to max_contacts, 10, per extension).
[ "$regs" -ge 1 ] || fail "want extension 100's bindings, got $regs registrations"
ok "21 registrations later: $tx server transactions kept, $regs bindings of extension 100"
no_panic
pal_stop
