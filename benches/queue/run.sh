#!/usr/bin/env bash
# Call queues under load: N callers wait in a queue with music at once (no agent: they hear the default melody and
# their position the whole time), against the same N callers in ordinary relayed calls of the same length. One
# run, one machine, Palisade only (Kamailio has no queues): the comparison that means something is a queued caller
# against Palisade's own media relay.
#
# What it does (about 1-2 minutes with the defaults):
#   1. installs what is missing (sip-tester, iproute2, procps, python3, sox), builds Palisade (release);
#   2. for every concurrency C (default 10 50 100), on a fresh server in a private network namespace:
#      queue: callers 1000.. (C of them) each call queue 700 (one agent, 3000, never registered: nobody is
#        offered a call), all started within a second (sipp -r C), each holding HOLD s while playing a 1 kHz G.711
#        tone: Palisade answers with the queue's music application (melody + position beeps every 30 s);
#      relay: the same callers call 3000+i registered to a sipp UAS that echoes RTP: Palisade relays both
#        directions for the same time;
#   3. server CPU = sum_exec_runtime of every palisade thread from just before the first call to 2 s after the
#      last, divided by C x HOLD: CPU per second of call; peak RSS (VmHWM);
#   4. prints a table and writes it to results/queue-<date>.txt.
#
# usage: benches/queue/run.sh [-c "10 50 100"] [-t HOLD_S] [-o FILE] [-Z]     (root; see benches/calls/lib.sh)
#   -Z  smoke mode (CI): 2 callers for 3 s, debug binary, nothing installed; exits 1 unless every call succeeded
#   PALISADE_BIN=path  measure that binary (no build), e.g. a debug build: the ratio is still meaningful
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=queue
# shellcheck source=benches/calls/lib.sh
. "$HERE/../calls/lib.sh"
# shellcheck disable=SC2034 # read by install_packages
PKGS=(sip-tester iproute2 procps python3 sox)

CONCS="10 50 100" HOLD=12 OUT=""
while getopts "c:t:o:Zh" o; do
  case $o in
    c) CONCS=$OPTARG ;; t) HOLD=$OPTARG ;; o) OUT=$OPTARG ;;
    Z) SMOKE=1 INSTALL=0 CONCS=2 HOLD=3 ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
E2E=$REPO/tests/e2e
hold_of() { echo "$HOLD"; }

# bench_init without the Kamailio checks: root, packages, build, scratch, netns.
[ "$(id -u)" = 0 ] || die "run as root (network namespace, packages)"
install_packages
for c in sipp ip ss ps timeout python3 sox; do command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"; done
build_palisade
WORK=$(mktemp -d "/tmp/palisade-$BENCH.XXXXXX")
NS=${NS_PREFIX:-pal}$BENCH$$
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS" || die "cannot create network namespace $NS"
ip netns exec "$NS" ip link set lo up

sox -n -r 8000 -c 1 -t ul "$WORK/tone.ul" synth $((HOLD + 2)) sine 1000 2>/dev/null || die "sox"
python3 "$E2E/make_g711_pcap.py" "$WORK/tone.ul" "$WORK/g711.pcap" || die "pcap"

peak_rss_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# run MODE C: one measurement; prints "cpu_ms calls_ok rss_kb"
run() {
  local mode=$1 c=$2 data=$WORK/$1-$2 last=$((3000 + $2 - 1)) t0 t1 ok uas_pid="" hold
  hold=$(hold_of "$mode")
  mkdir -p "$data"
  pal_provision "$data" 1000 $((1000 + c - 1)) >"$data/callers.csv"
  pal_provision "$data" 3000 "$last" >"$data/callees.csv"
  # one sipp is one source address: raise the flood tiers (red first: it must stay above amber)
  "$PALISADE_BIN" security set flood_red_pps 2000000 --data "$data" >/dev/null
  "$PALISADE_BIN" security set flood_amber_pps 1000000 --data "$data" >/dev/null
  if [ "$mode" = queue ]; then
    { echo SEQUENTIAL; awk -F';' '{print $1 ";" $2 ";" $3 ";700"}' "$data/callers.csv"; } >"$data/calls.csv"
    "$PALISADE_BIN" queue add 700 --agents 3000 --max-wait 3600 --data "$data" >/dev/null
  else
    { echo SEQUENTIAL; awk -F';' '{print $1 ";" $2 ";" $3 ";" $1 + 2000}' "$data/callers.csv"; } >"$data/calls.csv"
  fi
  PAL_LOG=$data/palisade.log start_palisade "$data" --rtp-ports 20000-29999
  if [ "$mode" = relay ]; then
    # every callee registered from the echoing UAS's port
    { echo SEQUENTIAL; cat "$data/callees.csv"; } >"$data/reg.csv"
    nsx timeout 60 sipp -sf "$E2E/scenarios/reg_auth.xml" -inf "$data/reg.csv" -i "$HOST" -p 5090 \
      -m "$c" -r 200 -nostdin -timeout 50 "$HOST:$PORT" >"$data/reg.out" 2>&1 || die "registration failed"
    bg_start "$data/uas.out" timeout $((hold + 60)) sipp -sf "$E2E/scenarios/call_uas_rtp.xml" -i "$HOST" -p 5090 \
      -mi "$HOST" -mp 40000 -rtp_echo -m "$c" -nostdin -timeout $((hold + 50)) -trace_err -error_file "$data/uas.err"
    uas_pid=$BG_PID # set by bg_start
    BG_PIDS+=("$uas_pid")
    sleep 0.5
  fi
  t0=$(cpu_ns_tree "$SERVER_PID")
  (cd "$WORK" && nsx timeout $((hold + 60)) sipp -sf "$E2E/scenarios/call_uac_rtp.xml" -inf "$data/calls.csv" \
    -i "$HOST" -p 5080 -mi "$HOST" -mp 42000 -m "$c" -r "$c" -l "$c" -d $((hold * 1000)) -nostdin \
    -timeout $((hold + 50)) -trace_stat -stf "$data/uac.csv" -fd 1 "$HOST:$PORT" >"$data/uac.out" 2>&1) || true
  sleep 2
  t1=$(cpu_ns_tree "$SERVER_PID")
  ok=$(sipp_stat "$data/uac.csv" "SuccessfulCall(C)")
  rss=$(peak_rss_kb "$SERVER_PID")
  [ -n "$uas_pid" ] && stop_pid "$uas_pid" 2
  stop_server
  echo "$(((t1 - t0) / 1000000)) $ok $rss"
}

ts=$(date -u +%Y-%m-%dT%H%M)
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/queue-smoke.txt}
else
  OUT=${OUT:-$HERE/results/queue-$ts.txt}
fi
SMOKE_OK=0 SMOKE_WANT=0
mkdir -p "$(dirname "$OUT")"
{
  echo "# benches/queue/run.sh -c \"$CONCS\" -t $HOLD   ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "# palisade $PAL_VERSION ($PALISADE_BIN); $(machine_line); load before: $(load_avg)"
  printf '%-6s %-8s %8s %9s %14s %10s\n' conc mode calls_ok cpu_ms "cpu_ms/call_s" peak_rss_MB
} | tee "$OUT"
for c in $CONCS; do
  declare -A per=()
  for mode in queue relay; do
    read -r cpu ok rss < <(run "$mode" "$c")
    SMOKE_OK=$((SMOKE_OK + ok)) SMOKE_WANT=$((SMOKE_WANT + c))
    per[$mode]=$(echo "scale=3; $cpu / ($c * $HOLD)" | bc)
    printf '%-6s %-8s %8s %9s %14s %10s\n' "$c" "$mode" "$ok" "$cpu" "${per[$mode]}" \
      "$(echo "scale=1; $rss / 1024" | bc)" | tee -a "$OUT"
  done
  echo "# C=$c: queued / relayed CPU per call-second = $(echo "scale=2; ${per[queue]} / ${per[relay]}" | bc)" |
    tee -a "$OUT"
  unset per
done
log "results in $OUT"
[ "$SMOKE" = 1 ] && smoke_check "queue: calls" "$SMOKE_OK" "$SMOKE_WANT" 0
exit 0
