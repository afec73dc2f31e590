#!/usr/bin/env bash
# CPU per relayed RTP packet through Palisade's media relay, with real authenticated calls.
#
# What it does, bounded in time (about 3 minutes with the defaults, never more than ~8):
#   1. installs what is missing, builds Palisade (release), provisions the callee 100 and callers
#      1000..1999 (`palisade ext add-range`), starts `palisade serve --rtp-ports 40000-44999` with its
#      DEFAULT settings (guard on, default flood tiers: signalling is paced at 40 calls/s from one
#      source, and the relay's RTP sockets are not behind the SIP guard) in a private network namespace
#      with only a loopback interface;
#   2. relay_bench.py (Python 3 stdlib) registers 100 from its callee socket, places CALLS calls
#      (INVITE, 407, ACK, INVITE with digest, 200, ACK; each call with its own caller and callee media
#      socket), checks every stream end to end, then for each step streams G.711 (172-byte RTP packets,
#      50 packets/s per direction per call, start times spread evenly: phone-like pacing) through the first
#      N calls for DURATION s and counts what comes out on the far legs (forked receiver, epoll);
#   3. Palisade CPU = sum_exec_runtime of all its threads (/proc/PID/task/*/schedstat; utime+stime from
#      /proc/PID/stat beside it) over the step; us/pkt = Palisade CPU / packets received on the far legs.
#      Like the rtpengine reference (../shared/peers/rtpengine), on loopback the relay's sendto() also
#      pays for the delivery into the receiver's socket;
#   4. ends every call with BYE, prints a table, writes results/relay-<date>.txt (+ .jsonl).
#
# usage: benches/relay/run.sh [-n "50,100,200"] [-d DURATION_S] [-R REPEAT] [-o FILE] [-Z]
#   -Z  smoke mode (CI): 2 calls streaming for 1 s through the same code, debug binary, a few seconds; exits 1
#       unless the streams came through and every call ended (benches/calls/lib.sh)
# Needs root. Environment: SHARED_DIR, PALISADE_BIN, PALISADE_REV, KEEP=1, INSTALL=0 (benches/calls/lib.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=relay
# shellcheck source=benches/calls/lib.sh
. "$HERE/../calls/lib.sh"

STEPS="50,100,200" DURATION=10 REPEAT=2 OUT="" CALLERS_LAST=1999
while getopts "n:d:R:o:Zh" o; do
  case $o in
    n) STEPS=$OPTARG ;; d) DURATION=$OPTARG ;; R) REPEAT=$OPTARG ;; o) OUT=$OPTARG ;;
    Z) SMOKE=1 STEPS=2 DURATION=1 REPEAT=1 CALLERS_LAST=1003 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
[[ $STEPS =~ ^[0-9]+(,[0-9]+){0,5}$ ]] || die "-n: up to 6 comma-separated call counts"
for n in ${STEPS//,/ }; do if [ "$n" -lt 1 ] || [ "$n" -gt 1000 ]; then die "-n: 1..1000 calls"; fi; done
if ! [[ $DURATION =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 1 ] || [ "$DURATION" -gt 30 ]; then die "-d: 1..30 s"; fi
if ! [[ $REPEAT =~ ^[0-9]+$ ]] || [ "$REPEAT" -lt 1 ] || [ "$REPEAT" -gt 4 ]; then die "-R: 1..4"; fi
bench_init

PAL_DATA=$WORK/palisade-data
pal_provision "$PAL_DATA" 100 100 >"$WORK/callee.txt"
pal_provision "$PAL_DATA" 1000 "$CALLERS_LAST" >"$WORK/callers.txt"
"$PALISADE_BIN" security show --data "$PAL_DATA" >"$WORK/palisade-security.txt" 2>&1 || true
start_palisade "$PAL_DATA" --rtp-ports 40000-44999
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/relay-smoke.txt}
else
  mkdir -p "$HERE/results"
  OUT=${OUT:-$HERE/results/relay-$(date +%Y%m%d-%H%M%S).txt}
fi
LOAD_START=$(load_avg)
T_START=$(date +%s)
rc=0
timeout -k 5 $((60 + REPEAT * 7 * (DURATION + 4) * 2)) ip netns exec "$NS" python3 "$HERE/relay_bench.py" \
  --server "$HOST:$PORT" --pid "$SERVER_PID" --callee "$(head -1 "$WORK/callee.txt")" \
  --callers "$WORK/callers.txt" --steps "$STEPS" --duration "$DURATION" --repeat "$REPEAT" \
  --json-out "$WORK/steps.jsonl" 2>"$WORK/bench.err" | tee "$WORK/bench.out" >&2 || rc=$?
cat "$WORK/bench.err" >&2
[ "$rc" = 0 ] || die "relay_bench.py failed ($rc); palisade log: $(tail -5 "$WORK/palisade.log")"
alive "$SERVER_PID" || die "palisade died"
sleep 1.5
left=$("$PALISADE_BIN" calls --json --data "$PAL_DATA" 2>/dev/null | jq length 2>/dev/null || echo '?')
stop_server
T_END=$(date +%s)
{
  echo "# Palisade media relay: CPU per relayed RTP packet — $(date -Is)"
  echo "# machine: $(machine_line); run took $((T_END - T_START)) s"
  echo "# palisade $PAL_VERSION, default settings, --rtp-ports 40000-44999; G.711 172-byte RTP, 50 pps per direction per call"
  echo "# load average: start $LOAD_START, end $(load_avg)"
  echo "# command: benches/relay/run.sh $*"
  grep '^#' "$WORK/bench.err" || true
  echo "# calls still listed by 'palisade calls' after the BYEs: $left"
  echo
  echo "| pass | calls | target pps | sent pps | pkts/wake-up | received % | Palisade µs/pkt (schedstat) | (ticks) | Palisade CPU % | generator µs/pkt | other CPU % | softirq s | Palisade + softirq µs/pkt |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r '"| \(.pass) | \(.calls) | \(.pps_target) | \(.pps_sent) | \(.pkts_per_wakeup) | \(.received_pct) | **\(.us_per_pkt)** | \(.us_per_pkt_ticks) | \(.palisade_cpu_pct) | \(.generator_us_per_pkt) | \(.other_cpu_pct) | \(.softirq_s) | \(.us_per_pkt_with_softirq) |"' "$WORK/steps.jsonl"
} | tee "$OUT"
cp "$WORK/steps.jsonl" "${OUT%.txt}.jsonl"
log "written $OUT"
if [ "$SMOKE" = 1 ]; then
  # every step delivered at least 90 % of its packets, and no call was left behind
  steps=$(jq -s 'length' "$WORK/steps.jsonl")
  delivered=$(jq -s '[.[] | select(.received_pct >= 90)] | length' "$WORK/steps.jsonl")
  smoke_check "relay steps delivering >= 90 % of their packets" "$delivered" "$steps" "$left"
fi
