#!/usr/bin/env bash
# Conference rooms under load: N callers in one room (each hears the mix of the others), against the same N callers
# in ordinary relayed calls of the same length. One run, one machine, Palisade only (Kamailio, the reference peer,
# has no media), so the comparison that means something is a conference participant against a relayed call.
#
# What it does (about 1-2 minutes with the defaults):
#   1. installs what is missing (sip-tester, iproute2, procps, python3, sox), builds Palisade (release);
#   2. for every room size C (default 10 30), on a fresh server in a private network namespace:
#      conference: callers 1000.. (C of them) all call room 900 (no PIN, `conference add 900 --max 50`), started
#        within a second (sipp -r C), each holding HOLD s while playing a 1 kHz G.711 tone
#        (tests/e2e/scenarios/call_uac_rtp.xml + tests/e2e/make_g711_pcap.py): Palisade relays each caller's leg
#        and mixes the room every 20 ms; the peak of `palisade conference participants 900` is kept;
#      relay: the same callers call 3000+i registered to a sipp UAS that echoes RTP (call_uas_rtp.xml): Palisade
#        relays both directions for the same time;
#   3. server CPU = sum_exec_runtime of every palisade thread (/proc/PID/task/*/schedstat) from just before the
#      first call to 2 s after the last, divided by C x HOLD: CPU per second of call (per participant-second in a
#      room); peak RSS (VmHWM);
#   4. prints a table and writes it to results/conference-<date>.txt.
#
# usage: benches/conference/run.sh [-c "10 30"] [-t HOLD_S] [-o FILE] [-Z]     (root; see benches/calls/lib.sh)
#   -Z  smoke mode (CI): 3 callers for 3 s through the same code, debug binary, nothing installed; exits 1 unless
#       every call succeeded and all three were in the room at once
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=conf
# shellcheck source=benches/calls/lib.sh
. "$HERE/../calls/lib.sh"
# shellcheck disable=SC2034 # read by install_packages
PKGS=(sip-tester iproute2 procps python3 sox)

CONCS="10 30" HOLD=12 OUT=""
while getopts "c:t:o:Zh" o; do
  case $o in
    c) CONCS=$OPTARG ;; t) HOLD=$OPTARG ;; o) OUT=$OPTARG ;;
    Z) SMOKE=1 INSTALL=0 CONCS=3 HOLD=3 ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
E2E=$REPO/tests/e2e

# bench_init without the Kamailio checks: root, packages, build, scratch, netns.
[ "$(id -u)" = 0 ] || die "run as root (network namespace, packages)"
install_packages
for c in sipp ip ss ps timeout python3 sox; do command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"; done
build_palisade
WORK=$(mktemp -d "/tmp/palisade-$BENCH.XXXXXX")
NS=pal$BENCH$$
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS" || die "cannot create network namespace $NS"
ip netns exec "$NS" ip link set lo up

sox -n -r 8000 -c 1 -t ul "$WORK/tone.ul" synth $((HOLD + 2)) sine 1000 2>/dev/null || die "sox"
python3 "$E2E/make_g711_pcap.py" "$WORK/tone.ul" "$WORK/g711.pcap" || die "pcap"

peak_rss_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# run MODE C: one measurement; prints "cpu_ms calls_ok peak_participants rss_kb"
run() {
  local mode=$1 c=$2 data=$WORK/$1-$2 last=$((3000 + $2 - 1)) t0 t1 ok peak=0 n uas_pid="" i uac_pid
  mkdir -p "$data"
  pal_provision "$data" 1000 $((1000 + c - 1)) >"$data/callers.csv"
  pal_provision "$data" 3000 "$last" >"$data/callees.csv"
  # one sipp is one source address: raise the flood tiers (red first: it must stay above amber)
  "$PALISADE_BIN" security set flood_red_pps 2000000 --data "$data" >/dev/null
  "$PALISADE_BIN" security set flood_amber_pps 1000000 --data "$data" >/dev/null
  if [ "$mode" = conference ]; then
    "$PALISADE_BIN" conference add 900 --max 50 --data "$data" >/dev/null || die "conference add"
    { echo SEQUENTIAL; awk -F';' '{print $1 ";" $2 ";" $3 ";900"}' "$data/callers.csv"; } >"$data/calls.csv"
  else
    { echo SEQUENTIAL; awk -F';' '{print $1 ";" $2 ";" $3 ";" $1 + 2000}' "$data/callers.csv"; } >"$data/calls.csv"
  fi
  PAL_LOG=$data/palisade.log start_palisade "$data" --rtp-ports 20000-29999
  if [ "$mode" = relay ]; then
    # every callee registered from the echoing UAS's port
    { echo SEQUENTIAL; cat "$data/callees.csv"; } >"$data/reg.csv"
    nsx timeout 60 sipp -sf "$E2E/scenarios/reg_auth.xml" -inf "$data/reg.csv" -i "$HOST" -p 5090 \
      -m "$c" -r 200 -nostdin -timeout 50 "$HOST:$PORT" >"$data/reg.out" 2>&1 || die "registration failed"
    bg_start "$data/uas.out" timeout $((HOLD + 60)) sipp -sf "$E2E/scenarios/call_uas_rtp.xml" -i "$HOST" -p 5090 \
      -mi "$HOST" -mp 40000 -rtp_echo -m "$c" -nostdin -timeout $((HOLD + 50)) -trace_err -error_file "$data/uas.err"
    uas_pid=$BG_PID # set by bg_start
    BG_PIDS+=("$uas_pid")
    sleep 0.5
  fi
  t0=$(cpu_ns_tree "$SERVER_PID")
  (cd "$WORK" && nsx timeout $((HOLD + 60)) sipp -sf "$E2E/scenarios/call_uac_rtp.xml" -inf "$data/calls.csv" \
    -i "$HOST" -p 5080 -mi "$HOST" -mp 42000 -m "$c" -r "$c" -l "$c" -d $((HOLD * 1000)) -nostdin \
    -timeout $((HOLD + 50)) -trace_stat -stf "$data/uac.csv" -fd 1 "$HOST:$PORT" >"$data/uac.out" 2>&1) &
  uac_pid=$!
  if [ "$mode" = conference ]; then
    for ((i = 0; i < HOLD * 2; i++)); do
      sleep 0.5
      n=$("$PALISADE_BIN" conference participants 900 --json --data "$data" 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
      [ "$n" -gt "$peak" ] && peak=$n
    done
  fi
  wait "$uac_pid" || true
  sleep 2
  t1=$(cpu_ns_tree "$SERVER_PID")
  ok=$(sipp_stat "$data/uac.csv" "SuccessfulCall(C)")
  rss=$(peak_rss_kb "$SERVER_PID")
  [ -n "$uas_pid" ] && stop_pid "$uas_pid" 2
  stop_server
  echo "$(((t1 - t0) / 1000000)) $ok $peak $rss"
}

ts=$(date -u +%Y-%m-%dT%H%M)
if [ "${SMOKE:-0}" = 1 ]; then
  OUT=${OUT:-$WORK/conference-smoke.txt}
else
  OUT=${OUT:-$HERE/results/conference-$ts.txt}
fi
SMOKE_OK=0 SMOKE_WANT=0
mkdir -p "$(dirname "$OUT")"
{
  echo "# benches/conference/run.sh -c \"$CONCS\" -t $HOLD   ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "# palisade $PAL_VERSION; $(machine_line); load before: $(load_avg)"
  printf '%-6s %-10s %8s %8s %9s %14s %10s\n' conc mode calls_ok in_room cpu_ms "cpu_ms/call_s" peak_rss_MB
} | tee "$OUT"
for c in $CONCS; do
  declare -A per=()
  for mode in conference relay; do
    read -r cpu ok inroom rss < <(run "$mode" "$c")
    # smoke: every call succeeded, and the whole room was in it at once
    SMOKE_OK=$((SMOKE_OK + ok)) SMOKE_WANT=$((SMOKE_WANT + c))
    if [ "$mode" = conference ]; then SMOKE_OK=$((SMOKE_OK + inroom)) SMOKE_WANT=$((SMOKE_WANT + c)); fi
    per[$mode]=$(echo "scale=3; $cpu / ($c * $HOLD)" | bc)
    printf '%-6s %-10s %8s %8s %9s %14s %10s\n' "$c" "$mode" "$ok" "$inroom" "$cpu" "${per[$mode]}" \
      "$(echo "scale=1; $rss / 1024" | bc)" | tee -a "$OUT"
  done
  echo "# C=$c: conference participant / relayed call CPU per second = $(echo "scale=2; ${per[conference]} / ${per[relay]}" | bc)" |
    tee -a "$OUT"
  unset per
done
log "results in $OUT"
[ "${SMOKE:-0}" = 1 ] && smoke_check "conference: calls and participants" "$SMOKE_OK" "$SMOKE_WANT" 0
exit 0
