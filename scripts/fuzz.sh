#!/usr/bin/env bash
# Fuzzes for SECONDS (default 60) with cargo-fuzz / libFuzzer: the SIP message parser (target parse_message,
# the default) or the whole service (target service: scripts of phone, attacker and clock operations driving
# Endpoint::handle_inbound, see crates/pbx/src/endpoint/harness.rs).
#
#   scripts/fuzz.sh [SECONDS] [parse_message|service]
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, coverage instrumentation); the project's
# toolchain is stable, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. Crashes land in
# fuzz/artifacts/TARGET/; minimise one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin TARGET fuzz/artifacts/TARGET/crash-…
# and commit the result under fuzz/seeds/ (fuzz/seeds/service/ for the service target) as a regression seed;
# the service seeds run in `cargo test` (endpoint::harness::tests::seeds_run_clean in palisade-pbx).
set -euo pipefail
secs="${1:-60}"
target="${2:-parse_message}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

"$root/fuzz/seed.sh"
cd "$root/fuzz"
cargo fuzz run "$target" -- \
    -max_total_time="$secs" -rss_limit_mb=512 -max_len=70000 -print_final_stats=1
