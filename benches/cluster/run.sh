#!/usr/bin/env bash
# Several Palisade nodes on one PostgreSQL (issue 17, docs/cluster.md): authenticated registrations per second
# with 1, 2 and 3 nodes on one database, the database's own CPU, beside one node on SQLite.
#
# What it does, bounded in time (a few minutes; smoke mode ~30 s):
#   1. re-runs itself inside a private network namespace that has only a loopback interface;
#   2. starts a throwaway PostgreSQL there (tests/e2e/pg_lib.sh: initdb, pg_ctl, fsync off — as in the tests);
#   3. per configuration ("sqlite", then 1, 2, 3 nodes on PostgreSQL): a fresh database with extensions
#      1000..(1000+U-1) (ext add-range), the nodes on udp:127.0.0.3N:5070, the users split over the nodes (user i
#      registers at node i mod N, from source 127.0.1.(1 + i mod 250) so no source trips the flood guard);
#      every user registers once (warm-up), then one sipp per node offers R registrations/s for S seconds
#      (benches/register/reg_auth.xml: REGISTER, 401, REGISTER with MD5 digest, 200);
#   4. measures: successful registrations per second (all nodes), failures and retransmissions, the nodes' CPU
#      (utime+stime of their process trees) and PostgreSQL's CPU (the postmaster's tree), each in ms per 1,000
#      registrations and in % of one core, from /proc before and after the step (the database figure includes the
#      write-behind flush that follows the step);
#   5. prints a table and writes it to benches/cluster/results/cluster-<date>.txt.
#
# usage: benches/cluster/run.sh [options]
#   -c LIST   configurations (default "sqlite 1 2 3": SQLite, then 1, 2, 3 nodes on PostgreSQL)
#   -r RATE   registrations/s offered per node (default 300)
#   -s SECS   seconds of load (default 8): count per node = RATE * SECS (a node keeps each server transaction
#             32 s in a table of 10,000, so RATE * SECS + U / N stays below ~4,000)
#   -u USERS  extensions (default 1000)
#   -o FILE   results file (default benches/cluster/results/cluster-<date>.txt)
#   -k        keep the scratch directory
#   -Z        smoke mode (CI): configurations "sqlite 1 2", 20 users, 50/s per node for 1 s, the debug binary
#             (built unless PALISADE_BIN is set), results in the scratch directory; exits 1 unless every
#             registration succeeded
# Needs root (network namespace; PostgreSQL runs as the `postgres` user), sipp and Debian's postgresql.
# Environment: PALISADE_BIN (a binary instead of building target/release/palisade), NETNS_PREFIX (namespace name
# prefix, default palclu).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SCENARIO=$REPO/benches/register/reg_auth.xml
CONFIGS="sqlite 1 2 3" RATE=300 SECS=8 USERS=1000 OUT="" KEEP=0 SMOKE=0
while getopts "c:r:s:u:o:kZh" o; do
  case $o in
    c) CONFIGS=$OPTARG ;; r) RATE=$OPTARG ;; s) SECS=$OPTARG ;; u) USERS=$OPTARG ;; o) OUT=$OPTARG ;;
    k) KEEP=1 ;;
    Z) SMOKE=1 CONFIGS="sqlite 1 2" USERS=20 RATE=50 SECS=1 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespace, PostgreSQL as the postgres user)"
for v in "$RATE" "$SECS" "$USERS"; do [[ $v =~ ^[0-9]+$ ]] || die "-r, -s, -u take whole numbers"; done
if [ "$RATE" -lt 1 ] || [ "$RATE" -gt 5000 ] || [ "$SECS" -lt 1 ] || [ "$SECS" -gt 30 ] ||
  [ "$USERS" -lt 3 ] || [ "$USERS" -gt 5000 ]; then
  die "-r 1..5000, -s 1..30, -u 3..5000"
fi
for c in $CONFIGS; do case $c in sqlite | 1 | 2 | 3) ;; *) die "unknown configuration '$c' (sqlite, 1, 2, 3)" ;; esac; done
for c in sipp ip ss ps timeout bc; do command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"; done

# ------------------------------------------------------------------ the namespace
if [ -z "${PALCLU_IN_NS:-}" ]; then
  if [ -z "${PALISADE_BIN:-}" ]; then
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
      # shellcheck source=/dev/null
      . "$HOME/.cargo/env"
    fi
    if [ "$SMOKE" = 1 ]; then
      (cd "$REPO" && cargo build -q -p palisade) || die "build failed"
      PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/palisade
    else
      log "building palisade (release)"
      (cd "$REPO" && cargo build -q --release -p palisade) || die "build failed"
      PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/palisade
    fi
  fi
  [ -x "$PALISADE_BIN" ] || die "no binary at $PALISADE_BIN"
  NS=${NETNS_PREFIX:-palclu}$$
  ip netns add "$NS" || die "cannot create network namespace $NS"
  trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
  ip netns exec "$NS" ip link set lo up
  rc=0
  PALCLU_IN_NS=1 PALISADE_BIN=$PALISADE_BIN ip netns exec "$NS" "$0" "$@" || rc=$?
  exit "$rc"
fi

# ------------------------------------------------------------------ inside: scratch, PostgreSQL, cleanup
WORK=$(mktemp -d /tmp/palisade-clusterbench.XXXXXX)
chmod 0755 "$WORK"
NODE_PIDS=()
# shellcheck source=tests/e2e/pg_lib.sh
. "$REPO/tests/e2e/pg_lib.sh"
cleanup() {
  local p
  for p in "${NODE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_stop
  if [ "$KEEP" = 1 ]; then log "scratch kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pg_start 5432 || die "could not start PostgreSQL"
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
log "PostgreSQL $(psql -XAtq "$PG_URL" -c 'SHOW server_version') at $PG_URL (postmaster $PG_PID)"

descendants() { # PID: its descendants
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    echo "$c"
    descendants "$c"
  done
}
cpu_ticks() { # PID...: utime+stime of these processes and their descendants
  local total=0 p t
  for p in "$@" $(for q in "$@"; do descendants "$q"; done); do
    t=$({ sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; } | awk '{print $12 + $13}')
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
sipp_stat() { # FILE COLUMN: the column of the last line of a sipp -trace_stat file
  awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"
}
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------ one configuration
ROWS=() ALL_OK=1
run_config() { # sqlite | N
  local cfg=$1 n db_args=() dir csv i k pids=() t0 t1 c0 c1 p0 p1 ok=0 fail=0 retr=0 el count
  if [ "$cfg" = sqlite ]; then n=1; else n=$cfg; fi
  dir=$WORK/$cfg
  mkdir -p "$dir"
  if [ "$cfg" != sqlite ]; then
    pg_as_owner "$(pg_bindir)/dropdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres --if-exists palisade
    pg_as_owner "$(pg_bindir)/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres palisade
    db_args=(--database "$PG_URL")
  fi
  "$PALISADE_BIN" ext add-range 1000 $((1000 + USERS - 1)) --data "$dir/admin" "${db_args[@]}" >"$dir/users.raw" ||
    die "$cfg: ext add-range failed"
  csv=$dir/users.csv
  grep -E '^[0-9]+,' "$dir/users.raw" | cut -d, -f1-3 | tr ',' ';' |
    awk '{ printf "%s;127.0.1.%d\n", $0, 1 + (NR - 1) % 250 }' >"$csv"
  local data
  for ((i = 1; i <= n; i++)); do
    data=$dir/n$i
    [ "$cfg" = sqlite ] && data=$dir/admin
    local node_args=()
    [ "$cfg" != sqlite ] && node_args=(--node "n$i")
    "$PALISADE_BIN" serve --data "$data" "${db_args[@]}" "${node_args[@]}" --listen "udp:127.0.0.3$i:5070" \
      --admin-listen "127.0.0.3$i:8443" >"$dir/n$i.out" 2>"$dir/n$i.err" </dev/null &
    NODE_PIDS+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    for ((k = 0; k < 100; k++)); do
      grep -qx 'palisade ready' "$dir/n$i.out" 2>/dev/null && break
      sleep 0.2
    done
    grep -qx 'palisade ready' "$dir/n$i.out" || die "$cfg: node $i not ready: $(tail -3 "$dir/n$i.err")"
  done
  for ((i = 1; i <= n; i++)); do
    { echo SEQUENTIAL; awk -v n="$n" -v k=$((i - 1)) '(NR - 1) % n == k' "$csv"; } >"$dir/users$i.csv"
  done
  # gens RATE COUNT TAG: one sipp per node, at once
  gens() {
    local r=$1 c=$2 tg=$3 tmo
    tmo=$((c / r + 15))
    pids=()
    for ((i = 1; i <= n; i++)); do
      timeout -k 3 $((tmo + 10)) sipp "127.0.0.3$i:5070" -sf "$SCENARIO" -inf "$dir/users$i.csv" -ip_field 3 \
        -t ui -p $((5089 + i)) -key sport $((5089 + i)) -r "$r" -m "$c" -l $((r * 4 + 100)) -nostdin \
        -timeout "$tmo" -recv_timeout 4000 -max_non_invite_retrans 5 -max_socket 1024 -buff_size 4194304 \
        -trace_stat -stf "$dir/$tg.stat$i.csv" -fd 1 >"$dir/$tg.out$i" 2>&1 </dev/null &
      pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k" || true; done
  }
  gens 500 $(((USERS + n - 1) / n)) warmup
  sleep 1.5
  count=$((RATE * SECS))
  c0=$(cpu_ticks "${NODE_PIDS[@]}")
  p0=$(cpu_ticks "$PG_PID")
  t0=$(date +%s.%N)
  gens "$RATE" "$count" step
  t1=$(date +%s.%N)
  sleep 1.5 # the write-behind flush of the last registrations
  c1=$(cpu_ticks "${NODE_PIDS[@]}")
  p1=$(cpu_ticks "$PG_PID")
  el=$(echo "$t1 - $t0" | bc -l)
  for ((i = 1; i <= n; i++)); do
    [ -s "$dir/step.stat$i.csv" ] || die "$cfg: no sipp statistics: $(tail -3 "$dir/step.out$i")"
    ok=$((ok + $(sipp_stat "$dir/step.stat$i.csv" 'SuccessfulCall(C)')))
    fail=$((fail + $(sipp_stat "$dir/step.stat$i.csv" 'FailedCall(C)')))
    retr=$((retr + $(sipp_stat "$dir/step.stat$i.csv" 'Retransmissions(C)')))
  done
  [ "$ok" = $((count * n)) ] || ALL_OK=0
  local rows_in_db=-
  if [ "$cfg" != sqlite ]; then
    rows_in_db=$(psql -XAtq "$PG_URL" -c "SELECT count(*) FROM registrations")
  fi
  local rate node_ms pg_ms node_pct pg_pct
  rate=$(echo "scale=0; $ok / $el" | bc -l)
  node_ms=$(echo "scale=1; ($c1 - $c0) * 1000 / $CLK_TCK * 1000 / ($ok + ($ok == 0))" | bc -l)
  node_pct=$(echo "scale=0; ($c1 - $c0) * 100 / $CLK_TCK / ($el + 1.5)" | bc -l)
  if [ "$cfg" = sqlite ]; then
    pg_ms=- pg_pct=-
  else
    pg_ms=$(echo "scale=1; ($p1 - $p0) * 1000 / $CLK_TCK * 1000 / ($ok + ($ok == 0))" | bc -l)
    pg_pct=$(echo "scale=0; ($p1 - $p0) * 100 / $CLK_TCK / ($el + 1.5)" | bc -l)
  fi
  local label=$cfg
  [ "$cfg" = sqlite ] && label="1 (SQLite)"
  [ "$cfg" != sqlite ] && label="$cfg (PostgreSQL)"
  ROWS+=("$(printf '%-16s %8s %8s %6s %6s %10s %11s %9s %8s %8s' "$label" $((RATE * n)) "$rate" "$ok" "$fail" "$retr" "$node_ms" "$node_pct" "$pg_ms" "$pg_pct") rows=$rows_in_db")
  log "$cfg: ${ROWS[-1]}"
  for k in "${NODE_PIDS[@]}"; do kill -TERM "$k" 2>/dev/null || true; done
  for k in "${NODE_PIDS[@]}"; do wait "$k" 2>/dev/null || true; done
  NODE_PIDS=()
}

for c in $CONFIGS; do run_config "$c"; done

header=$(printf '%-16s %8s %8s %6s %6s %10s %11s %9s %8s %8s' nodes offered/s regs/s ok failed retransmit \
  'node ms/1k' 'node %cpu' 'db ms/1k' 'db %cpu')
{
  echo "Palisade cluster registration bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, rev $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "binary $PALISADE_BIN; $USERS users; $RATE/s per node for $SECS s; PostgreSQL $(psql -XAtq "$PG_URL" -c 'SHOW server_version') (fsync off)"
  echo "ms/1k: CPU milliseconds per 1,000 registrations; %cpu: of one core over the step and the 1.5 s flush after it"
  echo "$header"
  printf '%s\n' "${ROWS[@]}"
} >"$WORK/results.txt"
cat "$WORK/results.txt"
if [ "$SMOKE" = 1 ]; then
  [ "$ALL_OK" = 1 ] || die "smoke: not every registration succeeded"
  log "smoke ok: every registration succeeded with $CONFIGS"
  exit 0
fi
OUT=${OUT:-$HERE/results/cluster-$(date -u +%Y%m%d-%H%M).txt}
cp "$WORK/results.txt" "$OUT"
log "results in $OUT"
