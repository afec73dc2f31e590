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
# Each test runs in its own process group, so whatever it leaves behind is ended with it.
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
echo "e2e: ${#tests[@]} tests against $PALISADE_BIN (timeout ${TIMEOUT}s each, logs in $logdir)"

# Run one test in a new session (its own process group, whose id is the test's PID);
# on timeout end that group: TERM, then KILL.
run_one() { # script logfile -> exit status (124 on timeout)
  local script=$1 logf=$2 pid rc=0 start
  setsid bash "$script" >"$logf" 2>&1 </dev/null &
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

for t in "${tests[@]}"; do
  name=$(basename "$t" .sh)
  logf=$logdir/$name.log
  t0=$SECONDS
  rc=0
  run_one "$t" "$logf" || rc=$?
  dt=$((SECONDS - t0))
  case $rc in
    0)
      passed=$((passed + 1))
      echo "PASS $name (${dt}s)"
      grep -h ' ok: ' "$logf" | sed 's/^/    /' || true
      ;;
    77)
      skipped=$((skipped + 1))
      echo "SKIP $name ($(grep -h 'SKIP: ' "$logf" | tail -1 | sed 's/.*SKIP: //'))"
      ;;
    *)
      failed=$((failed + 1))
      failed_names+=("$name")
      [ "$rc" = 124 ] && echo "FAIL $name (timed out after ${TIMEOUT}s)" || echo "FAIL $name (exit $rc, ${dt}s)"
      sed 's/^/    /' "$logf"
      ;;
  esac
done

[ "$failed" = 0 ] || echo "e2e: failed: ${failed_names[*]} (logs in $logdir)"
[ "$failed" != 0 ] || rm -rf "$logdir"
summary="e2e: $passed passed, $failed failed"
[ "$skipped" = 0 ] || summary+=", $skipped skipped"
echo "$summary"
[ "$failed" = 0 ]
