#!/usr/bin/env bash
# Ban propagation across cluster nodes (issue 17, docs/cluster.md): a throwaway PostgreSQL (tests/e2e/pg_lib.sh)
# and two `palisade serve` nodes on it (127.0.0.21, 127.0.0.22), on loopback. For each of COUNT sources
# (127.0.1.1, …), tests/e2e/ban_latency.py runs `palisade blacklist add SRC --database URL` (a separate process,
# as an administrator would: the ban goes into the database, not through a node) while sending an OPTIONS from
# SRC to node 2 every 2 ms; the ban's latency is the time from starting the command to the first probe node 2
# dropped; then `blacklist remove` and the time to the first answered probe (unban). Prints p50/p99/max of both
# (and of the ban measured from the command's exit) and writes results/bans-<date>.txt.
#
# usage: benches/cluster/ban_propagation.sh [-n COUNT] [-o FILE]     default 100 bans (~50 s)
#   -Z  smoke mode (CI, scripts/bench-smoke.sh): 5 bans, exits 1 unless each reached node 2 within 1 s
# Environment: PALISADE_BIN (default target/release/palisade if built, else target/debug/palisade), KEEP=1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
COUNT=100 OUT='' SMOKE=0
while getopts "n:o:Zh" o; do
  case $o in
    n) COUNT=$OPTARG ;; o) OUT=$OPTARG ;; Z) SMOKE=1 COUNT=5 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
{ [[ $COUNT =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 1 ] && [ "$COUNT" -le 250 ]; } || {
  echo "cluster bench: -n takes 1..250" >&2
  exit 2
}
REPO=$(cd "$HERE/../.." && pwd)
if [ -z "${PALISADE_BIN:-}" ]; then
  PALISADE_BIN=$REPO/target/release/palisade
  [ -x "$PALISADE_BIN" ] || PALISADE_BIN=$REPO/target/debug/palisade
fi
export PALISADE_BIN E2E_PORT_MIN=${E2E_PORT_MIN:-26200} E2E_PORT_MAX=${E2E_PORT_MAX:-26399}
E2E_KEEP=${KEEP:-0}
export E2E_KEEP
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$REPO/tests/e2e/pg_lib.sh"
need python3 psql jq ss
trap 'e2e_cleanup; pg_stop' EXIT

N1=127.0.0.21 N2=127.0.0.22
pg_start "$(free_port)" || fail "could not start PostgreSQL"
port=$(free_port)
even_pair() {
  local p
  p=$(free_port 3)
  p=$(((p + 1) / 2 * 2))
  echo "$p-$((p + 1))"
}
pal_start "$E2E_TMP/data1" --database "$PG_URL" --listen "udp:$N1:$port" --rtp-ports "$(even_pair)"
pal_start "$E2E_TMP/data2" --database "$PG_URL" --listen "udp:$N2:$port" --rtp-ports "$(even_pair)"
out=$E2E_TMP/latency.json
t0=$SECONDS
rc=0
timeout -k 2 $((COUNT * 3 + 30)) python3 "$REPO/tests/e2e/ban_latency.py" "$N2:$port" 127.0.1.1 "$COUNT" -- \
  "$PALISADE_BIN" --data "$E2E_TMP/cli" --database "$PG_URL" >"$out" 2>"$E2E_TMP/latency.err" || rc=$?
[ -s "$out" ] || {
  show "$E2E_TMP/latency.err"
  fail "ban_latency.py produced nothing (exit $rc)"
}
report=$(
  cat <<REPORT
Ban propagation, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(basename "$(dirname "$PALISADE_BIN")") binary, $(nproc) CPUs,
PostgreSQL $(psql -XAtq "$PG_URL" -c 'SHOW server_version'), two nodes on loopback, $COUNT bans ($((SECONDS - t0)) s):
  ban   (from \`palisade blacklist add\` starting to node 2 dropping the source): $(jq -c .ban_ms "$out")
  ban   (from the command's exit):                                             $(jq -c .ban_after_exit_ms "$out")
  unban (from \`palisade blacklist remove\` starting to node 2 answering):       $(jq -c .unban_ms "$out")
  failures: $(jq -c .failures "$out")
REPORT
)
echo "$report"
if [ "$SMOKE" = 1 ]; then
  max=$(jq -r '[.ban_ms.max, .unban_ms.max] | max | floor' "$out")
  { [ "$rc" = 0 ] && [ "$max" -le 1000 ]; } || fail "smoke: a ban or unban took ${max} ms (exit $rc)"
  log "smoke ok: $COUNT bans, max ${max} ms"
  exit 0
fi
[ -n "$OUT" ] || OUT=$HERE/results/bans-$(date -u +%Y%m%d-%H%M).txt
echo "$report" >"$OUT"
log "written to $OUT"
exit "$rc"
