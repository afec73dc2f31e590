#!/usr/bin/env bash
# Registration soak: a long run of authenticated registrations at a fixed rate, sampling the server's RSS and the
# database size, to show that neither grows with the number of registrations (issue 12 item 7). Not part of CI.
#
# What it does, bounded in count and time:
#   1. provisions extensions 1000..1999 in a temporary data directory (`palisade ext add-range`), raises the flood
#      tiers (one sipp address sends 2 requests per registration) and starts `palisade serve` on
#      udp:127.0.0.1:PORT;
#   2. runs sipp (tests/e2e/scenarios/reg_auth.xml: REGISTER, 401, REGISTER with digest, 200) through the 1,000
#      extensions in turn, COUNT registrations at RATE per second, from two source addresses (half each);
#   3. every SAMPLE_S seconds, and for IDLE_S seconds after the load, records the server's RSS (VmRSS) and the
#      size of the database files (palisade.db + WAL), and at the end the number of security event rows;
#   4. prints a table (elapsed s, registrations done, RSS MB, DB MB) and a summary line.
#
# usage: benches/register/soak.sh [-n COUNT] [-r RATE] [-p PORT] [-s SAMPLE_S] [-i IDLE_S] [-k]
#   -n COUNT    registrations (default 300000; at most 400000)
#   -r RATE     registrations per second (default 1000)
#   -p PORT     server UDP port on 127.0.0.1 (default 27190)
#   -s SAMPLE_S sampling interval (default 15)
#   -i IDLE_S   idle time sampled after the load (default 20)
#   -k          keep the scratch directory
# Environment: PALISADE_BIN (default target/release/palisade; build it with cargo build --release -p palisade).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${PALISADE_BIN:-$REPO/target/release/palisade}
SCENARIO=$REPO/tests/e2e/scenarios/reg_auth.xml
COUNT=300000 RATE=1000 PORT=27190 SAMPLE_S=15 IDLE_S=20 KEEP=0
while getopts "n:r:p:s:i:kh" o; do
  case $o in
    n) COUNT=$OPTARG ;; r) RATE=$OPTARG ;; p) PORT=$OPTARG ;; s) SAMPLE_S=$OPTARG ;; i) IDLE_S=$OPTARG ;;
    k) KEEP=1 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
for v in "$COUNT" "$RATE" "$PORT" "$SAMPLE_S" "$IDLE_S"; do [[ $v =~ ^[0-9]+$ ]] || { echo "numbers only" >&2; exit 2; }; done
if [ "$COUNT" -gt 400000 ] || [ "$RATE" -lt 1 ] || [ "$RATE" -gt 5000 ] || [ "$SAMPLE_S" -lt 1 ] || [ "$IDLE_S" -gt 120 ]; then
  echo "-n at most 400000, -r 1..5000, -s at least 1, -i at most 120" >&2
  exit 2
fi
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release -p palisade)" >&2; exit 1; }
command -v sipp >/dev/null || { echo "sipp is missing (scripts/install-deps.sh)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/palisade-soak.XXXXXX")
PAL_PID="" SIPP_PID="" SIPP2_PID=""
cleanup() {
  for p in $SIPP_PID $SIPP2_PID; do kill "$p" 2>/dev/null || true; done
  if [ -n "$PAL_PID" ]; then
    kill -TERM "$PAL_PID" 2>/dev/null || true
    wait "$PAL_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "scratch directory kept: $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

data=$TMP/data
pal() { "$BIN" "$@" --data "$data"; }
log "provisioning 1000 extensions"
pal ext add-range 1000 1999 >"$TMP/cred.csv" 2>/dev/null
{
  echo SEQUENTIAL
  tail -n +2 "$TMP/cred.csv" | cut -d, -f1-3 | tr ',' ';'
} >"$TMP/reg.inf"
pal security set flood_red_pps 200000 >/dev/null
pal security set flood_amber_pps 100000 >/dev/null

"$BIN" serve --data "$data" --listen "udp:127.0.0.1:$PORT" >"$TMP/pal.out" 2>"$TMP/pal.err" </dev/null &
PAL_PID=$!
for ((i = 0; i < 100; i++)); do grep -qx 'palisade ready' "$TMP/pal.out" && break; sleep 0.1; done
grep -qx 'palisade ready' "$TMP/pal.out" || { tail "$TMP/pal.err" >&2; exit 1; }

rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PAL_PID/status"; }
db_mb() { du -cb "$data"/palisade.db* 2>/dev/null | awk 'END { printf "%.1f", $1 / 1048576 }'; }
stat() { # COLUMN: its last cumulative value, summed over both generators' statistics files
  local f n total=0
  for f in "$TMP/sipp1.csv" "$TMP/sipp2.csv"; do
    n=$(awk -F';' -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } { v = $k } END { print v + 0 }' \
      "$f" 2>/dev/null || echo 0)
    total=$((total + n))
  done
  echo "$total"
}
done_regs() { stat 'SuccessfulCall(C)'; }

limit=$((COUNT / RATE + 60))
log "sipp: $COUNT registrations at $RATE/s from 127.0.0.1 and 127.0.0.2, half each (at most ${limit}s)"
# Two generators on two source addresses: one address sending 1,000 authenticated registrations a second would
# keep 32,000 transactions (timer J), above the per-source cap of 30,000 (docs/security.md).
gen() { # N SRC
  (cd "$TMP" && exec timeout -k 2 "$limit" sipp "127.0.0.1:$PORT" -sf "$SCENARIO" -inf "$TMP/reg.inf" -t u1 \
    -i "127.0.0.$1" -p $((PORT + $1)) -m $((COUNT / 2)) -r $((RATE / 2)) -l "$RATE" -nostdin -timeout "$limit" \
    -max_retrans 3 -trace_stat -stf "$TMP/sipp$1.csv" -fd "$SAMPLE_S" >"$TMP/sipp$1.out" 2>&1 </dev/null)
}
gen 1 &
SIPP_PID=$!
gen 2 &
SIPP2_PID=$!
t0=$SECONDS
printf '%8s %14s %8s %8s\n' elapsed_s registrations rss_mb db_mb
printf '%8s %14s %8s %8s\n' 0 0 "$(rss_mb)" "$(db_mb)"
first_rss=""
while kill -0 "$SIPP_PID" 2>/dev/null || kill -0 "$SIPP2_PID" 2>/dev/null; do
  sleep "$SAMPLE_S"
  printf '%8s %14s %8s %8s\n' $((SECONDS - t0)) "$(done_regs)" "$(rss_mb)" "$(db_mb)"
  [ -n "$first_rss" ] || first_rss=$(rss_mb)
done
rc=0
wait "$SIPP_PID" || rc=$?
wait "$SIPP2_PID" || rc=$?
SIPP_PID="" SIPP2_PID=""
load_s=$((SECONDS - t0))
sleep "$IDLE_S"
printf '%8s %14s %8s %8s  (idle %ss)\n' $((SECONDS - t0)) "$(done_regs)" "$(rss_mb)" "$(db_mb)" "$IDLE_S"
failed=$(stat 'FailedCall(C)')
rows=$(pal events --summary --json | awk -F': ' '/"rows"/ { gsub(/,/, "", $2); print $2 }')
echo "summary: $(done_regs) registrations ok, $failed failed (sipp exit $rc) in ${load_s}s; RSS after the first ${SAMPLE_S}s ${first_rss} MB, at the end $(rss_mb) MB; database $(db_mb) MB; security event rows: $rows"
pal events --summary | tail -n +6
