#!/usr/bin/env bash
# Voicemail under load: N callers leave messages at once, against the same N callers in ordinary relayed calls of
# the same length. One run, one machine, Palisade only: Kamailio (the reference peer) is a proxy without media or
# voicemail, so the comparison that means something is voicemail against Palisade's own media relay.
#
# What it does (about 1-2 minutes with the defaults):
#   1. installs what is missing (sip-tester, iproute2, procps, python3, sox), builds Palisade (release);
#   2. for every concurrency C (default 10 50 100), on a fresh server in a private network namespace:
#      voicemail: callers 1000.. (C of them) each call an unregistered extension 3000+i with voicemail (its own
#        mailbox), all started within a second (sipp -r C), each holding HOLD s while playing a 1 kHz G.711 tone
#        (tests/e2e/scenarios/call_uac_rtp.xml + tests/e2e/make_g711_pcap.py): Palisade plays the greeting and the
#        beep and records the rest; every message is then counted (`palisade voicemail list`);
#      relay: the same callers call 3000+i registered to a sipp UAS that echoes RTP (call_uas_rtp.xml): Palisade
#        relays both directions for the same time;
#   3. server CPU = sum_exec_runtime of every palisade thread (/proc/PID/task/*/schedstat) from just before the
#      first call to 2 s after the last, divided by C x HOLD: CPU per second of call; peak RSS (VmHWM);
#   4. prints a table and writes it to results/voicemail-<date>.txt.
#
# usage: benches/voicemail/run.sh [-c "10 50 100"] [-t HOLD_S] [-o FILE] [-Z]     (root; see benches/calls/lib.sh)
#   -Z  smoke mode (CI): 2 callers through the same code (voicemail: 10 s, long enough for the default greeting,
#       the beep and a 2 s message; relay: 2 s), debug binary, nothing installed; exits 1 unless every call
#       succeeded and every voicemail call left a message
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=vm
# shellcheck source=benches/calls/lib.sh
. "$HERE/../calls/lib.sh"
# shellcheck disable=SC2034 # read by install_packages
PKGS=(sip-tester iproute2 procps python3 sox)

CONCS="10 50 100" HOLD=12 OUT=""
while getopts "c:t:o:Zh" o; do
  case $o in
    c) CONCS=$OPTARG ;; t) HOLD=$OPTARG ;; o) OUT=$OPTARG ;;
    Z) SMOKE=1 INSTALL=0 CONCS=2 HOLD=10 RELAY_HOLD=2 ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
E2E=$REPO/tests/e2e
RELAY_HOLD=${RELAY_HOLD:-$HOLD}
# seconds each call of MODE holds
hold_of() { if [ "$1" = relay ]; then echo "$RELAY_HOLD"; else echo "$HOLD"; fi; }

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

# run MODE C: one measurement; prints "cpu_s calls_ok messages rss_kb"
run() {
  local mode=$1 c=$2 data=$WORK/$1-$2 last=$((3000 + $2 - 1)) t0 t1 ok msgs=0 n uas_pid="" i hold
  hold=$(hold_of "$mode")
  mkdir -p "$data"
  pal_provision "$data" 1000 $((1000 + c - 1)) >"$data/callers.csv"
  pal_provision "$data" 3000 "$last" >"$data/callees.csv"
  # one sipp is one source address: raise the flood tiers (red first: it must stay above amber)
  "$PALISADE_BIN" security set flood_red_pps 2000000 --data "$data" >/dev/null
  "$PALISADE_BIN" security set flood_amber_pps 1000000 --data "$data" >/dev/null
  { echo SEQUENTIAL; awk -F';' '{print $1 ";" $2 ";" $3 ";" $1 + 2000}' "$data/callers.csv"; } >"$data/calls.csv"
  printf '[calls]\nvoicemail_ring_seconds = 30\nvoicemail_max_message_seconds = 120\n' >"$data/palisade.toml"
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
  if [ "$mode" = voicemail ]; then
    for ((i = 3000; i <= last; i++)); do
      n=$("$PALISADE_BIN" voicemail list "$i" --json --data "$data" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
      msgs=$((msgs + n))
    done
  fi
  [ -n "$uas_pid" ] && stop_pid "$uas_pid" 2
  stop_server
  echo "$(((t1 - t0) / 1000000)) $ok $msgs $rss"
}

ts=$(date -u +%Y-%m-%dT%H%M)
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/voicemail-smoke.txt}
else
  OUT=${OUT:-$HERE/results/voicemail-$ts.txt}
fi
SMOKE_OK=0 SMOKE_WANT=0
mkdir -p "$(dirname "$OUT")"
{
  echo "# benches/voicemail/run.sh -c \"$CONCS\" -t $HOLD (relay calls: $RELAY_HOLD s)   ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "# palisade $PAL_VERSION; $(machine_line); load before: $(load_avg)"
  printf '%-6s %-10s %8s %8s %9s %14s %10s\n' conc mode calls_ok messages cpu_ms "cpu_ms/call_s" peak_rss_MB
} | tee "$OUT"
for c in $CONCS; do
  declare -A per=()
  for mode in voicemail relay; do
    read -r cpu ok msgs rss < <(run "$mode" "$c")
    # smoke: every call succeeded, and every voicemail call left a message
    SMOKE_OK=$((SMOKE_OK + ok)) SMOKE_WANT=$((SMOKE_WANT + c))
    if [ "$mode" = voicemail ]; then SMOKE_OK=$((SMOKE_OK + msgs)) SMOKE_WANT=$((SMOKE_WANT + c)); fi
    per[$mode]=$(echo "scale=3; $cpu / ($c * $(hold_of "$mode"))" | bc)
    printf '%-6s %-10s %8s %8s %9s %14s %10s\n' "$c" "$mode" "$ok" "$msgs" "$cpu" "${per[$mode]}" \
      "$(echo "scale=1; $rss / 1024" | bc)" | tee -a "$OUT"
  done
  echo "# C=$c: voicemail / relay CPU per call-second = $(echo "scale=2; ${per[voicemail]} / ${per[relay]}" | bc)" |
    tee -a "$OUT"
  unset per
done
log "results in $OUT"
[ "$SMOKE" = 1 ] && smoke_check "voicemail: calls and messages" "$SMOKE_OK" "$SMOKE_WANT" 0
exit 0
