#!/usr/bin/env bash
# Trunk registration (Palisade as a UAC sending REGISTER), over UDP. Each provider is a sipp UAS registrar on
# its own loopback address (scenarios/trunk_register_uas.xml: 401 with a Digest challenge, then verifyauth on
# the Authorization; right credentials -> 200 Expires: 60, wrong -> 401 again).
# What must happen:
#   * trunk carrier (127.0.0.70, --register on, right password): the provider gets a REGISTER without
#     credentials, then one with Authorization username="palisade-trunk" that verifyauth accepts; From/To
#     sip:palisade-trunk@127.0.0.70, Contact <sip:127.0.0.1:PORT>, Expires 3600, the same Call-ID and a higher
#     CSeq; `palisade trunk show carrier` then says registered (until about 60 s later);
#   * trunk badcarrier (127.0.0.71, wrong password), added on the running server: the provider gets exactly two
#     REGISTERs in 5 s (the first and one answer to its challenge; no loop on the refused password), and
#     `palisade trunk show badcarrier` says failed, with an error naming the refused credentials and a retry
#     30 s later;
#   * `palisade trunk set carrier --register off`: the provider gets a REGISTER with Expires: 0 (answered
#     after its challenge) and the trunk shows registration off;
#   * registration on again, then SIGTERM: Palisade unregisters carrier (Expires: 0, after the challenge) before
#     it exits.
# Ports: 31700-31749.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31700 E2E_PORT_MAX=31749
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

PROV=127.0.0.70 BAD=127.0.0.71
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
printf 'SEQUENTIAL\n%s;%s\n' "$TRUNK_USER" "$TRUNK_PASS" >"$E2E_TMP/creds.csv"

# One block: palisade, the good provider, the bad provider.
block=$(free_port 3)
port=$block pport=$((block + 1)) bport=$((block + 2))

# registrar NAME IP PORT CALLS: a sipp registrar; PID in REG_PID
registrar() {
  spawn "$E2E_TMP/$1.out" timeout -k 2 60 sipp -sf "$SCEN/trunk_register_uas.xml" -inf "$E2E_TMP/creds.csv" \
    -i "$2" -p "$3" -m "$4" -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/$1.msg" \
    -trace_err -error_file "$E2E_TMP/$1.err"
  REG_PID=$BG_PID
  sleep 0.5
  alive "$REG_PID" || {
    show "$E2E_TMP/$1.out"
    fail "sipp registrar $1 did not start"
  }
}
# registrar_done NAME PID SECONDS: the registrar ran its registrations to the end (exit 0)
registrar_done() {
  local rc=0
  wait_exit "$2" "$3" || {
    show "$E2E_TMP/$1.msg" 40
    show "$PAL_ERR" 20
    fail "sipp registrar $1 still waiting after $3 s (its scenario did not complete)"
  }
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$1.msg" 60
    show "$E2E_TMP/$1.err" 10
    fail "sipp registrar $1 exited $rc (a REGISTER missing its Authorization, or verifyauth failed)"
  }
}
# registers NAME: the number of REGISTERs the registrar received
registers() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -c '^REGISTER ' || true; }
# hdr_of_register NAME N HEADER: header HEADER of the Nth REGISTER (1-based) the registrar received
hdr_of_register() {
  python3 - "$E2E_TMP/$1.msg" "$2" "$3" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r\n", "\n")
msgs = re.split(r"\n(?=REGISTER |SIP/2.0 )", text)
regs = [m for m in msgs if m.lstrip().startswith("REGISTER ")]
n, name = int(sys.argv[2]), sys.argv[3].lower()
if len(regs) < n:
    sys.exit(f"only {len(regs)} REGISTERs")
for line in regs[n - 1].split("\n")[1:]:
    if ":" in line and line.split(":", 1)[0].strip().lower() == name:
        print(line.split(":", 1)[1].strip())
        break
PY
}
# reg_field TRUNK EXPR: a field of `trunk show TRUNK --json` (r = the trunk, g = its registration or {})
reg_field() {
  pal trunk show "$1" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); g=r.get("registration") or {}; print(eval(sys.argv[1]))' "$2"
}
# wait_state TRUNK STATE: until the trunk's registration state is STATE (at most 5 s)
wait_state() {
  local i
  for ((i = 0; i < 50; i++)); do
    [ "$(reg_field "$1" 'g.get("state")')" = "$2" ] && return 0
    sleep 0.1
  done
  show "$PAL_ERR" 20
  fail "trunk $1: registration state '$(reg_field "$1" 'g.get("state")')' after 5 s (expected $2): $(pal trunk show "$1")"
}

pal trunk add carrier --host "$PROV" --port "$pport" --username "$TRUNK_USER" --password "$TRUNK_PASS" \
  --register on --source "$PROV/32" >/dev/null || fail "trunk add carrier"

# ---- 1. register with the right password
registrar good "$PROV" "$pport" 1
pal_start "$data" --listen "udp:$HOST:$port"
registrar_done good "$REG_PID" 10
[ "$(registers good)" = 2 ] || fail "the registrar got $(registers good) REGISTERs (expected 2: one, then one answering its 401)"
auth=$(hdr_of_register good 2 authorization)
case $auth in *"username=\"$TRUNK_USER\""*) ;; *) fail "second REGISTER's Authorization: '$auth' (expected username=\"$TRUNK_USER\")" ;; esac
case $auth in *'realm="carrier.e2e.test"'*) ;; *) fail "Authorization realm: '$auth'" ;; esac
[ -z "$(hdr_of_register good 1 authorization)" ] || fail "the first REGISTER already carried credentials"
from=$(hdr_of_register good 1 from)
to=$(hdr_of_register good 1 to)
contact=$(hdr_of_register good 1 contact)
expires=$(hdr_of_register good 1 expires)
case $from in "<sip:$TRUNK_USER@$PROV>;tag="*) ;; *) fail "REGISTER From: '$from' (expected <sip:$TRUNK_USER@$PROV>;tag=...)" ;; esac
[ "$to" = "<sip:$TRUNK_USER@$PROV>" ] || fail "REGISTER To: '$to' (expected <sip:$TRUNK_USER@$PROV>)"
[ "$contact" = "<sip:$HOST:$port>" ] || fail "REGISTER Contact: '$contact' (expected <sip:$HOST:$port>)"
[ "$expires" = 3600 ] || fail "REGISTER Expires: '$expires' (expected 3600)"
[ "$(hdr_of_register good 1 call-id)" = "$(hdr_of_register good 2 call-id)" ] || fail "the answer to the challenge changed the Call-ID"
cseq1=$(hdr_of_register good 1 cseq) cseq2=$(hdr_of_register good 2 cseq)
[ "${cseq2%% *}" -gt "${cseq1%% *}" ] || fail "CSeq did not increase: '$cseq1' then '$cseq2'"
wait_state carrier registered
until=$(reg_field carrier 'g.get("registered_until")')
if [ -z "$until" ] || [ "$until" = None ]; then
  fail "trunk carrier registered without a registered_until: $(pal trunk show carrier --json)"
fi
ok "carrier: REGISTER ($cseq1, From $from, Contact $contact, Expires $expires), 401, REGISTER ($cseq2) with Authorization username=$TRUNK_USER accepted by verifyauth; trunk show: registered until $until"
log "trunk list: $(pal trunk list | tr '\n' '|')"

# ---- 2. a wrong password: two REGISTERs, then back-off, and a visible error
registrar bad "$BAD" "$bport" 2
pal trunk add badcarrier --host "$BAD" --port "$bport" --username "$TRUNK_USER" --password wrong-password \
  --register --source "$BAD/32" >/dev/null || fail "trunk add badcarrier"
wait_state badcarrier failed
sleep 5
n=$(registers bad)
[ "$n" = 2 ] || {
  show "$E2E_TMP/bad.msg" 40
  fail "with a wrong password the registrar got $n REGISTERs within about 6 s (expected 2: no retry loop)"
}
err=$(reg_field badcarrier 'g.get("last_error")')
case $err in *"refused the credentials"*"--password"*) ;; *) fail "badcarrier's last error: '$err'" ;; esac
next=$(reg_field badcarrier 'g.get("next_attempt")')
text=$(pal trunk show badcarrier)
case $text in *"last error:"*"refused the credentials"*) ;; *) fail "trunk show badcarrier does not show the error: $text" ;; esac
stop_pid "$REG_PID"
ok "badcarrier (wrong password): 2 REGISTERs in about 6 s, then nothing; trunk show: failed, '$err', next attempt $next"

# ---- 3. registration turned off: unregistered with Expires: 0
registrar unreg "$PROV" "$pport" 1
pal trunk set carrier --register off >/dev/null || fail "trunk set carrier --register off"
registrar_done unreg "$REG_PID" 10
[ "$(hdr_of_register unreg 1 expires)" = 0 ] || fail "after --register off the provider got Expires '$(hdr_of_register unreg 1 expires)' (expected 0)"
[ "$(hdr_of_register unreg 1 call-id)" = "$(hdr_of_register good 1 call-id)" ] ||
  fail "the unregistration used another Call-ID than the registration"
for ((i = 0; i < 30; i++)); do
  [ "$(reg_field carrier 'r["register"]')" = False ] && break
  sleep 0.1
done
text=$(pal trunk show carrier)
case $text in *"registration:"*"off"*) ;; *) fail "trunk show carrier after --register off: $text" ;; esac
ok "--register off: the provider got REGISTER Expires: 0 (same Call-ID, answered after its 401); trunk show: registration off"

# ---- 4. shutdown: a registered trunk is unregistered before Palisade exits
registrar again "$PROV" "$pport" 1
pal trunk set carrier --register on >/dev/null || fail "trunk set carrier --register on"
wait_state carrier registered
registrar_done again "$REG_PID" 10
registrar bye "$PROV" "$pport" 1
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
registrar_done bye "$REG_PID" 10
[ "$(hdr_of_register bye 1 expires)" = 0 ] ||
  fail "the REGISTER at shutdown has Expires '$(hdr_of_register bye 1 expires)' (expected 0)"
[ "$(hdr_of_register bye 1 call-id)" = "$(hdr_of_register again 1 call-id)" ] ||
  fail "the unregistration at shutdown used another Call-ID than the registration"
ok "shutdown: Palisade unregistered carrier (REGISTER Expires: 0, answered after its 401) before exiting"
