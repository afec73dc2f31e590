#!/usr/bin/env bash
# The project's test command: everything CI checks, in order, stopping at the first failure.
#
#   scripts/test.sh
#
# Steps: system packages (scripts/install-deps.sh), shellcheck of the project's scripts,
# cargo fmt --check, cargo clippy -D warnings, cargo test (the store's also on PostgreSQL), smoke runs of the benchmarks
# (scripts/bench-smoke.sh: tiny counts, about 30 s), then the end-to-end suite
# (tests/e2e/run.sh: the real binary driven by sipp, sipsak, openssl and baresip over loopback).
# Works unattended (CI=true, no stdin). Last line: "e2e: N passed, M failed".
# SKIP_DEPS=1 skips the package check (for machines where packages are managed by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step_name=
started=$SECONDS
step() { # name, command...
  step_name=$1
  shift
  local t0=$SECONDS
  echo "==> $step_name"
  "$@" </dev/null
  echo "==> $step_name: ok ($((SECONDS - t0))s)"
}
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "$step_name" ]; then
    echo "test.sh: FAILED at step '$step_name' (exit $rc, after $((SECONDS - started))s)" >&2
  fi
}
trap on_exit EXIT

command -v cargo >/dev/null 2>&1 || {
  echo "test.sh: cargo not found (install Rust with rustup, or source ~/.cargo/env)" >&2
  exit 1
}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  step "install-deps" scripts/install-deps.sh
fi
if command -v shellcheck >/dev/null 2>&1; then
  step "shellcheck" shellcheck -x .ci/run scripts/*.sh tests/e2e/*.sh packaging/*.sh packaging/debian/postinst \
    packaging/debian/prerm packaging/debian/postrm benches/*/*.sh
fi
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo test --workspace
# The store's tests again on a throwaway PostgreSQL (docs/cluster.md); REQUIRED turns a skip into a failure.
step "store on PostgreSQL" scripts/pg-test-server.sh env PALISADE_TEST_POSTGRES_REQUIRED=1 cargo test -p palisade-store
step "bench smoke" scripts/bench-smoke.sh
# The e2e runner's summary ("e2e: N passed, M failed") is the last line of a successful run.
step_name="e2e"
echo "==> e2e (checks before it took $((SECONDS - started))s)"
tests/e2e/run.sh </dev/null
