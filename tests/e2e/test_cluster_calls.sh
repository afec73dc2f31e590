#!/usr/bin/env bash
# Shared registrations across nodes (issue 17, docs/cluster.md): a throwaway PostgreSQL (pg_lib.sh) and two
# `palisade serve` nodes on it, n1 at 127.0.0.31 and n2 at 127.0.0.32. Headless baresip phones: 201 (440 Hz
# microphone) registers at n1, 202 (880 Hz) at n2, both auto-answer.
#   * PostgreSQL tags each registration with the node holding the phone's flow (201 -> n1, 202 -> n2) and has a
#     fresh heartbeat row per node;
#   * 201 dials 202 through n1: n1 forwards the call to n2 by a signed internal hop (n2 logs it) and n2 rings 202
#     on its own flow; audio both ways (sndfile dumps: 201 hears 880 Hz, 202 hears 440 Hz);
#   * 202 dials 201 through n2 the other way round, audio both ways again;
#   * forged internal hops to n2 are refused with 403 and recorded as `cluster_hop_refused` events: from a
#     non-node address with a random signature, from a non-node address with the real cluster secret, from n1's
#     own address with a random signature, and from n1's address correctly signed but two minutes old.
# Ports: SIP/ctrl/PostgreSQL 26400-26499, baresip RTP 26500-26539, relays n1 26540-26569, n2 26570-26599.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26400 E2E_PORT_MAX=26499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$E2E_DIR/baresip_lib.sh"
need baresip python3 ss sox psql
trap 'e2e_cleanup; pg_stop' EXIT

N1=127.0.0.31 N2=127.0.0.32
CTRL=$E2E_DIR/baresip_ctrl.py
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
freq() { sox "$1" -n stat 2>&1 | awk '/Rough +frequency/{print $3}'; }
near() { [ -n "$1" ] && [ "$1" -gt $(($2 * 90 / 100)) ] && [ "$1" -lt $(($2 * 110 / 100)) ]; }
sql() { psql -XAtq "$PG_URL" -c "$1"; }

pg_start || fail "could not start PostgreSQL (see above)"
log "PostgreSQL at $PG_URL"
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 201 202 --data "$E2E_TMP/admin" --database "$PG_URL" >"$csv" 2>"$E2E_TMP/add.err" || {
  show "$E2E_TMP/add.err"
  fail "ext add-range 201 202 --database"
}
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

p1=$(free_port)
p2=$(free_port)
pal_start "$E2E_TMP/n1" --database "$PG_URL" --node n1 --listen "udp:$N1:$p1" --rtp-ports 26540-26569
N1_PID=$PAL_PID N1_ERR=$PAL_ERR
pal_start "$E2E_TMP/n2" --database "$PG_URL" --node n2 --listen "udp:$N2:$p2" --rtp-ports 26570-26599
N2_PID=$PAL_PID N2_ERR=$PAL_ERR
nodes=$(sql "SELECT name || '=' || sip_addr FROM cluster_nodes ORDER BY name" | tr '\n' ' ')
[ "$nodes" = "n1=$N1:$p1 n2=$N2:$p2 " ] || fail "cluster_nodes holds '$nodes', expected n1=$N1:$p1 n2=$N2:$p2"
ok "both nodes joined: $nodes"

d=$E2E_TMP/phones
sa=$(free_port 3) # SIP, (unused), ctrl
sb=$(free_port 3)
baresip_conf "$d/a" "$sa" $((sa + 2)) 26500 26519 440 \
  "<sip:201@$N1:$p1;transport=udp>;auth_user=$(cred 201 2);auth_pass=$(cred 201 3);answermode=auto;regint=600"
baresip_conf "$d/b" "$sb" $((sb + 2)) 26520 26539 880 \
  "<sip:202@$N2:$p2;transport=udp>;auth_user=$(cred 202 2);auth_pass=$(cred 202 3);answermode=auto;regint=600"
spawn "$d/a.log" timeout -k 2 55 baresip -f "$d/a" -t 50
spawn "$d/b.log" timeout -k 2 55 baresip -f "$d/b" -t 50
for ((i = 0; i < 100; i++)); do
  grep -q "201@$N1: {0/UDP/v4} 200 OK" "$d/a.log" && grep -q "202@$N2: {0/UDP/v4} 200 OK" "$d/b.log" && break
  sleep 0.1
done
if ! grep -q "201@$N1: {0/UDP/v4} 200 OK" "$d/a.log" || ! grep -q "202@$N2: {0/UDP/v4} 200 OK" "$d/b.log"; then
  show "$d/a.log"
  show "$d/b.log"
  fail "baresip 201 (at n1) and 202 (at n2) did not both register"
fi
# Registrations are written behind (within 0.5 s) and each node refreshes its view of the others every second.
for ((i = 0; i < 50; i++)); do
  regs=$(sql "SELECT aor || '@' || node FROM registrations ORDER BY aor" | tr '\n' ' ')
  [ "$regs" = "201@n1 202@n2 " ] && break
  sleep 0.1
done
[ "$regs" = "201@n1 202@n2 " ] || fail "registrations in PostgreSQL: '$regs', expected 201@n1 202@n2"
sleep 1.5
ok "201 registered at n1, 202 at n2; PostgreSQL tags them: $regs"

# call CALLER_CTRL CALLER_LOG CALLEE_LOG URI CALLEE_AOR LABEL: dials, checks both sides connected, talks ~4 s,
# hangs up; leaves the new received-audio dumps' frequencies in CALLER_HZ and CALLEE_HZ.
call() {
  local cc=$1 clog=$2 elog=$3 uri=$4 callee=$5 label=$6 mark=$E2E_TMP/mark.$RANDOM wa wb
  touch "$mark"
  sleep 0.05
  if ! ctrl "$HOST:$cc" --wait-event CALL_ESTABLISHED --timeout 10 dial "$uri" >"$E2E_TMP/dial.json" 2>&1; then
    show "$E2E_TMP/dial.json"
    show "$clog" 30
    show "$elog" 30
    show "$N1_ERR" 30
    show "$N2_ERR" 30
    fail "$label: no CALL_ESTABLISHED within 10 s"
  fi
  local n
  n=$(grep -c "$callee: Call established" "$elog" || true)
  [ "$n" -ge 1 ] || fail "$label: the caller is in the call but the callee does not say 'Call established'"
  sleep 4
  ctrl "$HOST:$cc" --wait-event CALL_CLOSED --timeout 5 hangup >"$E2E_TMP/hangup.json" 2>&1 ||
    fail "$label: hangup: no CALL_CLOSED: $(cat "$E2E_TMP/hangup.json")"
  sleep 1
  wa=$(find "$(dirname "$clog")/$(basename "$clog" .log)/snd" -name '*dec.wav' -newer "$mark" | sort | head -1)
  wb=$(find "$(dirname "$elog")/$(basename "$elog" .log)/snd" -name '*dec.wav' -newer "$mark" | sort | head -1)
  if [ -z "$wa" ] || [ -z "$wb" ]; then fail "$label: no received-audio dump (sndfile *dec.wav) from this call"; fi
  CALLER_HZ=$(freq "$wa")
  CALLEE_HZ=$(freq "$wb")
}

call $((sa + 2)) "$d/a.log" "$d/b.log" "sip:202@$N1:$p1" "202@$N2" "201 -> 202 via n1"
if ! near "$CALLER_HZ" 880 || ! near "$CALLEE_HZ" 440; then
  fail "201 -> 202: 201 heard ${CALLER_HZ:-?} Hz (want 880), 202 heard ${CALLEE_HZ:-?} Hz (want 440)"
fi
grep -q 'internal hop.*from_node=n1' "$N2_ERR" || grep -q 'from_node.*n1.*internal hop' "$N2_ERR" || {
  show "$N2_ERR" 30
  fail "201 -> 202: n2 does not log an internal hop from n1"
}
ok "201 -> 202 through n1, hop to n2: 201 heard $CALLER_HZ Hz (want 880), 202 heard $CALLEE_HZ Hz (want 440)"

call $((sb + 2)) "$d/b.log" "$d/a.log" "sip:201@$N2:$p2" "201@$N1" "202 -> 201 via n2"
if ! near "$CALLER_HZ" 440 || ! near "$CALLEE_HZ" 880; then
  fail "202 -> 201: 202 heard ${CALLER_HZ:-?} Hz (want 440), 201 heard ${CALLEE_HZ:-?} Hz (want 880)"
fi
grep -q 'internal hop.*from_node=n2' "$N1_ERR" || grep -q 'from_node.*n2.*internal hop' "$N1_ERR" || {
  show "$N1_ERR" 30
  fail "202 -> 201: n1 does not log an internal hop from n2"
}
ok "202 -> 201 through n2, hop to n1: 202 heard $CALLER_HZ Hz (want 440), 201 heard $CALLEE_HZ Hz (want 880)"

# Forged hops to n2.
secret=$(sql "SELECT value FROM settings WHERE key = 'cluster_secret'")
[ ${#secret} -ge 32 ] || fail "no cluster secret in the settings table"
forge() { timeout -k 1 10 python3 "$E2E_DIR/hop_forge.py" "$N2:$p2" "$@" 2>&1 || true; }
for case in "$HOST|random signature from a non-node address|" \
  "$HOST|the real secret from a non-node address|--secret $secret" \
  "$N1|random signature from n1's address|" \
  "$N1|n1's address, signed, two minutes old|--secret $secret --age 120"; do
  IFS='|' read -r src what extra <<<"$case"
  # shellcheck disable=SC2086 # extra holds separate words
  got=$(forge "$src" 202 n1 $extra)
  [ "$got" = 403 ] || fail "forged hop ($what): n2 answered '$got', expected 403"
  ok "forged hop refused with 403: $what"
done
for ((i = 0; i < 30; i++)); do
  refused=$(sql "SELECT count(*) FROM security_events WHERE reason = 'cluster_hop_refused'")
  [ "$refused" -ge 4 ] && break
  sleep 0.1
done
[ "$refused" -ge 4 ] || fail "$refused cluster_hop_refused security events, expected 4"
ok "$refused cluster_hop_refused security events recorded"

for ctl in $((sa + 2)) $((sb + 2)); do ctrl "$HOST:$ctl" --timeout 2 quit >/dev/null 2>&1 || true; done
if ! alive "$N1_PID" || ! alive "$N2_PID"; then fail "a node died"; fi
no_panic "$N1_ERR"
no_panic "$N2_ERR"
pal_stop "$N1_PID"
pal_stop "$N2_PID"
