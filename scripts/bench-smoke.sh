#!/usr/bin/env bash
# Smoke runs of the whole-system benchmarks, so a bench that rots fails CI instead of the next measurement:
#
#   scripts/bench-smoke.sh            # as root (each bench runs in a private network namespace)
#
# Runs benches/{register,calls,relay,voicemail,guard,queue,conference,cluster}/run.sh -Z at once (each in its own namespace, on its own
# scratch directory): tiny counts through the same code as a real run, Palisade only, the debug binary built
# once here. Each bench exits 1 unless every registration, call, stream or message it tried succeeded; this
# script then prints that bench's log and fails. Takes about 30 s. Skipped (exit 0, with a message) where network
# namespaces cannot be made (not root); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BENCHES=(register calls relay voicemail guard queue conference cluster)
LIMIT_S=150

if [ "$(id -u)" != 0 ]; then
  echo "bench-smoke: SKIPPED: needs root for network namespaces"
  exit 0
fi
probe=benchsmoke$$
if ! ip netns add "$probe" 2>/dev/null; then
  echo "bench-smoke: SKIPPED: cannot create a network namespace (ip netns add)"
  exit 0
fi
ip netns del "$probe"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi
cargo build -q -p palisade
PALISADE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/palisade
export PALISADE_BIN

logs=$(mktemp -d /tmp/palisade-bench-smoke.XXXXXX)
trap 'rm -rf "$logs"' EXIT
declare -A PIDS
t0=$SECONDS
for b in "${BENCHES[@]}"; do
  timeout -k 5 "$LIMIT_S" "benches/$b/run.sh" -Z >"$logs/$b.log" 2>&1 </dev/null &
  PIDS[$b]=$!
done
failed=()
for b in "${BENCHES[@]}"; do
  if wait "${PIDS[$b]}"; then
    echo "bench-smoke: $b: $(grep -m1 'smoke ok' "$logs/$b.log" | sed 's/^\[[^]]*\] //')"
  else
    failed+=("$b")
    echo "bench-smoke: $b: FAILED; its log:" >&2
    tail -40 "$logs/$b.log" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench-smoke: FAILED: ${failed[*]} (run benches/<name>/run.sh -Z with KEEP=1 to keep its scratch directory)" >&2
  exit 1
fi
echo "bench-smoke: all ${#BENCHES[@]} benches ran ($((SECONDS - t0)) s)"
