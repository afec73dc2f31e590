# shellcheck shell=bash
# Shared helpers of the whole-system benchmarks benches/calls, benches/relay and benches/guard
# (the same approach as benches/register/run.sh: a private network namespace with only a loopback
# interface, servers and sipp started inside it and stopped by PID, CPU from /proc/PID/stat).
#
# A script sources it after setting HERE (its own directory) and BENCH (a short name), then calls
#   bench_init          root check, packages (PKGS), the release build, scratch dir, netns, cleanup trap
# and uses the helpers below. Environment: SHARED_DIR (default $REPO/../shared), PALISADE_BIN (a binary
# to use instead of building target/release/palisade), PALISADE_REV (the commit shown for it), KEEP=1
# (keep the scratch directory). (SC2034 is disabled: variables set here are used by the scripts.)
#
# Smoke mode (each script's -Z, which sets SMOKE=1): a few seconds of tiny counts through the same code, so CI
# notices when a bench breaks (scripts/bench-smoke.sh runs them all): Palisade only, nothing installed, the
# debug binary (built with `cargo build -p palisade` unless PALISADE_BIN is set), the results file in the
# scratch directory, and exit status 1 unless every step completed (smoke_check).

# shellcheck disable=SC2034 # set here, used by the scripts that source this file
{
REPO=$(cd "$HERE/../.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared}
KAM_CFG=$SHARED_DIR/peers/kamailio/kamailio.cfg
HOST=127.0.0.1 PORT=5070
KEEP=${KEEP:-0}
INSTALL=${INSTALL:-1}
SMOKE=${SMOKE:-0}
PKGS=(sip-tester kamailio bc jq iproute2 procps python3)
SERVER_PID="" SERVER_NAME="" BG_PIDS=()
CLK_TCK=$(getconf CLK_TCK)
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

install_packages() {
  local missing=() p tmp_policy=0 rc=0
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (run without INSTALL=0)"
  log "installing ${missing[*]}"
  # the kamailio package would start kamailio.service on 0.0.0.0:5060: forbid service starts
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install failed"
  if [ -d /run/systemd/system ]; then systemctl disable --now kamailio >/dev/null 2>&1 || true; fi
}

build_palisade() {
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
      (cd "$REPO" && cargo build --release -q -p palisade) || die "build failed"
      PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/palisade
    fi
  fi
  [ -x "$PALISADE_BIN" ] || die "no binary at $PALISADE_BIN"
  PAL_VERSION="$("$PALISADE_BIN" --version 2>/dev/null | awk '{print $2}') (${PALISADE_REV:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)})"
}

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
    alive "$pid" || {
      wait "$pid" 2>/dev/null || true
      return 0
    }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
bench_cleanup() {
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

# Whether this run starts Kamailio (SERVERS lists it): only then are its package, modules and config needed.
needs_kamailio() {
  case " ${SERVERS:-} " in *" kamailio "*) return 0 ;; esac
  return 1
}

bench_init() {
  local c m ifs cmds=(sipp bc jq ip ss ps timeout python3)
  [ "$(id -u)" = 0 ] || die "run as root (network namespace, packages)"
  [ "$SMOKE" = 1 ] && INSTALL=0
  if ! needs_kamailio; then
    local keep=() p
    for p in "${PKGS[@]}"; do [ "$p" = kamailio ] || keep+=("$p"); done
    PKGS=("${keep[@]}")
  fi
  install_packages
  needs_kamailio && cmds+=(kamailio)
  for c in "${cmds[@]}"; do
    command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"
  done
  if needs_kamailio; then
    KAM_MODDIR=$(dpkg -L kamailio 2>/dev/null || true)
    KAM_MODDIR=$(dirname "$(grep -m1 '/modules/tm\.so$' <<<"$KAM_MODDIR" || echo /x/tm.so)")
    for m in kex corex tm tmx sl rr pv maxfwd usrloc registrar textops siputils xlog sanity ctl auth pike htable nathelper; do
      [ -f "$KAM_MODDIR/$m.so" ] || die "kamailio module $m.so missing (in $KAM_MODDIR)"
    done
    [ -f "$KAM_CFG" ] || die "Kamailio reference config not found: $KAM_CFG (set SHARED_DIR=/path/to/shared)"
  fi
  build_palisade
  WORK=$(mktemp -d "/tmp/palisade-$BENCH.XXXXXX")
  NS=pal$BENCH$$
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns add "$NS" || die "cannot create network namespace $NS"
  ip netns exec "$NS" ip link set lo up
  ifs=$(ip netns exec "$NS" ip -o link show | awk -F': ' '{print $2}' | grep -vx lo || true)
  [ -z "$ifs" ] || die "netns $NS has non-loopback interfaces: $ifs"
}
nsx() { ip netns exec "$NS" "$@"; }
# start CMD inside the namespace in the background; PID of CMD itself in BG_PID
bg_start() {
  local logf=$1
  shift
  (exec ip netns exec "$NS" "$@") >"$logf" 2>&1 </dev/null &
  BG_PID=$!
}

# ------------------------------------------------------------------ CPU
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
# precise CPU time in ns of a process tree: sum of sum_exec_runtime of every thread (schedstat)
cpu_ns_tree() {
  local p
  for p in $1 $(descendants "$1"); do
    cat /proc/"$p"/task/*/schedstat 2>/dev/null || true
  done | awk '{s += $1} END {printf "%.0f\n", s}'
}
# ticks used by every process on the machine (live ones + reaped children)
machine_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^.*) //' |
    awk '{s += $12 + $13 + $14 + $15} END {print s + 0}'
}
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

# Smoke mode's verdict: exits 1 (loudly, with WHAT) unless OK equals EXPECTED and FAILED is 0.
smoke_check() { # WHAT OK EXPECTED FAILED
  if [ "$2" = "$3" ] && [ "$4" = 0 ]; then
    log "smoke ok: $1: $2 of $3"
  else
    log "SMOKE FAILED: $1: $2 of $3 completed, $4 failed (rerun with KEEP=1 and read the scratch directory)"
    exit 1
  fi
}

# ------------------------------------------------------------------ sipp statistics
sipp_stat() { # FILE COLUMN: the column of the last line of a sipp -trace_stat file
  awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"
}
sipp_elapsed() { # seconds from sipp's start to its last statistics line
  awk -F';' 'NR==1{next} {split($1, s, "\t"); split($2, c, "\t")} END{printf "%.3f", c[3] - s[3]}' "$1"
}
sipp_secs() { # FILE COLUMN: a sipp "HH:MM:SS:uuuuuu" or "HH:MM:SS" time column in seconds
  awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k}
    END{n=split(v,a,":"); s=a[1]*3600+a[2]*60+a[3]; if(n==4) s+=a[4]/1e6; printf "%.3f", s}' "$1"
}

# ------------------------------------------------------------------ servers
wait_listening() { # PID LOG
  local i
  for ((i = 0; i < 150; i++)); do
    alive "$1" || {
      tail -20 "$2" >&2
      die "server died at start (log $2)"
    }
    if [ -n "$(nsx ss -Hlun "sport = :$PORT" 2>/dev/null)" ]; then
      sleep 0.5
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$2" >&2
  die "server not listening on udp $HOST:$PORT after 15 s"
}
# provision extensions FIRST..LAST in DATA; "number;auth_id;password" lines on stdout
pal_provision() { # DATA FIRST LAST
  # number;auth_id;password (the voicemail PIN column, in builds that print one, is not used)
  "$PALISADE_BIN" ext add-range "$2" "$3" --data "$1" 2>/dev/null | grep -E '^[0-9]+,' | cut -d',' -f1-3 | tr ',' ';' ||
    die "palisade ext add-range $2 $3 failed"
}
start_palisade() { # DATA [extra serve args...]
  local data=$1
  shift
  bg_start "${PAL_LOG:-$WORK/palisade.log}" "$PALISADE_BIN" serve --data "$data" --listen "udp:$HOST:$PORT" "$@"
  SERVER_PID=$BG_PID SERVER_NAME=palisade
  wait_listening "$SERVER_PID" "$WORK/palisade.log"
}
# Kamailio 5.6 with the reference configuration; PIKE (default 65535, the "bench" profile; 30 = the
# reference config's "secure" profile)
start_kamailio() { # [PIKE_DENSITY]
  local args=(-f "$KAM_CFG" -DD -E -m 512 -M 16 -P "$WORK/kamailio.pid"
    -A WORKERS=2 -A "PIKE_DENSITY=${1:-65535}" -A "CTL_SOCK=\"unix:$WORK/kamailio_ctl\"")
  kamailio "${args[@]}" -c >"$WORK/kamailio-check.log" 2>&1 ||
    {
      tail -20 "$WORK/kamailio-check.log" >&2
      die "kamailio config check failed"
    }
  bg_start "$WORK/kamailio.log" kamailio "${args[@]}"
  SERVER_PID=$BG_PID SERVER_NAME=kamailio
  wait_listening "$SERVER_PID" "$WORK/kamailio.log"
  KAM_VERSION=$(kamailio -v 2>/dev/null | awk '/^version:/{print $3; exit}')
}
stop_server() {
  local i
  [ -n "$SERVER_PID" ] || return 0
  stop_pid "$SERVER_PID" 10
  SERVER_PID="" SERVER_NAME=""
  for ((i = 0; i < 50; i++)); do # the next server binds the same port
    [ -z "$(nsx ss -Hlun "sport = :$PORT" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  die "udp port $PORT still bound after the server stopped"
}
machine_line() {
  echo "$(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
}
# FILE RTD: percentiles from sipp's ResponseTimeRepartition<RTD> buckets (last line of -trace_stat),
# as the bucket bounds, e.g. "p50<1 p95<5 p99<20" (ms; ">=1000" for the last bucket)
sipp_rt_pct() {
  awk -F';' -v p="ResponseTimeRepartition$2_" '
    NR==1 { for (i = 1; i <= NF; i++) if (index($i, p) == 1) { k[++n] = i; b[n] = substr($i, length(p) + 1) } next }
    { for (j = 1; j <= n; j++) v[j] = $(k[j]) }
    END {
      for (j = 1; j <= n; j++) t += v[j]
      if (t == 0) { print "NA"; exit }
      split("50 95 99", q, " ")
      for (m = 1; m <= 3; m++) {
        c = 0
        for (j = 1; j <= n; j++) { c += v[j]; if (c >= t * q[m] / 100) break }
        printf "%sp%s%s", (m > 1 ? " " : ""), q[m], b[j]
      }
      print ""
    }' "$1"
}
