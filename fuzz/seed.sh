#!/usr/bin/env bash
# Seeds the parse_message corpus: the RFC 4475 torture messages (when ../shared/rfc4475 is beside the repo)
# plus the handwritten messages in fuzz/seeds/. Safe to run repeatedly; files are named by content hash.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="$here/corpus/parse_message"
mkdir -p "$corpus"
n=0
add() {
    local f="$1"
    cp "$f" "$corpus/$(sha1sum "$f" | cut -c1-40)"
    n=$((n + 1))
}
# shared/ lies beside the repository (../shared from the repo root); RFC4475_DIR overrides.
rfc="${RFC4475_DIR:-$here/../../shared/rfc4475}"
if compgen -G "$rfc/*.dat" > /dev/null; then
    for f in "$rfc"/*.dat; do add "$f"; done
else
    echo "seed.sh: $rfc not found; using only fuzz/seeds" >&2
fi
for f in "$here"/seeds/*; do
    [ -f "$f" ] && add "$f"
done
echo "seed.sh: $n seed files in $corpus ($(find "$corpus" -type f | wc -l) in the corpus)"
