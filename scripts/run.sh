#!/usr/bin/env bash
# Build Palisade (release) and serve. First start creates the data directory
# ($PALISADE_DATA, else ./palisade-data) with a self-signed TLS certificate.
#
#   scripts/run.sh [serve options...]     e.g. scripts/run.sh --listen udp:0.0.0.0:5060
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi
cargo build --release -p palisade
exec "${CARGO_TARGET_DIR:-target}/release/palisade" serve "$@"
