#!/usr/bin/env bash
# Manual IP lists on a running server and across restarts (issue 5, "Show"); auth_failures_before_ban=3.
# Server 1:
#   - `blacklist add 127.0.0.4`: within 1.5 s 127.0.0.4 gets no answer (127.0.0.3 still does);
#   - `blacklist remove 127.0.0.4`: answered again within 1.5 s, an `unban` event;
#   - `blacklist add 127.0.0.4 --expires 2`: unanswered within 1.5 s, answered again 2-3.5 s after the add,
#     a `ban_expired` event;
#   - `whitelist add 127.0.0.5`: 10 wrong-password registrations from 127.0.0.5 do not ban it (no ban event),
#     while 3 from 127.0.0.2 do (the control);
#   - most specific prefix wins whatever the order: allow 127.0.0.6/32 then block 127.0.0.0/24 -> .6
#     answered, .7 not; block 127.0.0.9/32 then allow 127.0.0.8/29 -> .9 not answered, .8 answered;
#     removing the /24 block answers .7 again.
# Server 2 (fresh data directory): manual bans of 127.0.0.4 (no expiry) and 127.0.0.5 (--expires 8: time for the
#   checks on a loaded machine) and an automatic ban of 127.0.0.2 (3 failures) in force; stop; wait until
#   127.0.0.5's entry has expired; start on the same directory: 127.0.0.4 and 127.0.0.2 still get no answer,
#   127.0.0.5 is answered.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=28000 E2E_PORT_MAX=28199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq ss

client=$E2E_DIR/guard_client.py
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
gc() {
  local src=$1
  shift
  timeout -k 2 60 python3 "$client" "$HOST:$port" "$src" "$@"
}
answered() { gc "$1" probe --timeout "${2:-1}" >/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# until_state SRC answered|silent LIMIT_MS: poll (0.25 s probes, spaced 0.1 s: far below any flood limit)
# until SRC is in that state; prints the milliseconds from T0_MS to the sending of the first probe that
# found it (the probe's own clock reading, not slowed by the client's start-up); fails after LIMIT_MS
until_state() {
  local src=$1 want=$2 limit=$3 t res
  while :; do
    res=$(gc "$src" probe --timeout 0.25 || true)
    t=$(($(jq -r .sent_ms <<<"$res") - T0_MS))
    case $(jq -r .result <<<"$res") in
      answered) [ "$want" = answered ] && break ;;
      *) [ "$want" = silent ] && break ;;
    esac
    [ "$t" -le "$limit" ] || fail "$src not $want within $limit ms (last probe: $res)"
    sleep 0.1
  done
  echo "$t"
}
ev=$E2E_TMP/events.json
event_for() { # KIND SOURCE: wait (3 s) until such an event is in the DB
  local i
  for ((i = 0; i < 30; i++)); do
    pal events --json --limit 10000 >"$ev" || fail "palisade events"
    jq -e --arg k "$1" --arg s "$2" '[.[] | select(.kind == $k and .source == $s)] | length > 0' "$ev" >/dev/null && return 0
    sleep 0.1
  done
  jq -c '.[] | select(.kind != "auth_challenge")' "$ev" | head -20 | sed 's/^/    /' >&2
  fail "no $1 event for $2 within 3 s"
}
wrong() { # SRC N: N wrong-password registrations, each must be answered 401 then 401
  local got
  gc "$1" auth "$2" 100 "$authid" WrongPassw0rd >"$E2E_TMP/wrong-$1.jsonl" || fail "guard_client auth from $1"
  got=$(jq -s '[.[] | select(.challenge == 401 and .final == 401)] | length' "$E2E_TMP/wrong-$1.jsonl")
  [ "$got" = "$2" ] || fail "$1: $got of $2 wrong-password attempts answered 401/401: $(tr '\n' ' ' <"$E2E_TMP/wrong-$1.jsonl")"
}

pal ext add 100 --json >"$E2E_TMP/ext-100.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set auth_failures_before_ban 3"
port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"
for s in 2 3 4 5 6 7 8 9; do answered "127.0.0.$s" || fail "127.0.0.$s not answered at the start"; done

# ------------------------------------------------------------------ manual ban, unban, expiry
T0_MS=$(now_ms)
pal blacklist add 127.0.0.4 --note "e2e manual ban" >/dev/null || fail "blacklist add 127.0.0.4"
t=$(until_state 127.0.0.4 silent 1500)
answered 127.0.0.3 || fail "127.0.0.3 not answered while 127.0.0.4 is banned"
gc 127.0.0.4 probe --tcp >"$E2E_TMP/tcp4.json" && fail "banned 127.0.0.4 answered over TCP"
ok "blacklist add 127.0.0.4: no answer after $t ms (TCP: $(jq -r .result "$E2E_TMP/tcp4.json")); 127.0.0.3 answered"
pal blacklist list --json >"$E2E_TMP/bl.json" || fail "blacklist list"
jq -e '[.[] | select(.net == "127.0.0.4/32" and .origin == "manual" and .note == "e2e manual ban" and .expires_at == null)] | length == 1' \
  "$E2E_TMP/bl.json" >/dev/null || fail "blacklist list: $(jq -c . "$E2E_TMP/bl.json")"

T0_MS=$(now_ms)
pal blacklist remove 127.0.0.4 >/dev/null || fail "blacklist remove 127.0.0.4"
t=$(until_state 127.0.0.4 answered 1500)
event_for unban 127.0.0.4/32
ok "blacklist remove 127.0.0.4: answered again after $t ms; unban event ($(jq -r '[.[] | select(.kind == "unban")][0].detail' "$ev"))"

T0_MS=$(now_ms)
pal blacklist add 127.0.0.4 --expires 2 >/dev/null || fail "blacklist add 127.0.0.4 --expires 2"
t1=$(until_state 127.0.0.4 silent 1500)
t2=$(until_state 127.0.0.4 answered 3500)
[ "$t2" -ge 1900 ] || fail "the 2 s ban of 127.0.0.4 lifted after $t2 ms"
event_for ban_expired 127.0.0.4/32
ok "blacklist add 127.0.0.4 --expires 2: no answer after $t1 ms, answered again after $t2 ms; ban_expired event"

# ------------------------------------------------------------------ whitelist exempts from counting
pal whitelist add 127.0.0.5 --note "e2e allow" >/dev/null || fail "whitelist add 127.0.0.5"
sleep 1.5
wrong 127.0.0.5 10
sleep 0.5
answered 127.0.0.5 || fail "whitelisted 127.0.0.5 banned after 10 failures"
wrong 127.0.0.2 3
sleep 0.5
answered 127.0.0.2 && fail "control: 127.0.0.2 not banned after 3 failures"
event_for ban 127.0.0.2/32
n=$(jq '[.[] | select(.kind == "ban" and .source == "127.0.0.5/32")] | length' "$ev")
[ "$n" = 0 ] || fail "ban events for whitelisted 127.0.0.5: $n"
n=$(jq '[.[] | select(.kind == "auth_failure" and (.source | startswith("127.0.0.5:")))] | length' "$ev")
ok "whitelisted 127.0.0.5: 10 failed authentications ($n auth_failure events), still answered, no ban; control 127.0.0.2 banned after 3"

# ------------------------------------------------------------------ most specific prefix wins
pal whitelist add 127.0.0.6/32 >/dev/null || fail "whitelist add 127.0.0.6/32"
pal blacklist add 127.0.0.0/24 >"$E2E_TMP/block24.out" 2>&1 || fail "blacklist add 127.0.0.0/24: $(cat "$E2E_TMP/block24.out")"
pal blacklist add 127.0.0.9/32 >/dev/null || fail "blacklist add 127.0.0.9/32"
pal whitelist add 127.0.0.8/29 >/dev/null || fail "whitelist add 127.0.0.8/29"
T0_MS=$(now_ms)
t=$(until_state 127.0.0.7 silent 1500)
answered 127.0.0.6 || fail "127.0.0.6 (allow /32 inside block /24) not answered"
answered 127.0.0.9 && fail "127.0.0.9 (block /32, added before allow 127.0.0.8/29) answered"
answered 127.0.0.8 || fail "127.0.0.8 (allow /29 inside block /24) not answered"
answered 127.0.0.3 && fail "127.0.0.3 (block /24) answered"
ok "block 127.0.0.0/24 ($t ms) + allow .6/32 + block .9/32 + allow .8/29: .6 and .8 answered, .7, .9 and .3 not"
T0_MS=$(now_ms)
pal blacklist remove 127.0.0.0/24 >/dev/null || fail "blacklist remove 127.0.0.0/24"
t=$(until_state 127.0.0.7 answered 1500)
answered 127.0.0.9 && fail "127.0.0.9 answered after removing the /24 (its own /32 block remains)"
ok "blacklist remove 127.0.0.0/24: .7 answered again after $t ms, .9 (own /32 block) still not"
no_panic
pal_stop

# ------------------------------------------------------------------ bans across a restart (fresh data directory)
data=$E2E_TMP/data2
pal ext add 100 --json >"$E2E_TMP/ext-100b.json" || fail "ext add 100 (data2)"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100b.json")
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set auth_failures_before_ban 3"
pal_start "$data" --listen "udp:$HOST:$port"
pal blacklist add 127.0.0.4 >/dev/null || fail "blacklist add 127.0.0.4"
T0_MS=$(now_ms)
pal blacklist add 127.0.0.5 --expires 8 >/dev/null || fail "blacklist add 127.0.0.5 --expires 8"
until_state 127.0.0.5 silent 1500 >/dev/null
answered 127.0.0.4 0.3 && fail "127.0.0.4 answered before the restart"
wrong 127.0.0.2 3
event_for ban 127.0.0.2/32
answered 127.0.0.2 0.3 && fail "127.0.0.2 answered before the restart"
answered 127.0.0.3 || fail "127.0.0.3 not answered before the restart"
[ $(($(now_ms) - T0_MS)) -lt 7500 ] || fail "too slow: the checks before the restart took past the 8 s expiry of 127.0.0.5"
ok "before the restart: 127.0.0.4 (manual), 127.0.0.5 (manual, expires in 8 s), 127.0.0.2 (auto) unanswered"
no_panic
pal_stop
left=$((8500 - ($(now_ms) - T0_MS)))
[ "$left" -le 0 ] || sleep "$(awk -v ms="$left" 'BEGIN{printf "%.3f", ms / 1000}')"
pal_start "$data" --listen "udp:$HOST:$port"
grep -o 'IP lists loaded.*' "$PAL_ERR" | head -1 >"$E2E_TMP/loaded.txt" || true
answered 127.0.0.5 || fail "127.0.0.5 (its ban expired while the server was down) not answered after the restart"
answered 127.0.0.4 && fail "127.0.0.4 (manual ban) answered after the restart"
answered 127.0.0.2 && fail "127.0.0.2 (automatic ban) answered after the restart"
answered 127.0.0.3 || fail "127.0.0.3 not answered after the restart"
pal blacklist list --json >"$E2E_TMP/bl2.json" || fail "blacklist list"
nets=$(jq -c '[.[] | .net] | sort' "$E2E_TMP/bl2.json")
[ "$nets" = '["127.0.0.2/32","127.0.0.4/32"]' ] || fail "blacklist list after the restart: $nets"
ok "after the restart ($(cat "$E2E_TMP/loaded.txt")): 127.0.0.4 and 127.0.0.2 still unanswered, 127.0.0.5 (expired while down) answered; list $nets"
event_for ban_expired 127.0.0.5/32
ok "ban_expired event for 127.0.0.5/32 (expired while the server was down): $(jq -c '[.[] | select(.kind == "ban_expired" and .source == "127.0.0.5/32")][0] | {at, reason}' "$ev")"
no_panic
pal_stop
