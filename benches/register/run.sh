#!/usr/bin/env bash
# Authenticated REGISTER: Palisade beside Kamailio, one run, one machine.
#
# What it does, all bounded in time (about 7 minutes, never more than ~10):
#   1. installs what is missing (Debian packages: sip-tester, kamailio, bc, jq,
#      iproute2, procps), never letting kamailio.service start;
#   2. builds Palisade (cargo build --release -p palisade);
#   3. provisions extensions 1000..1999 in a temporary data directory with the
#      Palisade CLI (ext add-range); Kamailio's reference users are u1000..u1999
#      with password pw<user> (no database);
#   4. runs both servers, one at a time, on udp:127.0.0.1:5070 inside a private
#      network namespace that has only a loopback interface: Palisade, and
#      Kamailio 5.6 with the reference config
#      $REPO/../shared/peers/kamailio/kamailio.cfg (2 UDP workers, pike at its
#      "bench" threshold); every step uses the SAME sipp scenario (reg_auth.xml:
#      REGISTER, 401, REGISTER with MD5 digest, 200) and is bounded by a count
#      (-m) and a timeout; before every step the server is started afresh and
#      every user registered once (warm-up, not measured);
#   5. CPU per registration at fixed rates: server CPU = utime+stime of the
#      server's process tree (all threads) from /proc/PID/stat before/after the
#      step, divided by the successful registrations; servers interleaved per
#      repetition; sipp's own CPU reported beside it;
#   6. highest sustained rate, server by server: STEP_S steps up the rate list
#      until one has a failure, a retransmission or < 95 % of the offered rate,
#      three bisection steps, then one LONG_S step at the best rate (if it
#      fails, at most twice more at 80 % of the offered or achieved rate,
#      whichever is lower): state that outlives a registration must not pile up;
#   7. prints a table and writes it to results/register-<date>.txt.
#
# usage: benches/register/run.sh [options]
#   -f RATES    fixed rates for the CPU comparison (default "1000 2000 5000 10000")
#   -s STEP_S   seconds of load per step (default 8): count = rate * STEP_S
#   -c CAP      at most CAP registrations per CPU step (default 3500; 0: none).
#               Palisade keeps every server transaction 32 s after its answer
#               (Timer J) in a table of 10,000: more than ~4,000 registrations
#               (+1,000 warm-up) within 32 s overflow it (503)
#   -R REPS     repetitions per fixed rate (default 2), summed
#   -r RATES    further rates for the ramp, after the fixed ones
#               (default "15000 20000 25000 30000 40000")
#   -l LONG_S   seconds of the final sustained step (default 40; 0: skip)
#   -n N        parallel sipp generators (default 2); generator k sends rate/N
#               for every N-th user, from local port 5089+k
#   -a N        source addresses (default 250): user i sends from
#               127.0.0.(1 + i mod N) (sipp -t ui), i.e. 4 phones per address,
#               so that no address trips a per-address flood limit
#   -S LIST     servers (default "palisade kamailio")
#   -o FILE     results file (default benches/register/results/register-<date>.txt)
#   -I          do not install packages (fail if something is missing)
#   -k          keep the scratch directory (logs, sipp statistics and errors)
#   -Z          smoke mode (CI): Palisade only, 20 users, one 1 s step at 200/s through the same code, the
#               debug binary (built unless PALISADE_BIN is set), nothing installed, results in the scratch
#               directory; exits 1 unless every registration succeeded
# Needs root (network namespace, packages). Environment: SHARED_DIR (default
# $REPO/../shared), PALISADE_BIN (a binary to use instead of building
# target/release/palisade), PALISADE_REV (the commit shown for it; default HEAD).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared}
KAM_CFG=$SHARED_DIR/peers/kamailio/kamailio.cfg
SCENARIO=$HERE/reg_auth.xml
HOST=127.0.0.1 PORT=5070 SIPP_PORT=5089
USER_FIRST=1000 USER_LAST=1999

STEP_S=8 NGEN=2 NADDR=250 CAP=3500 REPS=2 LONG_S=40 IDLE_S=5 FIXED="1000 2000 5000 10000" RAMP="15000 20000 25000 30000 40000"
SERVERS="palisade kamailio" OUT="" INSTALL=1 KEEP=0 SMOKE=0
while getopts "s:n:a:c:R:l:f:r:S:o:IkZh" o; do
  case $o in
    s) STEP_S=$OPTARG ;; n) NGEN=$OPTARG ;; a) NADDR=$OPTARG ;;
    c) CAP=$OPTARG ;; R) REPS=$OPTARG ;; l) LONG_S=$OPTARG ;; f) FIXED=$OPTARG ;; r) RAMP=$OPTARG ;;
    S) SERVERS=$OPTARG ;; o) OUT=$OPTARG ;; I) INSTALL=0 ;; k) KEEP=1 ;;
    Z) SMOKE=1 SERVERS=palisade INSTALL=0 FIXED=200 RAMP="" STEP_S=1 CAP=0 REPS=1 LONG_S=0 NADDR=5 IDLE_S=1
      USER_LAST=$((USER_FIRST + 19)) ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespace, packages)"
if ! [[ $STEP_S =~ ^[0-9]+$ ]] || [ "$STEP_S" -lt 1 ] || [ "$STEP_S" -gt 30 ]; then die "-s must be 1..30"; fi
if ! [[ $NGEN =~ ^[0-9]+$ ]] || [ "$NGEN" -lt 1 ] || [ "$NGEN" -gt 4 ]; then die "-n must be 1..4"; fi
for v in "$CAP" "$REPS" "$LONG_S"; do [[ $v =~ ^[0-9]+$ ]] || die "-c, -R, -l take whole numbers"; done
if [ "$REPS" -lt 1 ] || [ "$REPS" -gt 5 ] || [ "$LONG_S" -gt 60 ] || [ "$CAP" -gt 500000 ]; then die "-R 1..5, -l 0..60, -c 0..500000"; fi
if ! [[ $NADDR =~ ^[0-9]+$ ]] || [ "$NADDR" -lt 1 ] || [ "$NADDR" -gt 250 ]; then die "-a must be 1..250"; fi
read -r -a FIXED_RATES <<<"$FIXED"
read -r -a RAMP_RATES <<<"$RAMP"
if [ ${#FIXED_RATES[@]} -lt 1 ] || [ ${#FIXED_RATES[@]} -gt 6 ]; then die "-f: 1 to 6 rates"; fi
[ ${#RAMP_RATES[@]} -le 6 ] || die "-r: at most 6 rates"
for r in "${FIXED_RATES[@]}" "${RAMP_RATES[@]}"; do
  if ! [[ $r =~ ^[0-9]+$ ]] || [ "$r" -lt 10 ] || [ "$r" -gt 100000 ]; then die "bad rate '$r' (10..100000)"; fi
done
for s in $SERVERS; do
  case $s in palisade | kamailio) ;; *) die "unknown server '$s'" ;; esac
done
case " $SERVERS " in
  *" kamailio "*)
    [ -f "$KAM_CFG" ] || die "Kamailio reference config not found: $KAM_CFG
  (expected the shared peers directory at $SHARED_DIR; set SHARED_DIR=/path/to/shared)" ;;
esac

# ------------------------------------------------------------------ packages
needs_kamailio() { case " $SERVERS " in *" kamailio "*) return 0 ;; esac; return 1; }
PKGS=(sip-tester bc jq iproute2 procps)
needs_kamailio && PKGS+=(kamailio)
install_packages() {
  local missing=() p tmp_policy=0
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (run without -I)"
  log "installing ${missing[*]}"
  # the kamailio package would start kamailio.service on 0.0.0.0:5060: forbid
  # service starts during the install (unless the machine already has a policy)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install failed"
  if [ -d /run/systemd/system ]; then
    systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
}
install_packages
for c in sipp bc jq ip ss ps timeout; do
  command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"
done
if needs_kamailio; then
  command -v kamailio >/dev/null 2>&1 || die "missing command 'kamailio'"
  KAM_MODDIR=$(dirname "$(dpkg -L kamailio 2>/dev/null | grep -m1 '/modules/tm\.so$' || echo /x/tm.so)")
  for m in kex corex tm tmx sl rr pv maxfwd usrloc registrar textops siputils xlog sanity ctl auth pike htable nathelper; do
    [ -f "$KAM_MODDIR/$m.so" ] || die "kamailio module $m.so missing (in $KAM_MODDIR)"
  done
fi

# ------------------------------------------------------------------ build
if [ -z "${PALISADE_BIN:-}" ]; then
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: scripts/install-deps.sh)"
  if [ "$SMOKE" = 1 ]; then
    log "building palisade (debug, smoke mode)"
    (cd "$REPO" && cargo build -q -p palisade) || die "build failed"
    PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/palisade
  else
    log "building palisade (release)"
    (cd "$REPO" && cargo build --release -p palisade) || die "build failed"
    PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/palisade
  fi
fi
[ -x "$PALISADE_BIN" ] || die "no binary at $PALISADE_BIN"

# ------------------------------------------------------------------ scratch, netns, cleanup
WORK=$(mktemp -d /tmp/palisade-regbench.XXXXXX)
NS=palreg$$
SERVER_PID="" BG_PIDS=()
declare -A USERS=()
CLK_TCK=$(getconf CLK_TCK)

alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
stop_pid() { # PID [seconds]: TERM, then KILL
  local pid=$1 t=${2:-5} i
  [ -n "$pid" ] || return 0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do stop_pid "$p" 2; done
  stop_pid "$SERVER_PID" 10
  if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; then
    if [ -z "$(ip netns pids "$NS" 2>/dev/null)" ]; then
      ip netns del "$NS" 2>/dev/null || true
    else
      log "WARNING: processes left in netns $NS: $(ip netns pids "$NS" | tr '\n' ' ')"
    fi
  fi
  if [ "$KEEP" = 1 ]; then log "scratch kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" || die "cannot create network namespace $NS"
ip netns exec "$NS" ip link set lo up
ifs=$(ip netns exec "$NS" ip -o link show | awk -F': ' '{print $2}' | grep -vx lo || true)
[ -z "$ifs" ] || die "netns $NS has non-loopback interfaces: $ifs"
nsx() { ip netns exec "$NS" "$@"; }

# start CMD inside the namespace in the background; PID of CMD itself in BG_PID
bg_start() {
  local logf=$1
  shift
  (exec ip netns exec "$NS" "$@") >"$logf" 2>&1 </dev/null &
  BG_PID=$!
}

# ------------------------------------------------------------------ users
# to_user;auth_user;password -> to_user;auth_user;password;127.0.0.(1 + line mod NADDR)
add_source_ip() { awk -v n="$NADDR" '{ printf "%s;127.0.0.%d\n", $0, 1 + (NR - 1) % n }'; }
PAL_DATA=$WORK/palisade-data
provision_palisade() {
  local csv=$WORK/palisade-users.csv n
  log "provisioning extensions $USER_FIRST..$USER_LAST"
  if "$PALISADE_BIN" ext add-range --help >/dev/null 2>&1; then
    "$PALISADE_BIN" ext add-range "$USER_FIRST" "$USER_LAST" --data "$PAL_DATA" >"$csv.raw" ||
      die "palisade ext add-range failed"
    # number,auth_id,password[,voicemail_pin] (a header line, if any, is skipped; the PIN is not used)
    grep -E '^[0-9]+,' "$csv.raw" | cut -d',' -f1-3 | tr ',' ';' >"$csv.tmp"
  else
    log "  (no 'ext add-range' in this build: one 'ext add --json' per extension)"
    : >"$csv.tmp"
    for ((n = USER_FIRST; n <= USER_LAST; n++)); do
      "$PALISADE_BIN" ext add "$n" --json --data "$PAL_DATA" | jq -r '"\(.number);\(.auth_id);\(.password)"' >>"$csv.tmp" ||
        die "palisade ext add $n failed"
    done
  fi
  add_source_ip <"$csv.tmp" >"$csv"
  [ "$(wc -l <"$csv")" = $((USER_LAST - USER_FIRST + 1)) ] || die "provisioning gave $(wc -l <"$csv") users"
  "$PALISADE_BIN" security show --data "$PAL_DATA" >"$WORK/palisade-security.txt" 2>&1 || true
  USERS[palisade]=$csv
}
provision_kamailio() {
  local csv=$WORK/kamailio-users.csv n
  for ((n = USER_FIRST; n <= USER_LAST; n++)); do echo "u$n;u$n;pwu$n"; done | add_source_ip >"$csv"
  USERS[kamailio]=$csv
}

# ------------------------------------------------------------------ servers
wait_listening() { # PID LOG
  local i
  for ((i = 0; i < 150; i++)); do
    alive "$1" || { tail -20 "$2" >&2; die "server died at start (log $2)"; }
    if [ -n "$(nsx ss -Hlun "sport = :$PORT" 2>/dev/null)" ]; then sleep 0.5; return 0; fi
    sleep 0.1
  done
  tail -20 "$2" >&2
  die "server not listening on udp $HOST:$PORT after 15 s"
}
start_palisade() {
  # Every step starts from a clean guard: a ban made while an earlier step overloaded the server (lost answers
  # look like unanswered challenges) is stored and would refuse that sipp address's users in every later step.
  local net
  for net in $("$PALISADE_BIN" blacklist list --json --data "$PAL_DATA" 2>/dev/null |
    jq -r '.[] | select(.origin == "auto") | .net' 2>/dev/null); do
    "$PALISADE_BIN" blacklist remove "$net" --data "$PAL_DATA" >/dev/null 2>&1 || true
  done
  bg_start "$WORK/palisade.log" "$PALISADE_BIN" serve --data "$PAL_DATA" --listen "udp:$HOST:$PORT"
  SERVER_PID=$BG_PID
  wait_listening "$SERVER_PID" "$WORK/palisade.log"
  SERVER_VERSION=$("$PALISADE_BIN" --version 2>/dev/null | awk '{print $2}')
  SERVER_VERSION="$SERVER_VERSION (${PALISADE_REV:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)}, $PALISADE_BIN)"
}
start_kamailio() {
  local args=(-f "$KAM_CFG" -DD -E -m 512 -M 16 -P "$WORK/kamailio.pid"
    -A WORKERS=2 -A PIKE_DENSITY=65535 -A "CTL_SOCK=\"unix:$WORK/kamailio_ctl\"")
  kamailio "${args[@]}" -c >"$WORK/kamailio-check.log" 2>&1 ||
    { tail -20 "$WORK/kamailio-check.log" >&2; die "kamailio config check failed"; }
  bg_start "$WORK/kamailio.log" kamailio "${args[@]}"
  SERVER_PID=$BG_PID
  wait_listening "$SERVER_PID" "$WORK/kamailio.log"
  SERVER_VERSION=$(kamailio -v 2>/dev/null | awk '/^version:/{print $3; exit}')
}

# ------------------------------------------------------------------ measuring
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    echo "$c"
    descendants "$c"
  done
}
# utime+stime in clock ticks of a process (all its threads) and its descendants
cpu_ticks_tree() {
  local total=0 p t
  for p in $1 $(descendants "$1"); do
    t=$({ sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; } | awk '{print $12 + $13}')
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
# ticks used by every process on the machine (live ones + reaped children)
machine_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^.*) //' |
    awk '{s += $12 + $13 + $14 + $15} END {print s + 0}'
}
sipp_stat() { # FILE COLUMN: the column of the last line of a sipp -trace_stat file
  awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"
}
# seconds from sipp's start to its last statistics line (CurrentTime - StartTime)
sipp_elapsed() {
  awk -F';' 'NR==1{next} {split($1, s, "\t"); split($2, c, "\t")} END{printf "%.3f", c[3] - s[3]}' "$1"
}
sipp_secs() { # FILE COLUMN: a sipp "HH:MM:SS:uuuuuu" or "HH:MM:SS" time column in seconds
  awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k}
    END{n=split(v,a,":"); s=a[1]*3600+a[2]*60+a[3]; if(n==4) s+=a[4]/1e6; printf "%.3f", s}' "$1"
}

# one bounded load step; sets STEP_LINE (key=value ...) and STEP_OK (1 = sustained)
STEP_NO=0
run_step() { # KIND SERVER RATE COUNT  (KIND: warmup, cpu, ramp, long)
  local kind=$1 srv=$2 rate=$3 count=$4 users k r c tmo n503=0 pids=() tag c0 c1 m0 m1 t0 t1 su ss
  local ok=0 fail=0 retr=0 el=0 e rtw=0 o
  STEP_NO=$((STEP_NO + 1))
  tag=$WORK/step$(printf %03d "$STEP_NO")-$kind-$srv-r$rate
  users=${USERS[$srv]}
  tmo=$(((count + rate - 1) / rate + 10))
  for ((k = 0; k < NGEN; k++)); do
    { echo SEQUENTIAL; awk -v n="$NGEN" -v k="$k" '(NR - 1) % n == k' "$users"; } >"$tag.users$k.csv"
  done
  run_gens() {
    for ((k = 0; k < NGEN; k++)); do
      r=$((rate / NGEN + (k < rate % NGEN ? 1 : 0)))
      c=$((count / NGEN + (k < count % NGEN ? 1 : 0)))
      timeout -k 3 $((tmo + 10)) ip netns exec "$NS" sipp "$HOST:$PORT" -sf "$SCENARIO" \
        -inf "$tag.users$k.csv" -ip_field 3 -t ui -p $((SIPP_PORT + k)) -key sport $((SIPP_PORT + k)) \
        -r "$r" -m "$c" -l $((r * 4 + 100)) -nostdin -timeout "$tmo" -recv_timeout 4000 \
        -max_non_invite_retrans 5 -max_socket 1024 -buff_size 4194304 \
        -trace_stat -stf "$tag.stat$k.csv" -fd 1 \
        -trace_err -error_file "$tag.err$k" >"$tag.out$k" 2>&1 </dev/null &
      pids+=($!)
      BG_PIDS+=($!)
    done
    for k in "${pids[@]}"; do wait "$k" || true; done
  }
  alive "$SERVER_PID" || die "$srv is not running"
  c0=$(cpu_ticks_tree "$SERVER_PID")
  m0=$(machine_ticks)
  t0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  { time run_gens; } 2>"$tag.time"
  t1=$(date +%s.%N)
  c1=$(cpu_ticks_tree "$SERVER_PID")
  m1=$(machine_ticks)
  BG_PIDS=()
  read -r su ss <"$tag.time" || true
  for ((k = 0; k < NGEN; k++)); do
    [ -s "$tag.stat$k.csv" ] || die "no sipp statistics: $(tail -3 "$tag.out$k")"
    o=$(sipp_stat "$tag.stat$k.csv" 'SuccessfulCall(C)')
    ok=$((ok + o))
    fail=$((fail + $(sipp_stat "$tag.stat$k.csv" 'FailedCall(C)')))
    retr=$((retr + $(sipp_stat "$tag.stat$k.csv" 'Retransmissions(C)')))
    e=$(sipp_elapsed "$tag.stat$k.csv")
    el=$(echo "if ($e > $el) $e else $el" | bc -l)
    rtw=$(echo "$rtw + $(sipp_secs "$tag.stat$k.csv" 'ResponseTimereg(C)') * $o" | bc -l)
    # 503 answers (e.g. a full transaction table) that aborted registrations
    [ -f "$tag.err$k" ] && n503=$((n503 + $(grep -c "Aborting call on unexpected message.*received 'SIP/2.0 503" "$tag.err$k" || true)))
  done
  local wall srv_s srv_us sipp_s sipp_us srv_pct sipp_pct other_pct achieved rt
  wall=$(echo "$t1 - $t0" | bc -l)
  srv_s=$(echo "($c1 - $c0) / $CLK_TCK" | bc -l)
  sipp_s=$(echo "${su:-0} + ${ss:-0}" | bc -l)
  srv_us=NA sipp_us=NA rt=NA achieved=0
  if [ "$ok" -gt 0 ]; then
    srv_us=$(printf '%.1f' "$(echo "$srv_s / $ok * 1000000" | bc -l)")
    sipp_us=$(printf '%.1f' "$(echo "$sipp_s / $ok * 1000000" | bc -l)")
    rt=$(printf '%.2f' "$(echo "$rtw / $ok * 1000" | bc -l)")
  fi
  # achieved rate: successful registrations over sipp's own elapsed time
  [ "$(echo "$el > 0" | bc)" = 1 ] && achieved=$(printf '%.0f' "$(echo "$ok / $el" | bc -l)")
  srv_pct=$(printf '%.0f' "$(echo "$srv_s / $wall * 100" | bc -l)")
  sipp_pct=$(printf '%.0f' "$(echo "$sipp_s / $wall * 100" | bc -l)")
  other_pct=$(printf '%.0f' "$(echo "(($m1 - $m0) / $CLK_TCK - $srv_s - $sipp_s) / $wall * 100" | bc -l)")
  STEP_OK=0
  if [ "$fail" = 0 ] && [ "$retr" = 0 ] && [ "$ok" = "$count" ] &&
    [ "$(echo "$achieved >= 0.95 * $rate" | bc)" = 1 ]; then STEP_OK=1; fi
  S_OK=$ok S_FAIL=$fail S_RETR=$retr S_503=$n503 S_SRV_S=$srv_s S_SIPP_S=$sipp_s
  STEP_LINE="$kind server=$srv rate=$rate count=$count ok=$ok fail=$fail retrans=$retr aborted_by_503=$n503 achieved_per_s=$achieved"
  STEP_LINE+=" avg_rt_ms=$rt server_cpu_s=$(printf '%.2f' "$srv_s") server_us_per_reg=$srv_us server_cpu_pct=$srv_pct"
  STEP_LINE+=" sipp_us_per_reg=$sipp_us sipp_cpu_pct=$sipp_pct other_cpu_pct=$other_pct wall_s=$(printf '%.1f' "$wall")"
  STEP_LINE+=" sustained=$([ $STEP_OK = 1 ] && echo yes || echo no)"
  echo "$STEP_LINE" >>"$RAW"
  log "  $STEP_LINE"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }


start_server() { # SERVER: (re)start it, wait until it listens, register every user once
  stop_server
  "start_$1"
  VERSION[$1]=$SERVER_VERSION
  run_step warmup "$1" 2000 $((USER_LAST - USER_FIRST + 1)) >/dev/null
  [ "$S_OK" -gt 0 ] || die "$1: warm-up registered nobody (see $WORK, run with -k)"
  sleep 0.5
}
stop_server() {
  local i
  [ -n "$SERVER_PID" ] || return 0
  stop_pid "$SERVER_PID" 10
  SERVER_PID=""
  for ((i = 0; i < 50; i++)); do # the next server binds the same port
    [ -z "$(nsx ss -Hlun "sport = :$PORT" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  die "udp port $PORT still bound after the server stopped"
}
round2() { # round down to 2 significant digits (bisection steps)
  local v=$1 m=1
  while [ "$v" -ge 100 ]; do v=$((v / 10)); m=$((m * 10)); done
  echo $((v * m))
}

# ------------------------------------------------------------------ run
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$WORK/register-smoke.txt}
else
  mkdir -p "$HERE/results"
  OUT=${OUT:-$HERE/results/register-$(date +%Y%m%d-%H%M%S).txt}
fi
RAW=$WORK/steps.txt
: >"$RAW"
case " $SERVERS " in *" palisade "*) provision_palisade ;; esac
provision_kamailio
declare -A VERSION MAXR MAXLINE CPU_OK CPU_FAIL CPU_RETR CPU_503 CPU_SRV CPU_SIPP
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)

# (1) CPU per registration at fixed rates. Servers interleaved per repetition
# (similar machine conditions), each measured step on a freshly started and
# warmed-up server, at most CAP registrations (see -c).
declare -A IDLE
for srv in $SERVERS; do # CPU of an idle server (timers, housekeeping), after the warm-up
  start_server "$srv"
  i0=$(cpu_ticks_tree "$SERVER_PID")
  sleep "$IDLE_S"
  i1=$(cpu_ticks_tree "$SERVER_PID")
  IDLE[$srv]=$(printf '%.1f' "$(echo "($i1 - $i0) / $CLK_TCK / $IDLE_S * 100" | bc -l)")
  log "  $srv idle: ${IDLE[$srv]} % of a core"
done
log "== CPU per registration at fixed rates ($REPS repetitions; load average $LOAD_START)"
for rate in "${FIXED_RATES[@]}"; do
  count=$((rate * STEP_S))
  [ "$CAP" -gt 0 ] && [ "$count" -gt "$CAP" ] && count=$CAP
  for ((rep = 1; rep <= REPS; rep++)); do
    for srv in $SERVERS; do
      start_server "$srv"
      run_step cpu "$srv" "$rate" "$count"
      CPU_OK[$srv,$rate]=$((${CPU_OK[$srv,$rate]:-0} + S_OK))
      CPU_FAIL[$srv,$rate]=$((${CPU_FAIL[$srv,$rate]:-0} + S_FAIL))
      CPU_RETR[$srv,$rate]=$((${CPU_RETR[$srv,$rate]:-0} + S_RETR))
      CPU_503[$srv,$rate]=$((${CPU_503[$srv,$rate]:-0} + S_503))
      CPU_SRV[$srv,$rate]=$(echo "${CPU_SRV[$srv,$rate]:-0} + $S_SRV_S" | bc -l)
      CPU_SIPP[$srv,$rate]=$(echo "${CPU_SIPP[$srv,$rate]:-0} + $S_SIPP_S" | bc -l)
    done
  done
done
stop_server

# (2) highest sustained rate, each server in turn: uncapped STEP_S steps on a
# fresh server (ramp, then bisection), then a LONG_S step at the best rate to
# make sure state that outlives a registration (transactions, 32 s on UDP)
# does not pile up; if that fails, 80 % of min(offered, achieved), at most twice more.
ALL_RATES=$(printf '%s\n' "${FIXED_RATES[@]}" "${RAMP_RATES[@]}" | sort -n -u | tr '\n' ' ')
for srv in $SERVERS; do
  log "== $srv: highest sustained rate (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  good=0 bad=0
  for rate in $ALL_RATES; do
    start_server "$srv"
    run_step ramp "$srv" "$rate" $((rate * STEP_S))
    if [ "$STEP_OK" = 1 ]; then good=$rate; MAXLINE[$srv]=$STEP_LINE; else bad=$rate; break; fi
  done
  if [ "$bad" -gt 0 ]; then
    for _ in 1 2 3; do
      mid=$(round2 $(((good + bad) / 2)))
      if [ "$mid" -le "$good" ] || [ "$mid" -ge "$bad" ]; then break; fi
      start_server "$srv"
      run_step ramp "$srv" "$mid" $((mid * STEP_S))
      if [ "$STEP_OK" = 1 ]; then good=$mid; MAXLINE[$srv]=$STEP_LINE; else bad=$mid; fi
    done
  fi
  short_good=$good
  long=0
  if [ "$LONG_S" -gt 0 ] && [ "$good" -gt 0 ]; then
    r=$good
    for _ in 1 2 3; do
      start_server "$srv"
      run_step long "$srv" "$r" $((r * LONG_S))
      if [ "$STEP_OK" = 1 ]; then long=$r; MAXLINE[$srv]=$STEP_LINE; break; fi
      # next: 80 % of the offered or of the achieved rate, whichever is lower
      a=$(field "$STEP_LINE" achieved_per_s)
      [ "${a:-0}" -lt "$r" ] && r=$a
      r=$(round2 $((r * 8 / 10)))
      [ "$r" -ge 10 ] || break
    done
    good=$long
  fi
  MAXR[$srv]="$good reg/s over ${LONG_S} s (${STEP_S} s steps: $short_good reg/s sustained, $([ "$bad" = 0 ] && echo "no failing rate up to the last tried" || echo "first failing $bad reg/s"))"
  stop_server
done
T_END=$(date +%s)

# ------------------------------------------------------------------ report
us_per() { # CPU_SECONDS OK
  if [ "$2" -gt 0 ]; then printf '%.1f' "$(echo "$1 / $2 * 1000000" | bc -l)"; else echo NA; fi
}
{
  echo "# Authenticated REGISTER: Palisade vs Kamailio — $(date -Is)"
  echo "# machine: $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r); run took $((T_END - T_START)) s"
  echo "# sipp $(sipp -v 2>&1 | awk '/SIPp v/{print $2}' | sed 's/[.]$//'), $NGEN generator(s), UDP, $((USER_LAST - USER_FIRST + 1)) users ($USER_FIRST..$USER_LAST) on $NADDR source addresses, MD5 qop=auth"
  for srv in $SERVERS; do echo "# $srv ${VERSION[$srv]:-?}"; done
  echo "# load average: start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# command: benches/register/run.sh $*"
  echo
  echo "## server CPU per successful registration, µs (utime+stime of the whole server; $REPS x min(rate x $STEP_S s, $([ "$CAP" -gt 0 ] && echo "$CAP" || echo "no cap")) registrations per rate, fresh server each)"
  printf '%-7s' rate/s
  for srv in $SERVERS; do printf ' | %-11s %-26s %-8s' "$srv" "ok/fail/retrans/503" "sipp"; done
  [ "$SERVERS" = "palisade kamailio" ] && printf ' | %s' "palisade/kamailio"
  echo
  for rate in "${FIXED_RATES[@]}"; do
    printf '%-7s' "$rate"
    for srv in $SERVERS; do
      printf ' | %-11s %-26s %-8s' "$(us_per "${CPU_SRV[$srv,$rate]}" "${CPU_OK[$srv,$rate]}")" \
        "${CPU_OK[$srv,$rate]}/${CPU_FAIL[$srv,$rate]}/${CPU_RETR[$srv,$rate]}/${CPU_503[$srv,$rate]}" \
        "$(us_per "${CPU_SIPP[$srv,$rate]}" "${CPU_OK[$srv,$rate]}")"
    done
    if [ "$SERVERS" = "palisade kamailio" ]; then
      p=$(us_per "${CPU_SRV[palisade,$rate]}" "${CPU_OK[palisade,$rate]}")
      k=$(us_per "${CPU_SRV[kamailio,$rate]}" "${CPU_OK[kamailio,$rate]}")
      if [ "$p" != NA ] && [ "$k" != NA ]; then printf ' | %.2f' "$(echo "$p / $k" | bc -l)"; else printf ' | NA'; fi
    fi
    echo
  done
  echo
  echo "## idle server CPU over $IDLE_S s (after the warm-up), % of one core"
  for srv in $SERVERS; do echo "$srv: ${IDLE[$srv]} %"; done
  echo
  echo "## highest rate with 0 failed, 0 retransmissions, >= 95 % of the offered rate achieved"
  for srv in $SERVERS; do
    echo "$srv: ${MAXR[$srv]}"
    [ -n "${MAXLINE[$srv]:-}" ] && echo "  best step: ${MAXLINE[$srv]}"
  done
  echo
  echo "## every step (warm-ups after each server start not listed)"
  grep -v '^warmup ' "$RAW"
} | tee "$OUT"
log "written $OUT"
if [ "$SMOKE" = 1 ]; then
  r=${FIXED_RATES[0]}
  if [ "${CPU_OK[palisade,$r]}" = $((r * STEP_S)) ] && [ "${CPU_FAIL[palisade,$r]}" = 0 ]; then
    log "smoke ok: registrations at $r/s: ${CPU_OK[palisade,$r]} of $((r * STEP_S))"
  else
    log "SMOKE FAILED: registrations at $r/s: ${CPU_OK[palisade,$r]} of $((r * STEP_S)), ${CPU_FAIL[palisade,$r]} failed (rerun with -k)"
    exit 1
  fi
fi
