#!/usr/bin/env bash
# Seeds the parse_message corpus (and the service target's, from fuzz/seeds/service): the RFC 4475 torture messages (when ../shared/rfc4475 is beside the repo)
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
# The whole-service target reads scripts, not messages: its seeds have a corpus of their own.
mkdir -p "$here/corpus/service"
for f in "$here"/seeds/service/*; do
    [ -f "$f" ] && cp "$f" "$here/corpus/service/$(sha1sum "$f" | cut -c1-40)"
done
echo "seed.sh: $n seed files in $corpus ($(find "$corpus" -type f | wc -l) in the corpus)"
