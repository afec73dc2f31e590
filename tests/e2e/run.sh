#!/usr/bin/env bash
# End-to-end suite: build palisade, then run every tests/e2e/test_*.sh against the real binary.
#
#   tests/e2e/run.sh [NAME...]     # NAME: test file names or substrings (default: all)
#
# Environment:
#   E2E_PROFILE=debug|release   which build to test (default debug: it shares the build of `cargo test`)
#   PALISADE_BIN=PATH           test this binary instead (no build)
#   E2E_TIMEOUT=SECONDS         per-test limit (default 120); the whole process group is killed after it
#   E2E_KEEP=1                  keep each test's scratch directory
#   E2E_JOBS=N                  tests run at once (default 2 as root where network namespaces work, else 1)
# Each test runs in its own process group, so whatever it leaves behind is ended with it.
#
# Lanes: with E2E_JOBS=N, lane 0 runs tests in this network namespace and lanes 1..N-1 each in a network namespace
# of their own (palisade-e2e-laneK, only a loopback). Tests hard-code ports and capture on `lo`; a loopback per
# lane keeps two tests from ever seeing each other's ports or packets, with no change to the tests. Most tests
# wait on phones and timers, so two lanes roughly halve the suite on two cores. A test marked with the line
# `# e2e: alone` (CPU-bound load and flood tests, whose figures or timing would disturb a neighbour) runs after the
# lanes drain, with nothing beside it.
# Exit status 0 only when no test failed. Last line: "e2e: N passed, M failed[, K skipped]".
set -euo pipefail
cd "$(dirname "$0")/../.."
E2E_DIR=tests/e2e
PROFILE=${E2E_PROFILE:-debug}
TIMEOUT=${E2E_TIMEOUT:-120}

if [ -z "${PALISADE_BIN:-}" ]; then
  flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  echo "e2e: building palisade ($PROFILE)"
  cargo build -q "${flag[@]}" -p palisade || {
    echo "e2e: cargo build -p palisade failed"
    echo "e2e: 0 passed, 1 failed"
    exit 1
  }
  PALISADE_BIN=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE/palisade
fi
export PALISADE_BIN
[ -x "$PALISADE_BIN" ] || {
  echo "e2e: no binary at $PALISADE_BIN"
  exit 1
}

tests=()
for t in "$E2E_DIR"/test_*.sh; do
  if [ $# -eq 0 ]; then
    tests+=("$t")
  else
    for want in "$@"; do
      case $t in *"$want"*) tests+=("$t") && break ;; esac
    done
  fi
done
[ ${#tests[@]} -gt 0 ] || {
  echo "e2e: no test matches: $*"
  exit 1
}

logdir=$(mktemp -d "${TMPDIR:-/tmp}/palisade-e2e-logs.XXXXXX")
passed=0 failed=0 skipped=0 failed_names=()

# ------------------------------------------------------------------ lanes
lane_ns() { echo "palisade-e2e-lane$1"; }
lanes_down() {
  local k
  for ((k = 1; k < ${JOBS:-1}; k++)); do ip netns del "$(lane_ns "$k")" 2>/dev/null || true; done
}
lanes_up() { # JOBS -> JOBS (lowered to 1 when namespaces cannot be made)
  local k ns
  for ((k = 1; k < JOBS; k++)); do
    ns=$(lane_ns "$k")
    ip netns del "$ns" 2>/dev/null || true
    if ! { ip netns add "$ns" && ip -n "$ns" link set lo up; } 2>/dev/null; then
      echo "e2e: cannot make network namespace $ns; running one test at a time"
      lanes_down
      JOBS=1
      return
    fi
  done
}
if [ -n "${E2E_JOBS:-}" ]; then
  JOBS=$E2E_JOBS
elif [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
  JOBS=2
else
  JOBS=1
fi
[ "$JOBS" -ge 1 ] 2>/dev/null || JOBS=1
[ ${#tests[@]} -gt 1 ] || JOBS=1
[ "$JOBS" = 1 ] || lanes_up
trap lanes_down EXIT

lane_tests=() alone_tests=()
for t in "${tests[@]}"; do
  if grep -q '^# e2e: alone' "$t"; then alone_tests+=("$t"); else lane_tests+=("$t"); fi
done
echo "e2e: ${#tests[@]} tests against $PALISADE_BIN (timeout ${TIMEOUT}s each, $JOBS at once, logs in $logdir)"

# Run one test in a new session (its own process group, whose id is the test's PID), in lane LANE's namespace;
# on timeout end that group: TERM, then KILL.
run_one() { # script logfile lane -> exit status (124 on timeout)
  local script=$1 logf=$2 lane=$3 pid rc=0 start
  if [ "$lane" = 0 ]; then
    E2E_LANE=0 setsid bash "$script" >"$logf" 2>&1 </dev/null &
  else
    # ip netns exec and setsid both exec: the PID stays the test's
    E2E_LANE=$lane setsid ip netns exec "$(lane_ns "$lane")" bash "$script" >"$logf" 2>&1 </dev/null &
  fi
  pid=$!
  start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      sleep 3
      kill -KILL -- "-$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 124
    fi
    sleep 0.2
  done
  wait "$pid" || rc=$?
  # anything the test left running in its group goes with it
  kill -KILL -- "-$pid" 2>/dev/null || true
  return "$rc"
}

# Print a finished test's verdict (in one write, so lanes do not interleave) and count it.
report() { # name rc seconds
  local name=$1 rc=$2 dt=$3 logf=$logdir/$1.log out
  case $rc in
    0)
      passed=$((passed + 1))
      out="PASS $name (${dt}s)"$'\n'$(grep -h ' ok: ' "$logf" | sed 's/^/    /' || true)
      ;;
    77)
      skipped=$((skipped + 1))
      out="SKIP $name ($(grep -h 'SKIP: ' "$logf" | tail -1 | sed 's/.*SKIP: //'))"
      ;;
    *)
      failed=$((failed + 1))
      failed_names+=("$name")
      if [ "$rc" = 124 ]; then out="FAIL $name (timed out after ${TIMEOUT}s)"; else out="FAIL $name (exit $rc, ${dt}s)"; fi
      out+=$'\n'$(sed 's/^/    /' "$logf")
      ;;
  esac
  printf '%s\n' "$out"
}

# Lanes take the next test as they free up; each test's exit status lands in LOG.rc.
lane_pid=() lane_name=() lane_t0=()
start_in_lane() { # lane script
  local lane=$1 name
  name=$(basename "$2" .sh)
  rm -f "$logdir/$name.rc"
  (
    rc=0
    run_one "$2" "$logdir/$name.log" "$lane" || rc=$?
    echo "$rc" >"$logdir/$name.rc"
  ) &
  lane_pid[lane]=$!
  lane_name[lane]=$name
  lane_t0[lane]=$SECONDS
}
reap_lanes() { # report the lanes whose test ended; sets busy (lanes still running)
  local k
  busy=0
  for ((k = 0; k < JOBS; k++)); do
    [ -n "${lane_pid[k]:-}" ] || continue
    if kill -0 "${lane_pid[k]}" 2>/dev/null; then
      busy=$((busy + 1))
      continue
    fi
    wait "${lane_pid[k]}" 2>/dev/null || true
    report "${lane_name[k]}" "$(cat "$logdir/${lane_name[k]}.rc" 2>/dev/null || echo 1)" $((SECONDS - lane_t0[k]))
    lane_pid[k]=
  done
}
next=0 busy=0
while :; do
  reap_lanes
  for ((k = 0; k < JOBS && next < ${#lane_tests[@]}; k++)); do
    if [ -z "${lane_pid[k]:-}" ]; then
      start_in_lane "$k" "${lane_tests[next]}"
      next=$((next + 1))
      busy=$((busy + 1))
    fi
  done
  [ "$next" -lt ${#lane_tests[@]} ] || [ "$busy" != 0 ] || break
  sleep 0.2
done
for t in "${alone_tests[@]}"; do
  start_in_lane 0 "$t"
  wait "${lane_pid[0]}" 2>/dev/null || true
  reap_lanes
done

[ "$failed" = 0 ] || echo "e2e: failed: ${failed_names[*]} (logs in $logdir)"
[ "$failed" != 0 ] || rm -rf "$logdir"
summary="e2e: $passed passed, $failed failed"
[ "$skipped" = 0 ] || summary+=", $skipped skipped"
echo "$summary"
[ "$failed" = 0 ]
