#!/usr/bin/env bash
# Fuzzes the SIP message parser for SECONDS (default 60) with cargo-fuzz / libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, coverage instrumentation); the project's
# toolchain is stable, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. Crashes land in
# fuzz/artifacts/parse_message/; minimise one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin parse_message fuzz/artifacts/parse_message/crash-…
# and commit the result under fuzz/seeds/ as a regression seed.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

"$root/fuzz/seed.sh"
cd "$root/fuzz"
cargo fuzz run parse_message -- \
    -max_total_time="$secs" -rss_limit_mb=512 -max_len=70000 -print_final_stats=1
