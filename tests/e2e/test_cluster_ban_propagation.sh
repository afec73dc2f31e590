#!/usr/bin/env bash
# Configuration and bans everywhere within a second (issue 17, docs/cluster.md): a throwaway PostgreSQL
# (pg_lib.sh) and two `palisade serve` nodes on it, node 1 on 127.0.0.21 and node 2 on 127.0.0.22.
#   * an extension added with the CLI against the database while both run registers at node 2 (sipp) one
#     second later: the configuration change reached node 2 (NOTIFY palisade_config);
#   * svcrack (SIPVicious) against node 1 from 127.0.0.1 until node 1 bans it (auth_failures_before_ban 5);
#     then node 2 drops 127.0.0.1 too, within 1 s of node 1's ban (the automatic ban, written by node 1,
#     announced with NOTIFY palisade_bans);
#   * 10 bans and unbans with `palisade blacklist add|remove --database` while a prober sends OPTIONS to node 2
#     every 2 ms from the banned source (ban_latency.py): each reaches node 2 within 1 s; p50/p99/max printed.
#     (benches/cluster/ban_propagation.sh measures 100.)
#   * the catch-up poll: with node 2's listener unable to hear (PostgreSQL kills its LISTEN backend), a ban
#     still reaches it.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26200} E2E_PORT_MAX=${E2E_PORT_MAX:-26399}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
need sipp svcrack python3 ss psql jq
trap 'e2e_cleanup; pg_stop' EXIT

# svcrack sends from 127.0.0.1 whatever its -b says (sipvicious 0.3), so that is the attacker.
N1=127.0.0.21 N2=127.0.0.22 ATTACKER=127.0.0.1
pg_start "$(free_port)" || fail "could not start PostgreSQL (see above)"
log "PostgreSQL at $PG_URL"
pal() { "$PALISADE_BIN" "$@" --data "$E2E_TMP/cli" --database "$PG_URL"; }
pal security set auth_failures_before_ban 5 >/dev/null || fail "security set auth_failures_before_ban 5"
pal ext add 100 --json >"$E2E_TMP/ext-100.json" || fail "ext add 100"

port=$(free_port)
rtp_range() { # an even RTP port and its RTCP port, free
  local p
  p=$(free_port 3)
  p=$(((p + 1) / 2 * 2))
  echo "$p-$((p + 1))"
}
pal_start "$E2E_TMP/data1" --database "$PG_URL" --listen "udp:$N1:$port" --rtp-ports "$(rtp_range)"
PID1=$PAL_PID ERR1=$PAL_ERR
pal_start "$E2E_TMP/data2" --database "$PG_URL" --listen "udp:$N2:$port" --rtp-ports "$(rtp_range)"
PID2=$PAL_PID ERR2=$PAL_ERR
for e in "$ERR1" "$ERR2"; do
  grep -q 'cluster node' "$e" || {
    show "$e"
    fail "a node on PostgreSQL does not say it runs as a cluster node"
  }
done

# ------------------------------------------------------------------ configuration: a new extension at node 2
pal ext add 101 --json >"$E2E_TMP/ext-101.json" || fail "ext add 101 (while the nodes run)"
sleep 1
inf=$E2E_TMP/reg.inf
printf 'SEQUENTIAL\n101;%s;%s\n' "$(jq -r .auth_id "$E2E_TMP/ext-101.json")" \
  "$(jq -r .password "$E2E_TMP/ext-101.json")" >"$inf"
lport=$(free_port)
rc=0
(cd "$E2E_TMP" && timeout -k 2 20 sipp "$N2:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" -inf "$inf" -t u1 \
  -i "$HOST" -p "$lport" -m 1 -nostdin -timeout 10 -timeout_error -max_retrans 3 \
  -trace_err -error_file "$E2E_TMP/sipp.err" >"$E2E_TMP/sipp.out" 2>&1 </dev/null) || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/sipp.err" 20
  show "$ERR2" 20
  fail "extension 101, added with the CLI while node 2 ran, did not register at node 2 one second later (sipp exit $rc)"
}
ok "an extension added with the CLI registers at node 2 within a second (sipp)"

# ------------------------------------------------------------------ svcrack at node 1, then node 2
probe() { # NODE SRC -> answered|silent
  local r
  r=$(timeout -k 1 5 python3 "$E2E_DIR/guard_client.py" "$1:$port" "$2" probe --timeout 0.15 2>/dev/null || true)
  jq -r .result <<<"$r" 2>/dev/null | grep -qx answered && echo answered || echo silent
}
[ "$(probe "$N2" "$ATTACKER")" = answered ] || fail "node 2 does not answer $ATTACKER before the attack"
dict=$E2E_TMP/dict.txt
for i in $(seq 1 40); do echo "wrong$i"; done >"$dict"
timeout -k 2 8 svcrack -p "$port" -P "$(free_port)" -x "$ATTACKER" -u "$(jq -r .auth_id "$E2E_TMP/ext-100.json")" \
  -e 100 -d "$dict" --maximumtime 3 "$N1" >"$E2E_TMP/svcrack.out" 2>&1 </dev/null &
svcrack_pid=$!
E2E_PIDS+=("$svcrack_pid")
t_ban1='' t_ban2=''
for ((i = 0; i < 100; i++)); do
  if [ -z "$t_ban1" ] && [ "$(probe "$N1" "$ATTACKER")" = silent ]; then t_ban1=$(date +%s%N); fi
  if [ -n "$t_ban1" ] && [ "$(probe "$N2" "$ATTACKER")" = silent ]; then
    t_ban2=$(date +%s%N)
    break
  fi
  [ -n "$t_ban1" ] || sleep 0.05
done
[ -n "$t_ban1" ] || {
  show "$E2E_TMP/svcrack.out" 20
  show "$ERR1" 20
  fail "svcrack was never banned by node 1"
}
[ -n "$t_ban2" ] || fail "node 2 still answers $ATTACKER although node 1 banned it"
delay=$(((t_ban2 - t_ban1) / 1000000))
[ "$delay" -le 1000 ] || fail "node 2 dropped $ATTACKER ${delay} ms after node 1 (limit 1000 ms)"
ok "svcrack banned by node 1; node 2 silent for it ${delay} ms later (probe resolution ~150 ms)"
wait "$svcrack_pid" 2>/dev/null || true
rule=$(psql -XAtq "$PG_URL" -c "SELECT origin || ' ' || reason FROM ip_rules WHERE net = '$ATTACKER/32'")
[ "$rule" = "auto auth_failures" ] || fail "PostgreSQL holds '$rule' for $ATTACKER, expected an automatic auth_failures ban"

# ------------------------------------------------------------------ 10 bans and unbans: latency
out=$E2E_TMP/latency.json
timeout -k 2 40 python3 "$E2E_DIR/ban_latency.py" "$N2:$port" 127.0.1.1 10 -- \
  "$PALISADE_BIN" --data "$E2E_TMP/cli" --database "$PG_URL" >"$out" 2>"$E2E_TMP/latency.err" || {
  show "$E2E_TMP/latency.err"
  show "$out"
  fail "ban_latency.py: a ban or unban did not reach node 2"
}
log "ban propagation to node 2 over 10 bans (ms from \`palisade blacklist add\` starting): $(jq -c .ban_ms "$out")"
log "  from the command's exit: $(jq -c .ban_after_exit_ms "$out"); unban: $(jq -c .unban_ms "$out")"
max=$(jq -r '.ban_ms.max | floor' "$out") umax=$(jq -r '.unban_ms.max | floor' "$out")
[ "$max" -le 1000 ] || fail "a ban took ${max} ms to reach node 2 (limit 1000)"
[ "$umax" -le 1000 ] || fail "an unban took ${umax} ms to reach node 2 (limit 1000)"
ok "10 bans and 10 unbans each reached node 2 within 1 s (ban max ${max} ms, unban max ${umax} ms)"

# ------------------------------------------------------------------ the catch-up poll without the listener
# Terminate node 2's LISTEN backend and ban at once: the listener reconnects with backoff, the poll converges.
psql -XAtq "$PG_URL" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'" \
  >/dev/null || fail "psql pg_terminate_backend"
pal blacklist add 127.0.2.1 >/dev/null || fail "blacklist add 127.0.2.1"
t0=$(date +%s%N) silent=''
for ((i = 0; i < 20; i++)); do
  if [ "$(probe "$N2" 127.0.2.1)" = silent ]; then
    silent=$((($(date +%s%N) - t0) / 1000000))
    break
  fi
done
[ -n "$silent" ] || fail "with its listener cut, node 2 never applied the ban of 127.0.2.1"
ok "with node 2's listener connection killed, the ban still reached node 2 (${silent} ms after the command)"
grep -q 'change listener' "$ERR2" || fail "node 2 did not log that its change listener disconnected"

{ alive "$PID1" && alive "$PID2"; } || fail "a node died"
no_panic "$ERR1"
no_panic "$ERR2"
pal_stop "$PID2"
pal_stop "$PID1"
