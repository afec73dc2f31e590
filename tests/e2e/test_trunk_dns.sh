#!/usr/bin/env bash
# Trunk hosts given by name, over UDP. Trunk `named` has --host localhost and no --source (so it trusts the
# addresses localhost resolves to, 127.0.0.1); trunk `ghost` has --host no-such-host.invalid (never resolves).
# The provider is a sipp UAS on 127.0.0.1 (scenarios/trunk_provider_auth.xml); the caller, extension 100, is a
# sipp UAC with digest auth on 127.0.0.2 (scenarios/policy_uac_answered.xml). Rule out: prefix 0, strip 1 ->
# ghost, then named.
# What must happen:
#   * 0301234567 -> ghost is skipped (a warning names it), the call fails over to named: the provider gets
#     INVITE sip:301234567@localhost:PORT (the name kept in the Request-URI) sent to 127.0.0.1, answers after
#     its 407; the caller gets 200, BYE 200;
#   * an INVITE without credentials from 127.0.0.1 (the resolved host) to an unknown DID -> 404 (trusted as the
#     trunk); the same from 127.0.0.3 -> 407 (not the trunk: must authenticate like a phone).
# Ports: signalling and sipp media 31750-31799, relay 31800-31849.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31750 E2E_PORT_MAX=31799
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss getent

getent hosts localhost | grep -q '127\.0\.0\.1' || skip "localhost does not resolve to 127.0.0.1 here"
RTP_LO=31800 RTP_HI=31849
PROV=127.0.0.1 CALLER=127.0.0.2 STRANGER=127.0.0.3
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# One block: palisade; the provider's SIP and 4 media ports; the caller's SIP and 4 media ports; two ports for
# the inbound INVITEs.
block=$(free_port 13)
port=$block pport=$((block + 1)) pmedia=$((block + 2)) cport=$((block + 6)) cmedia=$((block + 8))
iport1=$((block + 12))

"$PALISADE_BIN" ext add-range 100 100 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 100"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
printf 'SEQUENTIAL\n100;%s;%s;0301234567\n' "$(cred 100 2)" "$(cred 100 3)" >"$E2E_TMP/call.csv"
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal trunk add named --host localhost --port "$pport" --username "$TRUNK_USER" --password "$TRUNK_PASS" \
  >/dev/null || fail "trunk add named (no --source)"
pal trunk add ghost --host no-such-host.invalid --port "$pport" >/dev/null || fail "trunk add ghost"
pal rule add out --prefix 0 --strip 1 --trunks ghost,named >/dev/null || fail "rule add out"
shown=$(pal trunk show named)
case $shown in *"host (the addresses of localhost only)"*) ;; *) fail "trunk show named: $shown" ;; esac

pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

spawn "$E2E_TMP/prov.out" timeout -k 2 60 sipp -sf "$SCEN/trunk_provider_auth.xml" -i "$PROV" -p "$pport" \
  -mi "$PROV" -mp "$pmedia" -m 1 -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/prov.msg" \
  -trace_err -error_file "$E2E_TMP/prov.err"
prov_pid=$BG_PID
sleep 0.5
alive "$prov_pid" || {
  show "$E2E_TMP/prov.out"
  fail "sipp provider did not start"
}

# ---- 1. outbound: ghost skipped, named reached by its resolved address, the name kept in the Request-URI
rc=0
timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/policy_uac_answered.xml" -inf "$E2E_TMP/call.csv" -i "$CALLER" \
  -p "$cport" -mi "$CALLER" -mp "$cmedia" -m 1 -nostdin -timeout 25 -recv_timeout 10000 -trace_msg \
  -message_file "$E2E_TMP/caller.msg" -trace_err -error_file "$E2E_TMP/caller.err" >"$E2E_TMP/caller.out" 2>&1 \
  </dev/null || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/caller.msg" 40
  show "$E2E_TMP/prov.msg" 30
  show "$PAL_ERR" 20
  fail "the call to 0301234567 through trunk named (host localhost) was not answered (sipp exit $rc)"
}
wait_exit "$prov_pid" 10 || fail "sipp provider still waiting after the call"
ruri=$(tr -d '\r' <"$E2E_TMP/prov.msg" | grep -E '^INVITE ' | head -1)
[ "$ruri" = "INVITE sip:301234567@localhost:$pport SIP/2.0" ] ||
  fail "provider's INVITE '$ruri' (expected INVITE sip:301234567@localhost:$pport SIP/2.0)"
to=$(tr -d '\r' <"$E2E_TMP/prov.msg" | grep -i -m1 '^To:')
case $to in *"sip:301234567@localhost"*) ;; *) fail "provider's INVITE $to (expected the host name)" ;; esac
grep -q 'no-such-host.invalid' "$PAL_ERR" || {
  show "$PAL_ERR" 20
  fail "no warning names the trunk host that does not resolve"
}
ok "0301234567: ghost (no-such-host.invalid) skipped with a warning; named reached at 127.0.0.1 with '$ruri', $to; answered"

# ---- 2. inbound trust follows the resolved address
# inbound FROM NAME: an INVITE without credentials to the unknown DID 4930999999; the status lines it got
inbound() {
  timeout -k 2 20 sipp "$HOST:$port" -sf "$SCEN/trunk_inbound_refused.xml" -s 4930999999 -i "$1" -p "$iport1" \
    -m 1 -nostdin -timeout 15 -recv_timeout 5000 -trace_msg -message_file "$E2E_TMP/$2.msg" \
    >"$E2E_TMP/$2.out" 2>&1 </dev/null || true
  tr -d '\r' <"$E2E_TMP/$2.msg" 2>/dev/null | grep -E '^SIP/2.0 [2-6]' | tr '\n' '|'
}
st=$(inbound "$PROV" fromhost)
case $st in *"SIP/2.0 404 "*) ;; *) fail "INVITE from $PROV (localhost) to an unknown DID: expected 404 (trusted as trunk named), got '$st'" ;; esac
st2=$(inbound "$STRANGER" stranger)
case $st2 in *"SIP/2.0 407 "*) ;; *) fail "INVITE from $STRANGER: expected 407 (not a trunk address), got '$st2'" ;; esac
ok "inbound: from $PROV (what localhost resolves to) -> ${st%|} (trunk named, unknown DID); from $STRANGER -> ${st2%|} (not trusted)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
