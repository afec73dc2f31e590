# shellcheck shell=bash
# Shared helpers for the end-to-end tests. Every test sources it:
#   . "$(dirname "$0")/lib.sh"
#
# Rules every test follows:
#   * loopback only (127.0.0.0/8); ports come from free_port, inside E2E_PORT_MIN..E2E_PORT_MAX;
#   * every client command is bounded (a count and a `timeout`);
#   * every process a test starts is stopped by its PID (cleanup trap), and its scratch
#     directory is removed unless E2E_KEEP=1;
#   * a test exits 0 (pass), 1 (fail) or 77 (skipped: a tool cannot do what the test needs).
#
# Environment (set by run.sh; defaults let a test run on its own):
#   PALISADE_BIN   the binary under test (default: target/debug/palisade)
#   E2E_PORT_MIN/E2E_PORT_MAX   port range (default 25060..25199)
#   E2E_KEEP=1     keep the scratch directory (its path is printed)

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
PALISADE_BIN=${PALISADE_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/palisade}
E2E_PORT_MIN=${E2E_PORT_MIN:-25060}
E2E_PORT_MAX=${E2E_PORT_MAX:-25199}
E2E_READY_TIMEOUT=${E2E_READY_TIMEOUT:-20}
TEST_NAME=$(basename "$0" .sh)
HOST=127.0.0.1

E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/palisade-e2e.$TEST_NAME.XXXXXX")
E2E_PIDS=()

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$TEST_NAME" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
skip() {
  log "SKIP: $*"
  exit 77
}
ok() { log "ok: $*"; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || fail "missing tool '$c': run scripts/install-deps.sh"
  done
}

# Show the tail of a file (for failure diagnostics).
show() {
  local f=$1 n=${2:-20}
  [ -s "$f" ] || return 0
  log "--- last $n lines of $f"
  tail -n "$n" "$f" | tail -c 4000 | sed "s/^/    /" >&2
}

# ------------------------------------------------------------------ processes

# Is PID alive (not gone, not a zombie)?
alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Wait up to $2 seconds (decimals allowed) for PID $1 to exit. Returns 0 when it did.
wait_exit() {
  local pid=$1 ms i
  ms=$(awk -v s="$2" 'BEGIN{printf "%d", s * 1000}')
  for ((i = 0; i < ms / 20; i++)); do
    alive "$pid" || return 0
    sleep 0.02
  done
  ! alive "$pid"
}

# Stop a PID we started: TERM, then KILL after $2 seconds (default 5). Never fails.
stop_pid() {
  local pid=$1 t=${2:-5}
  [ -n "$pid" ] || return 0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$pid" "$t" || kill -KILL "$pid" 2>/dev/null || true
  return 0
}

# Start a background command, remember its PID for cleanup. PID in BG_PID.
# usage: spawn LOGFILE cmd args...
spawn() {
  local logf=$1
  shift
  "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  E2E_PIDS+=("$BG_PID")
}

e2e_cleanup() {
  local rc=$? p
  for p in "${E2E_PIDS[@]}"; do stop_pid "$p" 3; done
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    log "scratch directory kept: $E2E_TMP"
  else
    rm -rf "$E2E_TMP"
  fi
  return "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ------------------------------------------------------------------ ports

# Is PORT free for both TCP and UDP on this machine?
port_free() {
  [ -z "$(ss -Htuan "( sport = :$1 )" 2>/dev/null)" ]
}

# Print N (default 1) consecutive free ports in the test range (first one printed).
# Starts at a random point so successive tests and parallel runs rarely collide.
# Every port handed out is claimed for the rest of the test (E2E_TMP/ports.claimed): a port that is
# not bound yet (a peer started later, the media ports sipp binds from -mp) is never given out twice,
# so ask for every port a test uses here, in blocks as wide as what binds them (sipp -mp P binds P..P+3).
free_port() {
  local n=${1:-1} span=$((E2E_PORT_MAX - E2E_PORT_MIN + 1)) start i j p ok_ claimed=$E2E_TMP/ports.claimed
  touch "$claimed"
  start=$((RANDOM % span))
  for ((i = 0; i < span; i++)); do
    p=$((E2E_PORT_MIN + (start + i) % span))
    [ $((p + n - 1)) -le "$E2E_PORT_MAX" ] || continue
    ok_=1
    for ((j = 0; j < n; j++)); do
      if grep -qx "$((p + j))" "$claimed" || ! port_free $((p + j)); then
        ok_=0
        break
      fi
    done
    if [ "$ok_" = 1 ]; then
      for ((j = 0; j < n; j++)); do echo "$((p + j))" >>"$claimed"; done
      echo "$p"
      return 0
    fi
  done
  fail "no $n free consecutive port(s) in $E2E_PORT_MIN..$E2E_PORT_MAX"
}

# ------------------------------------------------------------------ palisade

# Start palisade serve and wait (bounded) for "palisade ready" on its stdout.
# usage: pal_start DATA_DIR [serve args...]   e.g. pal_start "$E2E_TMP/data" --listen udp:127.0.0.1:25060
# Sets PAL_PID, PAL_OUT (stdout file), PAL_ERR (stderr file). Fails the test if it dies or is not ready in time.
PAL_N=0
pal_start() {
  local data=$1 i
  shift
  [ -x "$PALISADE_BIN" ] || fail "binary not found: $PALISADE_BIN (build it: cargo build -p palisade)"
  PAL_N=$((PAL_N + 1))
  PAL_OUT=$E2E_TMP/palisade.$PAL_N.out
  PAL_ERR=$E2E_TMP/palisade.$PAL_N.err
  # The web console listens on 8443 by default; tests run side by side, so each serve gets a free port of the
  # suite's range unless the test chose one (PAL_ADMIN_PORT says which).
  local admin_args=()
  case " $* " in
  *" --admin-listen "*) ;;
  *)
    PAL_ADMIN_PORT=$(free_port)
    admin_args=(--admin-listen "$HOST:$PAL_ADMIN_PORT")
    ;;
  esac
  "$PALISADE_BIN" serve --data "$data" "${admin_args[@]}" "$@" >"$PAL_OUT" 2>"$PAL_ERR" </dev/null &
  PAL_PID=$!
  E2E_PIDS+=("$PAL_PID")
  for ((i = 0; i < E2E_READY_TIMEOUT * 10; i++)); do
    if grep -qx 'palisade ready' "$PAL_OUT" 2>/dev/null; then
      log "palisade pid=$PAL_PID ready ($*)"
      return 0
    fi
    if ! alive "$PAL_PID"; then
      local rc=0
      wait "$PAL_PID" || rc=$?
      show "$PAL_ERR" 30
      fail "palisade exited with status $rc before printing 'palisade ready' (serve $*)"
    fi
    sleep 0.1
  done
  show "$PAL_ERR" 30
  fail "palisade did not print 'palisade ready' within ${E2E_READY_TIMEOUT}s (serve $*)"
}

# Stop palisade with SIGTERM and check that it exits with status 0 within $2 s (default 5).
# usage: pal_stop [PID] [SECONDS]; prints the time it took, in ms, into PAL_STOP_MS.
pal_stop() {
  local pid=${1:-$PAL_PID} t=${2:-5} t0 t1 rc=0
  alive "$pid" || fail "palisade pid=$pid is not running when it should be stopped"
  t0=$(date +%s%N)
  kill -TERM "$pid"
  if ! wait_exit "$pid" "$t"; then
    kill -KILL "$pid" 2>/dev/null || true
    fail "palisade pid=$pid did not exit within ${t}s of SIGTERM"
  fi
  t1=$(date +%s%N)
  PAL_STOP_MS=$(((t1 - t0) / 1000000))
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || {
    show "$PAL_ERR" 30
    fail "palisade exited with status $rc after SIGTERM (expected 0)"
  }
  log "palisade pid=$pid stopped by SIGTERM in ${PAL_STOP_MS} ms, status 0"
}

# Fail when palisade's stderr shows a panic.
no_panic() {
  local f=${1:-$PAL_ERR}
  if grep -q 'panicked' "$f" 2>/dev/null; then
    show "$f" 40
    fail "palisade panicked (see $f)"
  fi
}

# ------------------------------------------------------------------ SIP clients

# One OPTIONS request with sipsak; passes when the final response is 200.
# usage: sipsak_options PORT [TRANSPORT(udp|tcp|tls)] [extra sipsak args...]
sipsak_options() {
  local port=$1 tp=${2:-udp} out lport
  shift 2 || shift $#
  out=$E2E_TMP/sipsak.$tp.$port.$RANDOM.out
  lport=$(free_port 1)
  local rc=0
  timeout -k 2 15 sipsak -vv -s "sip:ping@$HOST:$port" -E "$tp" -H "$HOST" -l "$lport" "$@" \
    >"$out" 2>&1 </dev/null || rc=$?
  if grep -q '^SIP/2.0 200' "$out" && [ "$rc" = 0 ]; then
    return 0
  fi
  show "$out" 25
  log "sipsak OPTIONS over $tp to port $port: exit $rc, no 200"
  return 1
}
