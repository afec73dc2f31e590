#!/usr/bin/env bash
# The anti-hacking guard under a flood: Palisade beside Kamailio with pike, one run, one machine.
#
# What it does, bounded in time (about 3-4 minutes with the defaults, never more than ~8):
#   1. installs what is missing, builds Palisade (release); Palisade: extensions 1000..1999, DEFAULT
#      guard settings (amber 1,000 / red 5,000 packets/s per source), 127.0.0.66 blacklisted with
#      `palisade blacklist add`; Kamailio 5.6 with the reference configuration in its "secure" profile
#      (pike: 30 requests per 2 s per source, then the source is put in the ipban htable for 30 s and its
#      requests are dropped in request_route), 127.0.0.66 put in ipban with kamcmd (htable.seti);
#   2. per server, freshly started, in a private network namespace with only a loopback interface:
#      a. BANNED FLOOD: flood.py sends COUNT unauthenticated REGISTERs (~420 bytes) from 127.0.0.66 at
#         RATE packets/s; server CPU (all threads, /proc/PID/task/*/schedstat) divided by the datagrams the
#         server read (Udp InDatagrams of the namespace, /proc/net/snmp: counted when the server's recvfrom
#         returns them; datagrams the kernel dropped for a full socket buffer, RcvbufErrors, are reported
#         beside). The figure INCLUDES the recvfrom system call and the wake-ups: Palisade's guard drops a
#         banned source before parsing, Kamailio parses the request and drops it in its script;
#      b. LEGITIMATE BASELINE: sipp registers users at LEGIT_RATE/s for LEGIT_S s (benches/register/
#         reg_auth.xml, REGISTER, 401, REGISTER with digest, 200), users spread over 200 source addresses
#         127.0.1.1..200 (-t ui), no flood: success, failures, latency percentiles;
#      c. LEGITIMATE DURING A FLOOD: the same, while flood.py sends from 127.0.0.2 (not banned) at RATE
#         packets/s (started 1 s before, lasting until after the registrations): the guard throttles it
#         (amber) and bans it (red); pike bans it after 30 requests. Whether and how the flood source
#         ended up banned is reported.
#      Servers interleaved (palisade, kamailio, palisade, kamailio with -R 2);
#   3. prints a table, writes results/guard-<date>.txt.
#
# usage: benches/guard/run.sh [-r RATE] [-c COUNT] [-l LEGIT_RATE] [-s LEGIT_S] [-R REPS] [-S servers] [-o FILE]
#   defaults: -r 50000 packets/s, -c 400000 packets (8 s), -l 200 registrations/s, -s 8, -R 2
#   -Z  smoke mode (CI): Palisade only, 2,000 packets/s, 20 registrations/s for 2 s, one repetition, through the
#       same code with the debug binary; exits 1 unless every legitimate registration succeeded
# Needs root. Environment: SHARED_DIR, PALISADE_BIN, PALISADE_REV, KEEP=1, INSTALL=0 (benches/calls/lib.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=guard
# shellcheck source=benches/calls/lib.sh
. "$HERE/../calls/lib.sh"

RATE=50000 COUNT=400000 LEGIT_RATE=200 LEGIT_S=8 REPS=2 SERVERS="palisade kamailio" OUT=""
USERS_LAST=1999
while getopts "r:c:l:s:R:S:o:Zh" o; do
  case $o in
    r) RATE=$OPTARG ;; c) COUNT=$OPTARG ;; l) LEGIT_RATE=$OPTARG ;; s) LEGIT_S=$OPTARG ;; R) REPS=$OPTARG ;;
    S) SERVERS=$OPTARG ;; o) OUT=$OPTARG ;;
    Z) SMOKE=1 RATE=2000 COUNT=2000 LEGIT_RATE=20 LEGIT_S=2 REPS=1 SERVERS=palisade USERS_LAST=1039 ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
for v in "$RATE" "$COUNT" "$LEGIT_RATE" "$LEGIT_S" "$REPS"; do [[ $v =~ ^[0-9]+$ ]] || die "options take whole numbers"; done
if [ "$RATE" -lt 1000 ] || [ "$RATE" -gt 200000 ]; then die "-r: 1000..200000 packets/s"; fi
if [ "$COUNT" -lt 1000 ] || [ "$COUNT" -gt $((RATE * 15)) ]; then die "-c: 1000..15 s of flood"; fi
if [ "$LEGIT_RATE" -lt 10 ] || [ "$LEGIT_RATE" -gt 2000 ] || [ "$LEGIT_S" -lt 2 ] || [ "$LEGIT_S" -gt 15 ]; then die "-l 10..2000, -s 2..15"; fi
if [ "$REPS" -lt 1 ] || [ "$REPS" -gt 3 ]; then die "-R: 1..3"; fi
for s in $SERVERS; do case $s in palisade | kamailio) ;; *) die "unknown server '$s'" ;; esac; done
REG_SCENARIO=$HERE/../register/reg_auth.xml
[ -f "$REG_SCENARIO" ] || die "missing $REG_SCENARIO"
BANNED=127.0.0.66 FLOODER=127.0.0.2 NADDR=200
bench_init

# ------------------------------------------------------------------ users
PAL_DATA=$WORK/palisade-data
declare -A USERS
src_ip() { awk -v n="$NADDR" '{ printf "%s;127.0.1.%d\n", $0, 1 + (NR - 1) % n }'; }
pal_provision "$PAL_DATA" 1000 "$USERS_LAST" | src_ip >"$WORK/pal-users.csv"
for ((i = 1000; i <= USERS_LAST; i++)); do echo "u$i;u$i;pwu$i"; done | src_ip >"$WORK/kam-users.csv"
USERS[palisade]=$WORK/pal-users.csv USERS[kamailio]=$WORK/kam-users.csv
"$PALISADE_BIN" blacklist add "$BANNED" --note "benches/guard: banned flood source" --data "$PAL_DATA" >/dev/null
"$PALISADE_BIN" security show --data "$PAL_DATA" >"$WORK/palisade-security.txt" 2>&1 || true

start_server() {
  stop_server
  if [ "$1" = palisade ]; then
    start_palisade "$PAL_DATA"
  else
    start_kamailio 30
    nsx kamcmd -s "unix:$WORK/kamailio_ctl" htable.seti ipban "$BANNED" 1 >/dev/null ||
      die "kamcmd htable.seti ipban $BANNED failed"
  fi
  sleep 0.5
}
udp_snmp() { # "InDatagrams RcvbufErrors" of the namespace
  nsx cat /proc/net/snmp | awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next } print $(c["InDatagrams"]), $(c["RcvbufErrors"]) }'
}
flood() { # SRC COUNT -> JSON line on stdout
  timeout -k 3 $((COUNT * 3 / 2 / RATE + 10)) ip netns exec "$NS" python3 "$HERE/flood.py" \
    --src "$1" --dst "$HOST:$PORT" --rate "$RATE" --count "$2"
}
legit() { # TAG: one bounded registration step; sets L_LINE
  local tag=$1 count=$((LEGIT_RATE * LEGIT_S)) st ok fail retr users
  st=$tag.stat.csv
  users=$WORK/users-$$.csv
  { echo SEQUENTIAL; cat "${USERS[$SERVER_NAME]}"; } >"$users"
  timeout -k 3 $((LEGIT_S + 30)) ip netns exec "$NS" sipp "$HOST:$PORT" -sf "$REG_SCENARIO" -inf "$users" \
    -ip_field 3 -t ui -p 5089 -key sport 5089 -r "$LEGIT_RATE" -m "$count" -l $((LEGIT_RATE * 10 + 100)) \
    -nostdin -timeout $((LEGIT_S + 20)) -recv_timeout 10000 -max_non_invite_retrans 5 -max_socket 1024 \
    -buff_size 4194304 -trace_stat -stf "$st" -fd 1 -trace_err -error_file "$tag.err" >"$tag.out" 2>&1 </dev/null || true
  [ -s "$st" ] || die "no sipp statistics: $(tail -3 "$tag.out")"
  ok=$(sipp_stat "$st" 'SuccessfulCall(C)')
  fail=$(sipp_stat "$st" 'FailedCall(C)')
  retr=$(sipp_stat "$st" 'Retransmissions(C)')
  L_OK=$ok L_COUNT=$count L_PCT=$(printf '%.1f' "$(echo "$ok * 100 / $count" | bc -l)")
  L_RT=$(sipp_rt_pct "$st" reg | tr ' ' ',')
  L_AVG=$(printf '%.1f' "$(echo "$(sipp_secs "$st" 'ResponseTimereg(C)') * 1000" | bc -l)")
  L_LINE="registrations=$count ok=$ok fail=$fail retrans=$retr success_pct=$L_PCT latency_ms=$L_RT avg_ms=$L_AVG"
}

RAW=$WORK/steps.txt
: >"$RAW"
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/guard-smoke.txt}
else
  mkdir -p "$HERE/results"
  OUT=${OUT:-$HERE/results/guard-$(date +%Y%m%d-%H%M%S).txt}
fi
SMOKE_OK=0 SMOKE_WANT=0
LOAD_START=$(load_avg)
T_START=$(date +%s)
declare -A DROP_US DROP_PKTS BASE FLOODED
for ((rep = 1; rep <= REPS; rep++)); do
  for srv in $SERVERS; do
    step=$WORK/r$rep-$srv
    start_server "$srv"
    # idle CPU (timers), for reference
    i0=$(cpu_ns_tree "$SERVER_PID")
    sleep 2
    idle=$(printf '%.2f' "$(echo "($(cpu_ns_tree "$SERVER_PID") - $i0) / 1000000000 / 2 * 100" | bc -l)")

    # (a) flood from the banned source
    read -r in0 rb0 < <(udp_snmp)
    c0=$(cpu_ns_tree "$SERVER_PID")
    f=$(flood "$BANNED" "$COUNT")
    sleep 0.5
    c1=$(cpu_ns_tree "$SERVER_PID")
    read -r in1 rb1 < <(udp_snmp)
    read_pkts=$((in1 - in0))
    us=NA
    [ "$read_pkts" -gt 0 ] && us=$(printf '%.2f' "$(echo "($c1 - $c0) / 1000 / $read_pkts" | bc -l)")
    line="banned_flood rep=$rep server=$srv flood=$f read=$read_pkts rcvbuf_drops=$((rb1 - rb0)) server_cpu_s=$(printf '%.3f' "$(echo "($c1 - $c0) / 1000000000" | bc -l)") us_per_dropped_pkt=$us idle_pct=$idle"
    echo "$line" >>"$RAW"
    log "  $line"
    DROP_US[$srv]="${DROP_US[$srv]:-}${DROP_US[$srv]:+ / }$us"
    DROP_PKTS[$srv]="${DROP_PKTS[$srv]:-}${DROP_PKTS[$srv]:+ / }$read_pkts of $(jq -r .sent <<<"$f") ($(jq -r .rate <<<"$f")/s)"

    # (b) legitimate registrations, no flood
    legit "$step-base"
    line="legit_no_flood rep=$rep server=$srv $L_LINE"
    echo "$line" >>"$RAW"
    log "  $line"
    BASE[$srv]="${BASE[$srv]:-}${BASE[$srv]:+ ; }$L_OK/$L_COUNT ($L_PCT %), $L_RT"
    SMOKE_OK=$((SMOKE_OK + L_OK)) SMOKE_WANT=$((SMOKE_WANT + L_COUNT))

    # (c) the same during a flood from a source that is not banned yet
    read -r in0 rb0 < <(udp_snmp)
    c0=$(cpu_ns_tree "$SERVER_PID")
    fcount=$(((LEGIT_S + 3) * RATE))
    [ "$fcount" -gt $((RATE * 15)) ] && fcount=$((RATE * 15))
    flood "$FLOODER" "$fcount" >"$step-flood.json" &
    fpid=$!
    BG_PIDS+=("$fpid")
    sleep 1
    legit "$step-flood"
    wait "$fpid" || true
    BG_PIDS=()
    c1=$(cpu_ns_tree "$SERVER_PID")
    read -r in1 rb1 < <(udp_snmp)
    if [ "$srv" = palisade ]; then
      sleep 1.5 # the ban reaches the store within a second
      ban=$("$PALISADE_BIN" blacklist list --json --data "$PAL_DATA" 2>/dev/null |
        jq -r --arg ip "$FLOODER" '[.[] | select(.net == ($ip + "/32"))] | if length > 0 then "banned(\(.[0].origin):\(.[0].reason))" else "not banned" end' 2>/dev/null || echo "?")
    else
      ban="pike alerts: $(grep -c 'pike blocking' "$WORK/kamailio.log" || true)"
    fi
    line="legit_during_flood rep=$rep server=$srv $L_LINE flood=$(cat "$step-flood.json") flood_source=$ban read=$((in1 - in0)) rcvbuf_drops=$((rb1 - rb0)) server_cpu_s=$(printf '%.3f' "$(echo "($c1 - $c0) / 1000000000" | bc -l)")"
    echo "$line" >>"$RAW"
    log "  $line"
    FLOODED[$srv]="${FLOODED[$srv]:-}${FLOODED[$srv]:+ ; }$L_OK/$L_COUNT ($L_PCT %), $L_RT, flood source $ban"
    SMOKE_OK=$((SMOKE_OK + L_OK)) SMOKE_WANT=$((SMOKE_WANT + L_COUNT))
  done
done
stop_server
T_END=$(date +%s)
{
  echo "# Guard under a flood: Palisade vs Kamailio with pike — $(date -Is)"
  echo "# machine: $(machine_line); run took $((T_END - T_START)) s"
  echo "# palisade $PAL_VERSION, default guard settings (flood_amber_pps 1000, flood_red_pps 5000), $BANNED blacklisted"
  echo "# kamailio ${KAM_VERSION:-?}, reference config, secure profile (pike 30 requests / 2 s, ipban 30 s), $BANNED in ipban"
  echo "# flood: $RATE packets/s of ~420-byte REGISTERs from one source (flood.py); legitimate: sipp reg_auth.xml at $LEGIT_RATE/s for $LEGIT_S s from $NADDR addresses"
  echo "# load average: start $LOAD_START, end $(load_avg)"
  echo "# command: benches/guard/run.sh $*"
  echo
  echo "## server CPU per datagram read from the banned source (µs, includes recvfrom and wake-ups; per repetition)"
  for srv in $SERVERS; do echo "$srv: ${DROP_US[$srv]} µs   (datagrams read of sent: ${DROP_PKTS[$srv]})"; done
  echo
  echo "## legitimate authenticated registrations: ok/offered (success %), latency percentiles (ms buckets), per repetition"
  for srv in $SERVERS; do
    echo "$srv, no flood:     ${BASE[$srv]}"
    echo "$srv, during flood: ${FLOODED[$srv]}"
  done
  echo
  echo "## every step"
  cat "$RAW"
} | tee "$OUT"
log "written $OUT"
[ "$SMOKE" = 1 ] && smoke_check "guard: legitimate registrations, with and without a flood" "$SMOKE_OK" "$SMOKE_WANT" 0
exit 0
