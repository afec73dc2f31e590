#!/usr/bin/env bash
# e2e: alone (CPU-bound load: run with nothing beside it; see run.sh)
# Provisioning URLs cannot be enumerated (issue 14). A scanner trying random tokens and MACs gets the same 404 for
# every one; each is a failure counted toward its address's console ban, and once banned its connection is
# closed and new ones are refused before TLS. With the default (5) the fifth miss bans; then 10,000 random
# tokens/MACs from ten addresses (1,000 each, with admin_failures_before_ban at its maximum, 1000): 10,000 404s,
# ten bans. A second device fetching a bound softphone token is refused the same way.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need curl python3

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "tls:$HOST:$sip"
port=$PAL_ADMIN_PORT
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# A bound token, fetched from another device (address), is refused like an unknown one.
pal ext add 301 >/dev/null
url=$(pal phone add --ext 301 --model linphone --host "$HOST:$port" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
get() { # SOURCE URL → status
  curl -s -k --interface "$1" -A "Linphone/5.1.65 (belle-sip/5.1.0)" -o "$E2E_TMP/got.$1" -w '%{http_code}' \
    --max-time 10 "$2" || echo curl-failed
}
st=$(get 127.0.0.1 "${url}linphone.xml")
[ "$st" = 200 ] || fail "the softphone's first fetch answered $st"
grep -q '"passwd"' "$E2E_TMP/got.127.0.0.1" || fail "the first fetch carries no password"
st=$(get 127.0.0.2 "${url}linphone.xml")
[ "$st" = 404 ] || fail "a second device (127.0.0.2) fetching the bound token got $st, not 404"
st=$(get 127.0.0.1 "${url}linphone.xml")
[ "$st" = 200 ] || fail "the bound device's own refetch answered $st"
if grep -q '"passwd"' "$E2E_TMP/got.127.0.0.1"; then fail "the refetch carries the password again"; fi
ok "a bound token: another device gets 404; the bound one its file without the password"

scan() { # SOURCE COUNT → JSON
  timeout -k 2 90 python3 "$E2E_DIR/prov_client.py" scan "$HOST" "$port" "$1" "$2" || echo '{"error": "scan failed"}'
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }

# Default: the fifth miss bans; the next request on the connection is refused and the connection closed.
r=$(scan 127.0.0.50 100)
[ "$(field not_found <<<"$r") $(field "then" <<<"$r") $(field reconnect <<<"$r")" = "5 403 refused" ] ||
  fail "default threshold: $r (expected 5 404s, then 403 and close, then refused)"
ok "default: 5 misses, ban, connection closed, new connections refused ($r)"

pal security set admin_failures_before_ban 1000 >/dev/null
sleep 2.5 # the server re-reads console settings every 2 s

t0=$(date +%s%N)
scanners=()
for i in $(seq 60 69); do
  scan "127.0.0.$i" 1100 >"$E2E_TMP/scan.$i" &
  scanners+=("$!")
done
wait "${scanners[@]}"
t1=$(date +%s%N)
total=0
for i in $(seq 60 69); do
  r=$(cat "$E2E_TMP/scan.$i")
  [ "$(field not_found <<<"$r") $(field bodies <<<"$r") $(field "then" <<<"$r") $(field reconnect <<<"$r")" = \
    "1000 1 403 refused" ] || fail "127.0.0.$i: $r (expected 1000 identical 404s, then 403, then refused)"
  total=$((total + $(field not_found <<<"$r")))
done
[ "$total" = 10000 ] || fail "$total 404s in all, expected 10000"
ok "10,000 random tokens/MACs from 10 addresses: 10,000 identical 404s, each address banned at its 1000th; $(((t1 - t0) / 1000000)) ms"

bans=$(pal admin bans --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$bans" -ge 11 ] || fail "expected 11 console bans, found $bans"
ok "the bans are console bans ($bans), listed by palisade admin bans"

no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
