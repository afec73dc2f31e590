#!/usr/bin/env bash
# e2e: alone (CPU-bound load: run with nothing beside it; see run.sh)
# 10,000 malformed UDP datagrams (mutate.py, fixed seed; plus the RFC 4475 torture messages
# when ../shared/rfc4475 exists beside the repo) at a bounded rate. Afterwards palisade must
# still run, never have panicked, answer OPTIONS with 200, and its memory must not have grown
# by more than 64 MiB.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 sipsak ss

COUNT=${FLOOD_COUNT:-10000}
RATE=${FLOOD_RATE:-4000}
torture=$REPO_ROOT/../shared/rfc4475

port=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port"
sipsak_options "$port" udp || fail "no 200 to OPTIONS before the flood"
rss() { awk '/^VmRSS:/{print $2}' "/proc/$PAL_PID/status"; }
rss0=$(rss)

timeout -k 2 120 python3 "$E2E_DIR/mutate.py" "$HOST:$port" --count "$COUNT" --rate "$RATE" \
  --seed 4475 --torture-dir "$torture" >"$E2E_TMP/mutate.out" 2>&1 || {
  show "$E2E_TMP/mutate.out"
  fail "mutate.py failed"
}
log "$(cat "$E2E_TMP/mutate.out")"

alive "$PAL_PID" || {
  show "$PAL_ERR" 40
  fail "palisade died during the malformed flood"
}
no_panic
# the socket may still hold queued garbage: give the answer a few tries
got=0
for _ in 1 2 3; do
  if sipsak_options "$port" udp; then
    got=1
    break
  fi
  sleep 1
done
[ "$got" = 1 ] || fail "palisade no longer answers OPTIONS with 200 after the flood"
rss1=$(rss)
log "RSS before ${rss0} KiB, after ${rss1} KiB"
[ $((rss1 - rss0)) -le 65536 ] || fail "RSS grew by $(((rss1 - rss0) / 1024)) MiB during the flood"
ok "survived $COUNT malformed datagrams, still answers OPTIONS with 200"
no_panic
pal_stop
