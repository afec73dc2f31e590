#!/usr/bin/env bash
# Issue 12 item 4: spoofed packets must not get the provider banned. A trunk's source address does not
# authenticate to us, so failed authentications and unanswered challenges from it never ban it; a flood from it
# is throttled, never banned. The guard learns the trunk sources live: the trunk is added while the server runs.
#   * server started with no trunk; `trunk add carrier --host 127.0.0.50` (no --source: the host's address is
#     the source) and a DID to 101, applied within a second;
#   * the attack: 30 REGISTERs with a bad Authorization from 127.0.0.50 (guard_client.py, as a spoofer would
#     send them with the provider's address), each answered 401 then 401; 127.0.0.50 is still answered, no ban
#     event, no blacklist entry; then a red-tier flood of OPTIONS from it (flood_red_pps lowered to 200) leaves
#     a `throttle` event but no ban;
#   * the legitimate use: an inbound call from 127.0.0.50 (sipp UAC, scenarios/trunk_inbound_uac.xml) to the
#     DID rings 101's phone (a sipp UAS) and is answered;
#   * the same 30 bad REGISTERs from 127.0.0.60 (no trunk) ban it at the 25th (the default limit).
# Ports: 26800-26879 (signalling and sipp media), relay 50000-50099.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26800 E2E_PORT_MAX=26879
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 jq ss

PROV=127.0.0.50 STRANGER=127.0.0.60
CLIENT=$E2E_DIR/call_client.py
GUARD=$E2E_DIR/guard_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add 101 --json >"$E2E_TMP/ext-101.json" || fail "ext add 101"
authid=$(jq -r .auth_id "$E2E_TMP/ext-101.json")
password=$(jq -r .password "$E2E_TMP/ext-101.json")
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal security set flood_amber_pps 100 >/dev/null || fail "security set flood_amber_pps"
pal security set flood_red_pps 200 >/dev/null || fail "security set flood_red_pps"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports 50000-50099

# ---- the trunk, added live
pport=$(free_port)
pal trunk add carrier --host "$PROV" --port "$pport" --transport udp >/dev/null || fail "trunk add carrier"
pal did add 4930123456 --trunk carrier --ext 101 >/dev/null || fail "did add"
sleep 1.5 # the store is polled every 0.5 s

gc() { # SRC ARGS...
  local src=$1
  shift
  timeout -k 2 90 python3 "$GUARD" "$HOST:$port" "$src" "$@"
}
bad_registers() { # SRC -> JSON lines in $E2E_TMP/bad-SRC.jsonl
  gc "$1" auth 30 101 "$authid" WrongPassw0rd --timeout 0.5 >"$E2E_TMP/bad-$1.jsonl" || fail "guard_client from $1"
}
refused() { # SRC: how many attempts were answered 401 then 401
  jq -s '[.[] | select(.challenge == 401 and .final == 401)] | length' "$E2E_TMP/bad-$1.jsonl"
}
bans_of() { # NET: ban events for it
  pal events --kind ban --json --limit 1000 | jq --arg s "$1" '[.[] | select(.source == $s)] | length'
}

# ---- 1. the attack from the trunk's address: answered every time, never banned
bad_registers "$PROV"
n=$(refused "$PROV")
[ "$n" = 30 ] || {
  show "$E2E_TMP/bad-$PROV.jsonl" 10
  fail "30 bad REGISTERs from trunk source $PROV: only $n answered 401/401 (banned?)"
}
sleep 1
gc "$PROV" probe >/dev/null || fail "trunk source $PROV not answered after 30 failed authentications"
[ "$(bans_of "$PROV/32")" = 0 ] || fail "trunk source $PROV was banned: $(pal events --kind ban --json)"
pal blacklist list --json | jq -e --arg s "$PROV/32" '[.[] | select(.net == $s)] | length == 0' >/dev/null ||
  fail "trunk source $PROV is on the blacklist: $(pal blacklist list --json)"
nfail=$(pal events --kind auth_failure --json --limit 1000 | jq --arg ip "$PROV:" '[.[] | select(.source | startswith($ip))] | length')
ok "30 REGISTERs with a bad Authorization from trunk source $PROV: all answered 401/401, $nfail auth_failure events, no ban"

# a red-tier flood from the trunk's address: throttled, not banned
timeout -k 2 20 python3 - "$HOST" "$port" "$PROV" <<'EOF' || fail "flood from $PROV"
import os, socket, sys
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
lport = s.getsockname()[1]
for i in range(600):  # well above flood_red_pps (200) within one second
    b = os.urandom(6).hex()
    msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:{lport};branch=z9hG4bK{b};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:f@{src}>;tag={b}\r\nTo: <sip:{host}>\r\nCall-ID: {b}@{src}\r\n"
           "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), (host, port))
EOF
for ((i = 0; i < 30; i++)); do
  [ "$(pal events --kind throttle --json | jq --arg s "$PROV/32" '[.[] | select(.source == $s)] | length')" -gt 0 ] && break
  sleep 0.1
done
[ "$(pal events --kind throttle --json | jq --arg s "$PROV/32" '[.[] | select(.source == $s)] | length')" -gt 0 ] ||
  fail "no throttle event for the flood from $PROV"
[ "$(bans_of "$PROV/32")" = 0 ] || fail "the flood from trunk source $PROV banned it"
ok "600 packets in one second from $PROV (red tier 200): throttled, not banned"
sleep 6 # throttle_seconds (5) over

# ---- 2. the legitimate use: an inbound call from the trunk still rings 101
p101=$(free_port)
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$authid" "$password" \
  --contact "$HOST:$p101" --bind "$p101") || fail "register 101: $r"
media=$(free_port 4)
spawn "$E2E_TMP/phone.out" timeout -k 2 40 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$p101" -mi "$HOST" \
  -mp "$media" -m 1 -nostdin -timeout 35 -trace_msg -message_file "$E2E_TMP/phone.msg"
UAS=$BG_PID
sleep 0.5
lport=$(free_port 5)
rc=0
timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/trunk_inbound_uac.xml" -i "$PROV" -p "$lport" -mi "$PROV" \
  -mp $((lport + 1)) -s 4930123456 -m 1 -nostdin -timeout 25 -recv_timeout 10000 -trace_msg \
  -message_file "$E2E_TMP/in.msg" >"$E2E_TMP/in.out" 2>&1 </dev/null || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/in.msg" 40
  fail "inbound call from trunk $PROV after the spoofed failures: sipp exit $rc"
}
wait_exit "$UAS" 10 || fail "101's phone did not finish its call"
grep -q '^INVITE ' "$E2E_TMP/phone.msg" || fail "101's phone got no INVITE"
ok "inbound call from trunk $PROV to DID 4930123456 rang 101 and was answered"

# ---- 3. the same attack from an address that is no trunk: banned at the 25th failure
bad_registers "$STRANGER"
n=$(refused "$STRANGER")
[ "$n" = 25 ] || {
  show "$E2E_TMP/bad-$STRANGER.jsonl" 10
  fail "bad REGISTERs from $STRANGER: $n answered 401/401 before the ban, expected 25"
}
for ((i = 0; i < 30; i++)); do
  [ "$(bans_of "$STRANGER/32")" = 1 ] && break
  sleep 0.1
done
[ "$(bans_of "$STRANGER/32")" = 1 ] || fail "no ban event for $STRANGER"
gc "$STRANGER" probe >/dev/null && fail "$STRANGER still answered after its ban"
ok "the same 30 bad REGISTERs from $STRANGER (no trunk): banned after 25, then silence"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
