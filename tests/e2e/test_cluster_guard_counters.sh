#!/usr/bin/env bash
# Summed ban counters (issue 17, docs/cluster.md): two `palisade serve` nodes on one throwaway PostgreSQL, with
# auth_failures_before_ban 6. Wrong-password REGISTERs (guard_client.py: REGISTER, 401, REGISTER with a wrong
# digest) alternate between node 1 and node 2 from 127.0.0.41, one every 0.6 s (slower than the two 250 ms
# counter flushes, so the tolerance is zero: see docs/cluster.md):
#   * after 5 guesses (3 at node 1, 2 at node 2) both nodes still answer: not banned early;
#   * the 6th guess (at node 2) is answered, then both nodes drop 127.0.0.41: banned at exactly the configured
#     total, although no node saw more than 3 guesses (without summing, 6 per node = 12 would pass);
#   * the ban is one automatic auth_failures row, and the counters are spent (no guard_counts rows left for it);
#   * another source (127.0.0.42) guessing 5 times at node 1 only is not banned: counts are per source.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26200} E2E_PORT_MAX=${E2E_PORT_MAX:-26399}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
need python3 ss psql jq
trap 'e2e_cleanup; pg_stop' EXIT

N1=127.0.0.21 N2=127.0.0.22 SRC=127.0.0.41 OTHER=127.0.0.42 LIMIT=6
pg_start "$(free_port)" || fail "could not start PostgreSQL (see above)"
pal() { "$PALISADE_BIN" "$@" --data "$E2E_TMP/cli" --database "$PG_URL"; }
pal security set auth_failures_before_ban "$LIMIT" >/dev/null || fail "security set auth_failures_before_ban"
pal ext add 100 --json >"$E2E_TMP/ext-100.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")

port=$(free_port)
rtp_range() { # an even RTP port and its RTCP port, free
  local p
  p=$(free_port 3)
  p=$(((p + 1) / 2 * 2))
  echo "$p-$((p + 1))"
}
pal_start "$E2E_TMP/data1" --database "$PG_URL" --listen "udp:$N1:$port" --rtp-ports "$(rtp_range)"
PID1=$PAL_PID ERR1=$PAL_ERR
pal_start "$E2E_TMP/data2" --database "$PG_URL" --listen "udp:$N2:$port" --rtp-ports "$(rtp_range)"
PID2=$PAL_PID ERR2=$PAL_ERR

probe() { # NODE SRC -> answered|silent
  local r
  r=$(timeout -k 1 5 python3 "$E2E_DIR/guard_client.py" "$1:$port" "$2" probe --timeout 0.3 2>/dev/null || true)
  jq -r .result <<<"$r" 2>/dev/null | grep -qx answered && echo answered || echo silent
}
guess() { # NODE SRC -> the final answer's code to a wrong password, or "none"
  local r
  r=$(timeout -k 1 10 python3 "$E2E_DIR/guard_client.py" "$1:$port" "$2" auth 1 100 "$authid" wrong-password \
    --timeout 1 2>/dev/null || true)
  jq -r '.final // "none"' <<<"$r" 2>/dev/null || echo none
}

for ((i = 1; i <= LIMIT; i++)); do
  if ((i % 2)); then node=$N1; else node=$N2; fi
  code=$(guess "$node" "$SRC")
  [ "$code" != none ] || fail "guess $i at $node went unanswered: banned before the configured total ($LIMIT)"
  log "guess $i at $node: $code"
  if ((i == LIMIT - 1)); then
    sleep 0.6
    for n in "$N1" "$N2"; do
      [ "$(probe "$n" "$SRC")" = answered ] || fail "$n dropped $SRC after $i guesses (limit $LIMIT)"
    done
    ok "after $i guesses split over both nodes, both still answer"
  else
    sleep 0.6
  fi
done
for n in "$N2" "$N1"; do
  silent=''
  for ((k = 0; k < 5; k++)); do
    if [ "$(probe "$n" "$SRC")" = silent ]; then
      silent=1
      break
    fi
  done
  [ -n "$silent" ] || fail "$n still answers $SRC after $LIMIT guesses split over the two nodes"
done
ok "the ${LIMIT}th guess (3 per node) banned $SRC on both nodes: the counters are summed"
rule=$(psql -XAtq "$PG_URL" -c "SELECT origin || ' ' || reason FROM ip_rules WHERE net = '$SRC/32'")
[ "$rule" = "auto auth_failures" ] || fail "PostgreSQL holds '$rule' for $SRC, expected one automatic auth_failures ban"
sleep 0.6
left=$(psql -XAtq "$PG_URL" -c "SELECT count(*) FROM guard_counts WHERE source = '$SRC/32' AND kind = 'auth_failures'")
[ "$left" = 0 ] || fail "$left guard_counts rows left for $SRC after its ban (expected its counters spent)"
ok "one automatic ban row; the shared counters for $SRC are spent"

for ((i = 1; i < LIMIT; i++)); do
  code=$(guess "$N1" "$OTHER")
  [ "$code" != none ] || fail "guess $i from $OTHER went unanswered (it made fewer than $LIMIT)"
done
sleep 0.6
[ "$(probe "$N2" "$OTHER")" = answered ] || fail "$OTHER, with $((LIMIT - 1)) guesses, was banned"
ok "another source with $((LIMIT - 1)) guesses is not banned (counts are per source)"

{ alive "$PID1" && alive "$PID2"; } || fail "a node died"
no_panic "$ERR1"
no_panic "$ERR2"
pal_stop "$PID2"
pal_stop "$PID1"
