#!/usr/bin/env bash
# Database loss (issue 17, docs/cluster.md): two `palisade serve` nodes on one throwaway PostgreSQL; two real
# softphones (headless baresip: A = 100 with a 440 Hz tone, B = 101 with 880 Hz, auto-answer) registered at node 1.
# A calls B, then PostgreSQL is stopped (fast shutdown: every connection cut) for OUTAGE seconds (default 30):
#   * the call goes on: both phones keep the call, and the relay keeps sending RTP to both (tshark, 2 s window)
#     in the middle of the outage;
#   * A hangs up and calls B again during the outage: the new call is established (the call path needs no
#     database);
#   * an admin write (`palisade ext add 102 --database`) fails with "the database is unreachable; the change was
#     not saved" and exit status 1;
#   * wrong passwords from 127.0.0.51 at node 1 (auth_failures_before_ban 3): node 1 drops 127.0.0.51 at once,
#     node 2 still answers it (it cannot know yet);
# then PostgreSQL starts again:
#   * node 1 writes the queued ban by itself and node 2 drops 127.0.0.51 within a few seconds (measured);
#   * the call records of the calls that ended during the outage are in the database;
#   * the admin write works again; the nodes logged losing and regaining the database; no panic.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26200} E2E_PORT_MAX=${E2E_PORT_MAX:-26399}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$E2E_DIR/baresip_lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
need baresip python3 ss psql jq tshark
trap 'e2e_cleanup; pg_stop' EXIT

OUTAGE=${OUTAGE:-30}
N1=127.0.0.21 N2=127.0.0.22 ATTACKER=127.0.0.51
CTRL=$E2E_DIR/baresip_ctrl.py
pg_start "$(free_port)" || fail "could not start PostgreSQL (see above)"
pal() { "$PALISADE_BIN" "$@" --data "$E2E_TMP/cli" --database "$PG_URL"; }
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set auth_failures_before_ban 3"
csv=$E2E_TMP/credentials.csv
pal ext add-range 100 101 2>/dev/null | grep -E '^[0-9]+,' >"$csv" || fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port)
relay=$(free_port 12)
relay=$(((relay + 1) / 2 * 2))
RTP_LO=$relay RTP_HI=$((relay + 9))
pal_start "$E2E_TMP/data1" --database "$PG_URL" --listen "udp:$N1:$port" --rtp-ports "$RTP_LO-$RTP_HI"
PID1=$PAL_PID ERR1=$PAL_ERR
rtp2=$(free_port 3)
rtp2=$(((rtp2 + 1) / 2 * 2))
pal_start "$E2E_TMP/data2" --database "$PG_URL" --listen "udp:$N2:$port" --rtp-ports "$rtp2-$((rtp2 + 1))"
PID2=$PAL_PID ERR2=$PAL_ERR

# ------------------------------------------------------------------ two phones at node 1, a call
ctrl() { timeout -k 1 20 python3 "$CTRL" "$@"; }
sa=$(free_port 3) sb=$(free_port 3) pa=$(free_port 10) pb=$(free_port 10)
ca=$((sa + 2)) cb=$((sb + 2))
baresip_conf "$E2E_TMP/a" "$sa" "$ca" "$pa" $((pa + 9)) 440 \
  "<sip:100@$N1:$port;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$E2E_TMP/b" "$sb" "$cb" "$pb" $((pb + 9)) 880 \
  "<sip:101@$N1:$port;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"
limit=$((OUTAGE + 40))
spawn "$E2E_TMP/b.log" timeout -k 2 "$limit" baresip -f "$E2E_TMP/b" -t $((limit - 5))
bpid=$BG_PID
spawn "$E2E_TMP/a.log" timeout -k 2 "$limit" baresip -f "$E2E_TMP/a" -t $((limit - 5))
apid=$BG_PID
for ((i = 0; i < 100; i++)); do
  grep -q "100@$N1: {0/UDP/v4} 200 OK" "$E2E_TMP/a.log" && grep -q "101@$N1: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log" && break
  sleep 0.1
done
{ grep -q "101@$N1: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log" && grep -q "100@$N1: {0/UDP/v4} 200 OK" "$E2E_TMP/a.log"; } || {
  show "$E2E_TMP/a.log"
  show "$E2E_TMP/b.log"
  fail "baresip A (100) and B (101) did not both register at node 1"
}
dial() { # the label for messages
  ctrl "$HOST:$ca" --wait-event CALL_ESTABLISHED --timeout 10 dial "sip:101@$N1:$port" >"$E2E_TMP/dial-$1.json" 2>&1 || {
    show "$E2E_TMP/dial-$1.json"
    show "$E2E_TMP/a.log" 20
    show "$ERR1" 30
    fail "$1: A dialled 101: no CALL_ESTABLISHED within 10 s"
  }
}
dial "before the outage"
ok "100 and 101 registered at node 1; A called B, call established"

# RTP the relay sends to a phone's RTP range during a 2 s window: prints the packet count.
relay_rtp() { # phone_rtp_lo
  timeout -k 2 5 tshark -i lo -a duration:2 -q -z io,stat,0 \
    -f "udp and src host $N1 and src portrange $RTP_LO-$RTP_HI and dst portrange $1-$(($1 + 9))" 2>/dev/null |
    awk -F'|' '/<>/{gsub(/ /, "", $3); print $3}' | tail -1
}

# ------------------------------------------------------------------ the outage
pg_down || fail "could not stop PostgreSQL"
t_down=$(date +%s)
log "PostgreSQL stopped for ${OUTAGE} s"

out=$E2E_TMP/ext-add-down.out
rc=0
pal ext add 102 >"$out" 2>&1 || rc=$?
[ "$rc" = 1 ] || {
  show "$out"
  fail "ext add during the outage exited $rc, expected 1"
}
grep -q 'the database is unreachable; the change was not saved' "$out" || {
  show "$out"
  fail "ext add during the outage does not say the database is unreachable and the change was not saved"
}
ok "an admin write during the outage is refused: $(head -1 "$out")"

probe() { # NODE SRC -> answered|silent
  local r
  r=$(timeout -k 1 5 python3 "$E2E_DIR/guard_client.py" "$1:$port" "$2" probe --timeout 0.3 2>/dev/null || true)
  jq -r .result <<<"$r" 2>/dev/null | grep -qx answered && echo answered || echo silent
}
timeout -k 1 20 python3 "$E2E_DIR/guard_client.py" "$N1:$port" "$ATTACKER" auth 3 100 "$(cred 100 2)" wrong \
  --timeout 1 >"$E2E_TMP/guesses.json" 2>&1 || true
[ "$(probe "$N1" "$ATTACKER")" = silent ] || fail "node 1 did not ban $ATTACKER after 3 wrong passwords during the outage"
[ "$(probe "$N2" "$ATTACKER")" = answered ] || fail "node 2 dropped $ATTACKER while the database was down (how?)"
ok "during the outage node 1 bans $ATTACKER at once (node 2 cannot know yet)"

while (($(date +%s) - t_down < OUTAGE / 2)); do sleep 0.5; done
grep -q CALL_CLOSED "$E2E_TMP/a.log" && fail "the call before the outage was closed during it"
na=$(relay_rtp "$pa") nb=$(relay_rtp "$pb")
{ [ "${na:-0}" -ge 50 ] && [ "${nb:-0}" -ge 50 ]; } || fail "mid-outage, the relay sent ${na:-0} RTP packets to A and ${nb:-0} to B in 2 s (expected >= 50 each)"
ok "$(($(date +%s) - t_down)) s into the outage the call goes on: the relay sent $na RTP packets to A and $nb to B in 2 s"
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$E2E_TMP/hangup1.json" 2>&1 || fail "hangup during the outage"
sleep 0.5
dial "during the outage"
nb=$(relay_rtp "$pb")
[ "${nb:-0}" -ge 50 ] || fail "a call made during the outage: the relay sent ${nb:-0} RTP packets to B in 2 s"
ok "a new call during the outage is established and carries audio ($nb packets to B in 2 s)"
ctrl "$HOST:$ca" --wait-event CALL_CLOSED --timeout 5 hangup >"$E2E_TMP/hangup2.json" 2>&1 || fail "hangup 2 during the outage"

while (($(date +%s) - t_down < OUTAGE)); do sleep 0.5; done
pg_up || fail "could not start PostgreSQL again"
t_up=$(date +%s%N)
log "PostgreSQL started again"

# ------------------------------------------------------------------ after the outage
silent=''
for ((i = 0; i < 60; i++)); do
  if [ "$(probe "$N2" "$ATTACKER")" = silent ]; then
    silent=$((($(date +%s%N) - t_up) / 1000000))
    break
  fi
  sleep 0.2
done
[ -n "$silent" ] || {
  show "$ERR1" 30
  fail "the ban made on node 1 during the outage never reached node 2 after the database returned"
}
ok "the ban node 1 queued during the outage reached node 2 ${silent} ms after PostgreSQL started again"
rule=$(psql -XAtq "$PG_URL" -c "SELECT origin FROM ip_rules WHERE net = '$ATTACKER/32'")
[ "$rule" = auto ] || fail "PostgreSQL holds '$rule' for $ATTACKER, expected the automatic ban"

cdrs=''
for ((i = 0; i < 30; i++)); do
  cdrs=$(psql -XAtq "$PG_URL" -c "SELECT count(*) FROM cdr WHERE caller = '100' AND callee = '101' AND disposition = 'answered'" 2>/dev/null || true)
  [ "$cdrs" = 2 ] && break
  sleep 0.2
done
[ "$cdrs" = 2 ] || fail "PostgreSQL holds ${cdrs:-?} answered 100->101 call records, expected the 2 that ended during the outage"
ok "the 2 call records of calls that ended during the outage were written when the database returned"

pal ext add 102 >/dev/null 2>"$E2E_TMP/ext-add-up.err" || {
  show "$E2E_TMP/ext-add-up.err"
  fail "ext add after the database returned"
}
ok "admin writes work again"
grep -q 'the database is unreachable' "$ERR1" || fail "node 1 did not log losing the database"
grep -q 'reachable again' "$ERR1" || fail "node 1 did not log the database coming back"
grep -q 'change listener reconnected' "$ERR2" || fail "node 2's change listener did not log reconnecting"
{ alive "$PID1" && alive "$PID2" && alive "$apid" && alive "$bpid"; } || fail "a node or a phone died"
no_panic "$ERR1"
no_panic "$ERR2"
pal_stop "$PID2"
pal_stop "$PID1"
