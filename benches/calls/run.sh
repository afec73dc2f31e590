#!/usr/bin/env bash
# Authenticated call set-up and tear-down: Palisade beside Kamailio, one run, one machine.
#
#   INVITE -> 407 -> ACK -> INVITE (Proxy-Authorization) -> 200 -> ACK -> BYE -> 200
#
# What it does, bounded in time (about 5-6 minutes with the defaults, never more than ~8):
#   1. installs what is missing (sip-tester, kamailio, bc, jq, iproute2, procps, python3), never
#      letting kamailio.service start; builds Palisade (release);
#   2. Palisade: extensions 1000..1499 (callers) and 1500..1999 (callees) with `palisade ext add-range`;
#      its flood tiers are RAISED for this run (`palisade security set flood_amber_pps 1000000`,
#      `flood_red_pps 2000000`): the sipp caller and the sipp callee are one source address each and send
#      up to 5 packets per call (the default amber tier, 1,000 packets/s per source, would throttle them
#      above ~200 calls/s); the guard still checks and counts every packet.
#      Kamailio 5.6 with the reference configuration ../shared/peers/kamailio/kamailio.cfg (2 UDP
#      workers, users u1000..u1999 / pw<user>, pike at its "bench" threshold, record-routing proxy);
#   3. for every step, on a freshly started server in a private network namespace (loopback only):
#      the 500 callees are registered (benches/register/reg_auth.xml) from the port of a sipp UAS
#      (call_uas.xml: 200 with SDP, ACK, BYE, 200), then one sipp UAC (call_uac.xml) places
#      COUNT = rate x STEP_S calls, caller 1000+i -> callee 1500+i, hold time 0 (BYE right after the ACK);
#      the SAME scenarios for both servers. The SDP offer/answer are present but NO media flows:
#      Kamailio is a proxy without a media relay; Palisade, a B2BUA, still allocates its relay ports
#      (--rtp-ports) and rewrites the SDP for every call;
#   4. server CPU per call = CPU time of the server's process tree, all threads (sum_exec_runtime from
#      /proc/PID/task/*/schedstat, the precise form of utime+stime in /proc/PID/stat),
#      from just before the UAC starts to 1 s after it ends (trailing work such as call records),
#      divided by the successful calls; servers interleaved per repetition and rate;
#   5. then the highest rate with no failed call: RAMP rates, one STEP_S step each, per server, until
#      one has a failure, a retransmission rate > 0.5 % or < 95 % of the offered rate;
#   6. a long step: LONG_RATE calls/s for LONG_S s per server (state that outlives a call — transactions
#      kept 32 s after a 2xx — must not pile up);
#   7. prints a table and writes it to results/calls-<date>.txt.
#
# usage: benches/calls/run.sh [-f "100 200 500 1000"] [-r "2000 3000 4000"] [-s STEP_S] [-R REPS] [-L RATE] [-l LONG_S]
#                            [-S servers] [-o FILE]
#   -f RATES   fixed rates (calls/s) for the CPU comparison      -s STEP_S  seconds per step (default 5)
#   -r RATES   ramp rates for the highest rate without failure   -R REPS    repetitions per fixed rate (default 2)
#   -S LIST    servers (default "palisade kamailio")             -o FILE    results file
#   -L RATE    rate of the long step (default 500)                -l LONG_S  its length (default 40; 0: skip)
#   -Z         smoke mode (CI): Palisade only, 20 calls at 20/s through the same code, debug binary, a few
#              seconds; exits 1 unless every call succeeded (benches/calls/lib.sh)
# Needs root. Environment: SHARED_DIR, PALISADE_BIN, PALISADE_REV, KEEP=1, INSTALL=0 (see lib.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=calls
# shellcheck source=benches/calls/lib.sh
. "$HERE/lib.sh"

FIXED="100 200 500 1000" RAMP="2000 3000 4000" STEP_S=5 REPS=2 SERVERS="palisade kamailio" OUT="" LONG_RATE=500 LONG_S=40
NCALLEES=500
while getopts "f:r:s:R:S:o:L:l:Zh" o; do
  case $o in
    f) FIXED=$OPTARG ;; r) RAMP=$OPTARG ;; s) STEP_S=$OPTARG ;; R) REPS=$OPTARG ;;
    S) SERVERS=$OPTARG ;; o) OUT=$OPTARG ;; L) LONG_RATE=$OPTARG ;; l) LONG_S=$OPTARG ;;
    Z) SMOKE=1 FIXED=20 RAMP="" STEP_S=1 REPS=1 SERVERS=palisade LONG_S=0 NCALLEES=20 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
if ! [[ $STEP_S =~ ^[0-9]+$ ]] || [ "$STEP_S" -lt 1 ] || [ "$STEP_S" -gt 20 ]; then die "-s must be 1..20"; fi
if ! [[ $REPS =~ ^[0-9]+$ ]] || [ "$REPS" -lt 1 ] || [ "$REPS" -gt 4 ]; then die "-R must be 1..4"; fi
read -r -a FIXED_RATES <<<"$FIXED"
read -r -a RAMP_RATES <<<"$RAMP"
if [ ${#FIXED_RATES[@]} -lt 1 ] || [ ${#FIXED_RATES[@]} -gt 5 ] || [ ${#RAMP_RATES[@]} -gt 5 ]; then die "-f: 1..5 rates, -r: at most 5"; fi
if ! [[ $LONG_S =~ ^[0-9]+$ ]] || [ "$LONG_S" -gt 60 ]; then die "-l must be 0..60"; fi
for r in "${FIXED_RATES[@]}" "${RAMP_RATES[@]}" "$LONG_RATE"; do
  if ! [[ $r =~ ^[0-9]+$ ]] || [ "$r" -lt 10 ] || [ "$r" -gt 10000 ]; then die "bad rate '$r' (10..10000)"; fi
done
for s in $SERVERS; do case $s in palisade | kamailio) ;; *) die "unknown server '$s'" ;; esac; done

REG_SCENARIO=$HERE/../register/reg_auth.xml
[ -f "$REG_SCENARIO" ] || die "missing $REG_SCENARIO"
UAS_PORT=5090 UAC_PORT=5088
bench_init

# ------------------------------------------------------------------ users
PAL_DATA=$WORK/palisade-data
declare -A CALLEES CALLS
log "provisioning Palisade extensions 1000..$((1000 + NCALLEES - 1)) (callers), 1500..$((1500 + NCALLEES - 1)) (callees)"
pal_provision "$PAL_DATA" 1000 $((1000 + NCALLEES - 1)) >"$WORK/pal-callers.txt"
pal_provision "$PAL_DATA" 1500 $((1500 + NCALLEES - 1)) >"$WORK/pal-callees.txt"
"$PALISADE_BIN" security set flood_red_pps 2000000 --data "$PAL_DATA" >/dev/null
"$PALISADE_BIN" security set flood_amber_pps 1000000 --data "$PAL_DATA" >/dev/null
"$PALISADE_BIN" security show --data "$PAL_DATA" >"$WORK/palisade-security.txt" 2>&1 || true
# callees: to_user;auth_user;password;source_ip (reg_auth.xml); calls: number;auth_id;password;callee
{ echo SEQUENTIAL; awk -F';' '{print $0 ";127.0.0.1"}' "$WORK/pal-callees.txt"; } >"$WORK/pal-callees.csv"
{ echo SEQUENTIAL; paste -d';' "$WORK/pal-callers.txt" <(cut -d';' -f1 "$WORK/pal-callees.txt"); } >"$WORK/pal-calls.csv"
{ echo SEQUENTIAL; for ((i = 1500; i < 1500 + NCALLEES; i++)); do echo "u$i;u$i;pwu$i;127.0.0.1"; done; } >"$WORK/kam-callees.csv"
{ echo SEQUENTIAL; for ((i = 0; i < NCALLEES; i++)); do echo "u$((1000 + i));u$((1000 + i));pwu$((1000 + i));u$((1500 + i))"; done; } >"$WORK/kam-calls.csv"
CALLEES[palisade]=$WORK/pal-callees.csv CALLS[palisade]=$WORK/pal-calls.csv
CALLEES[kamailio]=$WORK/kam-callees.csv CALLS[kamailio]=$WORK/kam-calls.csv
[ "$(wc -l <"$WORK/pal-calls.csv")" = $((NCALLEES + 1)) ] || die "provisioning gave $(wc -l <"$WORK/pal-calls.csv") call lines"

start_server() { # SERVER: fresh start, then the callees registered from the UAS port
  local srv=$1 st
  stop_server
  if [ "$srv" = palisade ]; then
    start_palisade "$PAL_DATA" --rtp-ports 20000-39999
  else
    start_kamailio 65535
  fi
  st=$WORK/reg-$srv-$(date +%s%N).csv
  timeout -k 3 40 ip netns exec "$NS" sipp "$HOST:$PORT" -sf "$REG_SCENARIO" -inf "${CALLEES[$srv]}" \
    -i "$HOST" -p "$UAS_PORT" -key sport "$UAS_PORT" -r 250 -m "$NCALLEES" -l 200 -nostdin -timeout 30 \
    -recv_timeout 4000 -trace_stat -stf "$st" -fd 1 >"$st.out" 2>&1 </dev/null || true
  [ "$(sipp_stat "$st" 'SuccessfulCall(C)')" = "$NCALLEES" ] ||
    die "$srv: registered $(sipp_stat "$st" 'SuccessfulCall(C)') of $NCALLEES callees: $(tail -3 "$st.out")"
}

# one bounded step; sets STEP_LINE and STEP_OK
STEP_NO=0 RAW=$WORK/steps.txt
: >"$RAW"
run_step() { # KIND SERVER RATE [SECONDS]
  local kind=$1 srv=$2 rate=$3 secs=${4:-$STEP_S} count tag tmo uas c0 c1 m0 m1 t0 t1 su ss rc=0
  count=$((rate * secs))
  STEP_NO=$((STEP_NO + 1))
  tag=$WORK/step$(printf %03d "$STEP_NO")-$kind-$srv-r$rate
  tmo=$((secs + 25))
  start_server "$srv"
  bg_start "$tag.uas.out" timeout -k 3 $((tmo + 15)) sipp -sf "$HERE/call_uas.xml" -i "$HOST" -p "$UAS_PORT" \
    -m "$count" -nostdin -timeout $((tmo + 10)) -buff_size 8388608 -trace_stat -stf "$tag.uas.csv" -fd 1 \
    -trace_err -error_file "$tag.uas.err"
  uas=$BG_PID
  BG_PIDS+=("$uas")
  sleep 0.5
  c0=$(cpu_ns_tree "$SERVER_PID")
  m0=$(machine_ticks)
  t0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  { time timeout -k 3 $((tmo + 10)) ip netns exec "$NS" sipp "$HOST:$PORT" -sf "$HERE/call_uac.xml" \
    -inf "${CALLS[$srv]}" -i "$HOST" -p "$UAC_PORT" -r "$rate" -m "$count" -l $((rate * 5 + 100)) -d 0 \
    -nostdin -timeout "$tmo" -recv_timeout 8000 -buff_size 8388608 \
    -trace_stat -stf "$tag.csv" -fd 1 -trace_err -error_file "$tag.err" >"$tag.out" 2>&1 </dev/null; } 2>"$tag.time" || rc=$?
  t1=$(date +%s.%N)
  sleep 1
  c1=$(cpu_ns_tree "$SERVER_PID")
  m1=$(machine_ticks)
  local i
  for ((i = 0; i < 40; i++)); do alive "$uas" || break; sleep 0.1; done
  stop_pid "$uas" 2
  BG_PIDS=()
  read -r su ss < <(tail -1 "$tag.time") || true
  [ -s "$tag.csv" ] || die "no sipp statistics: $(tail -3 "$tag.out")"
  local ok fail retr uas_ok el setup achieved wall srv_s srv_us sipp_us other
  ok=$(sipp_stat "$tag.csv" 'SuccessfulCall(C)')
  fail=$(sipp_stat "$tag.csv" 'FailedCall(C)')
  retr=$(sipp_stat "$tag.csv" 'Retransmissions(C)')
  uas_ok=$(sipp_stat "$tag.uas.csv" 'SuccessfulCall(C)' 2>/dev/null || echo 0)
  el=$(sipp_elapsed "$tag.csv")
  setup=$(sipp_rt_pct "$tag.csv" setup | tr ' ' ',')
  wall=$(echo "$t1 - $t0 + 1" | bc -l)
  srv_s=$(echo "($c1 - $c0) / 1000000000" | bc -l)
  srv_us=NA sipp_us=NA achieved=0
  if [ "$ok" -gt 0 ]; then
    srv_us=$(printf '%.0f' "$(echo "$srv_s / $ok * 1000000" | bc -l)")
    sipp_us=$(printf '%.0f' "$(echo "(${su:-0} + ${ss:-0}) / $ok * 1000000" | bc -l)")
  fi
  [ "$(echo "$el > 0" | bc)" = 1 ] && achieved=$(printf '%.0f' "$(echo "$ok / $el" | bc -l)")
  other=$(printf '%.0f' "$(echo "(($m1 - $m0) / $CLK_TCK - $srv_s - ${su:-0} - ${ss:-0}) / $wall * 100" | bc -l)")
  STEP_OK=0
  if [ "$fail" = 0 ] && [ "$ok" = "$count" ] && [ "$(echo "$retr * 1000 <= $count * 5" | bc)" = 1 ] &&
    [ "$(echo "$achieved >= 0.95 * $rate" | bc)" = 1 ]; then STEP_OK=1; fi
  S_OK=$ok S_FAIL=$fail S_RETR=$retr S_SRV_S=$srv_s S_SETUP=${setup#*,}; S_SETUP=${S_SETUP%%,*}
  STEP_LINE="$kind server=$srv rate=$rate count=$count ok=$ok fail=$fail retrans=$retr uas_ok=$uas_ok achieved_per_s=$achieved"
  STEP_LINE+=" setup_ms=$setup server_cpu_s=$(printf '%.2f' "$srv_s") server_us_per_call=$srv_us"
  STEP_LINE+=" server_cpu_pct=$(printf '%.0f' "$(echo "$srv_s / $wall * 100" | bc -l)") uac_us_per_call=$sipp_us other_cpu_pct=$other"
  STEP_LINE+=" sipp_rc=$rc sustained=$([ $STEP_OK = 1 ] && echo yes || echo no)"
  echo "$STEP_LINE" >>"$RAW"
  log "  $STEP_LINE"
  if [ "$ok" = 0 ]; then
    tail -5 "$tag.err" >&2 2>/dev/null || true
    tail -5 "$tag.out" >&2
  fi
}

# ------------------------------------------------------------------ run
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/calls-smoke.txt}
else
  mkdir -p "$HERE/results"
  OUT=${OUT:-$HERE/results/calls-$(date +%Y%m%d-%H%M%S).txt}
fi
LOAD_START=$(load_avg) LOAD_MID=""
T_START=$(date +%s)
declare -A C_OK C_FAIL C_RETR C_SRV C_SETUP MAXR LONGR
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
log "== CPU per call at fixed rates ($REPS repetitions, servers interleaved; load average $LOAD_START)"
for rate in "${FIXED_RATES[@]}"; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for srv in $SERVERS; do
      run_step cpu "$srv" "$rate"
      C_OK[$srv,$rate]=$((${C_OK[$srv,$rate]:-0} + S_OK))
      C_FAIL[$srv,$rate]=$((${C_FAIL[$srv,$rate]:-0} + S_FAIL))
      C_RETR[$srv,$rate]=$((${C_RETR[$srv,$rate]:-0} + S_RETR))
      C_SRV[$srv,$rate]=$(echo "${C_SRV[$srv,$rate]:-0} + $S_SRV_S" | bc -l)
      C_SETUP[$srv,$rate]="${C_SETUP[$srv,$rate]:-}${C_SETUP[$srv,$rate]:+/}$S_SETUP"
    done
  done
done
LOAD_MID=$(load_avg)
for srv in $SERVERS; do
  best=0
  for rate in "${FIXED_RATES[@]}"; do
    [ "${C_FAIL[$srv,$rate]}" = 0 ] && [ "${C_OK[$srv,$rate]}" = $((rate * STEP_S * REPS)) ] && best=$rate
  done
  if [ ${#RAMP_RATES[@]} -gt 0 ] && [ "$best" = "${FIXED_RATES[-1]}" ]; then
    log "== $srv: ramp (load average $(load_avg))"
    for rate in "${RAMP_RATES[@]}"; do
      run_step ramp "$srv" "$rate"
      if [ "$STEP_OK" = 1 ]; then best=$rate; else break; fi
    done
  fi
  MAXR[$srv]=$best
done
if [ "$LONG_S" -gt 0 ]; then
  for srv in $SERVERS; do
    log "== $srv: $LONG_RATE calls/s for $LONG_S s (load average $(load_avg))"
    run_step long "$srv" "$LONG_RATE" "$LONG_S"
    LONGR[$srv]="$(field "$STEP_LINE" ok) ok, $(field "$STEP_LINE" fail) failed, $(field "$STEP_LINE" retrans) retransmissions of $((LONG_RATE * LONG_S)) calls; server $(field "$STEP_LINE" server_us_per_call) µs/call; setup $(field "$STEP_LINE" setup_ms) ms; sustained=$(field "$STEP_LINE" sustained)"
  done
fi
stop_server
T_END=$(date +%s)

us_per() { if [ "$2" -gt 0 ]; then printf '%.0f' "$(echo "$1 / $2 * 1000000" | bc -l)"; else echo NA; fi; }
{
  echo "# Authenticated calls (INVITE/407/ACK/INVITE/200/ACK/BYE/200): Palisade vs Kamailio — $(date -Is)"
  echo "# machine: $(machine_line); run took $((T_END - T_START)) s"
  echo "# sipp $(sipp -v 2>&1 | awk '/SIPp v/{print $2}' | sed 's/[.]$//'), UDP, one UAC (127.0.0.1:$UAC_PORT), one UAS (127.0.0.1:$UAS_PORT), $NCALLEES caller/callee pairs, hold 0, SDP without media"
  echo "# palisade $PAL_VERSION, flood_amber_pps=1000000 flood_red_pps=2000000 (raised for this run), --rtp-ports 20000-39999"
  echo "# kamailio ${KAM_VERSION:-?}, reference config, 2 workers, pike density 65535/2 s"
  echo "# load average: start $LOAD_START, after the fixed rates $LOAD_MID, end $(load_avg)"
  echo "# command: benches/calls/run.sh $*"
  echo
  echo "## server CPU per successful call, µs (all threads, schedstat; $REPS x rate x $STEP_S s calls per cell, fresh server each step)"
  printf '%-7s' rate/s
  for srv in $SERVERS; do printf ' | %-10s %-18s %-16s' "$srv" "ok/fail/retrans" "setup ms, p95 per step"; done
  [ "$SERVERS" = "palisade kamailio" ] && printf ' | %s' "palisade/kamailio"
  echo
  for rate in "${FIXED_RATES[@]}"; do
    printf '%-7s' "$rate"
    for srv in $SERVERS; do
      printf ' | %-10s %-18s %-16s' "$(us_per "${C_SRV[$srv,$rate]}" "${C_OK[$srv,$rate]}")" \
        "${C_OK[$srv,$rate]}/${C_FAIL[$srv,$rate]}/${C_RETR[$srv,$rate]}" "${C_SETUP[$srv,$rate]}"
    done
    if [ "$SERVERS" = "palisade kamailio" ]; then
      p=$(us_per "${C_SRV[palisade,$rate]}" "${C_OK[palisade,$rate]}")
      k=$(us_per "${C_SRV[kamailio,$rate]}" "${C_OK[kamailio,$rate]}")
      if [ "$p" != NA ] && [ "$k" != NA ] && [ "$k" != 0 ]; then printf ' | %.2f' "$(echo "$p / $k" | bc -l)"; else printf ' | NA'; fi
    fi
    echo
  done
  echo
  echo "## highest rate with 0 failed calls, <= 0.5 % retransmissions, >= 95 % of the offered rate ($STEP_S s steps)"
  for srv in $SERVERS; do echo "$srv: ${MAXR[$srv]} calls/s"; done
  echo
  if [ "$LONG_S" -gt 0 ]; then
    echo "## long step: $LONG_RATE calls/s for $LONG_S s"
    for srv in $SERVERS; do echo "$srv: ${LONGR[$srv]}"; done
    echo
  fi
  echo "## every step"
  cat "$RAW"
} | tee "$OUT"
log "written $OUT"
if [ "$SMOKE" = 1 ]; then
  smoke_check "calls at ${FIXED_RATES[0]}/s" "${C_OK[palisade,${FIXED_RATES[0]}]}" $((FIXED_RATES[0] * STEP_S)) "${C_FAIL[palisade,${FIXED_RATES[0]}]}"
fi
