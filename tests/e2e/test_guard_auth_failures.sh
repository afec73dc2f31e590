#!/usr/bin/env bash
# The guard blacklists a source after auth_failures_before_ban failed authentications (issue 5, "Show").
#   limit 3 (set before start): guard_client.py from 127.0.0.2 sends REGISTERs answered with a wrong
#     password: failures 1, 2 and 3 each get 401, then 127.0.0.2 gets no answer at all (UDP silent, TCP not
#     served) while 127.0.0.3 is answered and registers with the right password; one `ban` event for
#     127.0.0.2/32 with reason auth_failures, exactly 3 auth_failure events from it, and an automatic
#     blacklist entry.
#   SIPVicious svcrack, limit 3, dictionary of 6 wrong words then the real password: its source is banned
#     after exactly 3 failures, it never reaches the real password and stops on its own for lack of answers.
#     svcrack 0.3.3 sends from 127.0.0.1 whatever -b says (its -b option is parsed but never used), so the
#     ban asserted is 127.0.0.1/32; this server's CLI does not use the network, so banning it is harmless.
#   default limit (fresh data directory, no setting): 24 failures from 127.0.0.4 do not ban (answered),
#     the 25th does; 24 failures, a success (resets the counter), 24 failures from 127.0.0.5 do not ban.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=28000 E2E_PORT_MAX=28199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq svcrack ss

client=$E2E_DIR/guard_client.py
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# gc SRC ARGS...: guard_client.py against the server, bounded
gc() {
  local src=$1
  shift
  timeout -k 2 90 python3 "$client" "$HOST:$port" "$src" "$@"
}
# answered SRC: one OPTIONS from SRC gets an answer within 1 s (UDP)
answered() { gc "$1" probe --timeout 1 >/dev/null; }
# failures SRC N [PASSWORD]: N registration attempts with a wrong password; output in $E2E_TMP/fail-SRC-N.jsonl
failures() {
  local src=$1 n=$2 pw=${3:-WrongPassw0rd}
  gc "$src" auth "$n" 100 "$authid" "$pw" >"$E2E_TMP/fail-$src-$n.jsonl" || fail "guard_client auth from $src failed"
}
# all_answered FILE N: N attempts, each challenged (401) and refused (401)
all_refused() {
  local f=$1 n=$2 got
  got=$(jq -s '[.[] | select(.challenge == 401 and .final == 401)] | length' "$f")
  [ "$got" = "$n" ] || {
    show "$f" 30
    fail "$f: expected $n attempts each answered 401 then 401, got $got"
  }
}
# events_json: wait up to 3 s for the ban events (written behind), then dump all events to $ev
ev=$E2E_TMP/events.json
events_for() { # SOURCE_NET: wait until a ban for it is in the DB
  local i
  for ((i = 0; i < 30; i++)); do
    pal events --json --limit 10000 >"$ev" || fail "palisade events"
    [ "$(jq --arg s "$1" '[.[] | select(.kind == "ban" and .source == $s)] | length' "$ev")" -gt 0 ] && return 0
    sleep 0.1
  done
  jq -c '.[] | select(.kind == "ban")' "$ev" | sed 's/^/    /' >&2
  fail "no ban event for $1 within 3 s"
}
count_failures() { # SRC_IP: auth_failure events from that address (any port)
  jq --arg ip "$1:" '[.[] | select(.kind == "auth_failure" and (.source | startswith($ip)))] | length' "$ev"
}

pal ext add 100 --json >"$E2E_TMP/ext-100.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")
password=$(jq -r .password "$E2E_TMP/ext-100.json")
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set auth_failures_before_ban 3"
if pal security set auth_failures_before_ban 2 >"$E2E_TMP/set2.out" 2>&1; then
  fail "auth_failures_before_ban 2 was accepted (minimum 3)"
fi
grep -q '3' "$E2E_TMP/set2.out" || fail "refusal of 2 does not give the limits: $(cat "$E2E_TMP/set2.out")"
ok "auth_failures_before_ban: 2 refused ($(tr '\n' ' ' <"$E2E_TMP/set2.out")), 3 accepted"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

# ------------------------------------------------------------------ limit 3, guard_client from 127.0.0.2
answered 127.0.0.2 || fail "127.0.0.2 not answered before any failure"
failures 127.0.0.2 3
all_refused "$E2E_TMP/fail-127.0.0.2-3.jsonl" 3
ok "127.0.0.2: failures 1, 2, 3 each answered 401 (challenge) then 401 (wrong password)"
sleep 0.3
if gc 127.0.0.2 probe --timeout 1 >"$E2E_TMP/probe2.json"; then
  fail "127.0.0.2 still answered after 3 failures: $(cat "$E2E_TMP/probe2.json")"
fi
gc 127.0.0.2 auth 1 100 "$authid" "$password" >"$E2E_TMP/banned-right.jsonl" || true
[ "$(jq -r .challenge "$E2E_TMP/banned-right.jsonl")" = null ] ||
  fail "banned 127.0.0.2: REGISTER answered: $(cat "$E2E_TMP/banned-right.jsonl")"
gc 127.0.0.2 probe --tcp --timeout 1 >"$E2E_TMP/probe2tcp.json" &&
  fail "banned 127.0.0.2: OPTIONS over TCP answered: $(cat "$E2E_TMP/probe2tcp.json")"
ok "127.0.0.2 banned: OPTIONS and REGISTER over UDP get no answer within 1 s, TCP: $(jq -r .result "$E2E_TMP/probe2tcp.json")"

answered 127.0.0.3 || fail "127.0.0.3 not answered while 127.0.0.2 is banned"
gc 127.0.0.3 auth 1 100 "$authid" "$password" >"$E2E_TMP/ok3.jsonl" || fail "guard_client from 127.0.0.3"
[ "$(jq -c '[.challenge, .final]' "$E2E_TMP/ok3.jsonl")" = '[401,200]' ] ||
  fail "127.0.0.3 right password: $(cat "$E2E_TMP/ok3.jsonl"), expected 401 then 200"
ok "127.0.0.3 unaffected: answered, registers with the right password (401, 200)"

events_for 127.0.0.2/32
bans=$(jq -c '[.[] | select(.kind == "ban") | {source, reason}]' "$ev")
[ "$bans" = '[{"source":"127.0.0.2/32","reason":"auth_failures"}]' ] || fail "ban events: $bans (expected one: 127.0.0.2/32 auth_failures)"
n=$(count_failures 127.0.0.2)
[ "$n" = 3 ] || fail "auth_failure events from 127.0.0.2: $n, expected 3"
pal blacklist list --json >"$E2E_TMP/bl.json" || fail "blacklist list"
entry=$(jq -c '[.[] | select(.net == "127.0.0.2/32") | {action, origin, reason}]' "$E2E_TMP/bl.json")
[ "$entry" = '[{"action":"block","origin":"auto","reason":"auth_failures"}]' ] ||
  fail "blacklist list: 127.0.0.2/32 entry $entry; list: $(jq -c . "$E2E_TMP/bl.json")"
exp=$(jq -r '.[] | select(.net == "127.0.0.2/32") | .expires_in_s' "$E2E_TMP/bl.json")
{ [ "$exp" -gt 86000 ] && [ "$exp" -le 86400 ]; } || fail "automatic ban expires in $exp s, expected about 86400 (ban_seconds default)"
ok "events: one ban (127.0.0.2/32, auth_failures), 3 auth_failure events; blacklist: auto block, expires in ${exp}s"

# ------------------------------------------------------------------ svcrack, limit 3, from 127.0.0.1
dict=$E2E_TMP/dict.txt
printf '%s\n' 123456 password 1234 100 admin secret "$password" zzz >"$dict"
lport=$(free_port)
rc=0
t0=$SECONDS
timeout -k 2 40 svcrack -v -x "$HOST" -P "$lport" -p "$port" --maximumtime 3 \
  -u "$authid" -e 100 -d "$dict" "$HOST" >"$E2E_TMP/svcrack.out" 2>&1 </dev/null || rc=$?
case $rc in 124 | 137) fail "svcrack did not stop within 40 s" ;; esac
grep -q 'Traceback' "$E2E_TMP/svcrack.out" && {
  show "$E2E_TMP/svcrack.out" 20
  fail "svcrack crashed"
}
if grep -qF "$password" "$E2E_TMP/svcrack.out"; then
  show "$E2E_TMP/svcrack.out" 20
  fail "svcrack found the password (it is 7th in its dictionary, the ban should come after the 3rd)"
fi
grep -q 'since we last received a response' "$E2E_TMP/svcrack.out" || {
  show "$E2E_TMP/svcrack.out" 20
  fail "svcrack did not report that the answers stopped"
}
events_for "$HOST/32"
r=$(jq -r --arg s "$HOST/32" '[.[] | select(.kind == "ban" and .source == $s) | .reason] | join(",")' "$ev")
[ "$r" = auth_failures ] || fail "svcrack's ban: reasons '$r', expected one auth_failures"
n=$(count_failures "$HOST")
[ "$n" = 3 ] || fail "auth_failure events from svcrack ($HOST): $n, expected exactly 3"
answered "$HOST" && fail "$HOST answered after svcrack's ban"
stopmsg=$(grep -o 'It has been [0-9]*' "$E2E_TMP/svcrack.out" | head -1 | sed 's/It has been /no answer for /')
ok "svcrack (exit $rc after $((SECONDS - t0)) s; it stopped: $stopmsg s): banned after exactly 3 failures (ban $HOST/32 auth_failures); the real password (7th) never tried"
answered 127.0.0.3 || fail "127.0.0.3 not answered at the end"
no_panic
pal_stop

# ------------------------------------------------------------------ default limit: a fresh data directory
data=$E2E_TMP/data2
pal ext add 100 --json >"$E2E_TMP/ext-100b.json" || fail "ext add 100 (data2)"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100b.json")
password=$(jq -r .password "$E2E_TMP/ext-100b.json")
pal_start "$data" --listen "udp:$HOST:$port"
failures 127.0.0.4 24
all_refused "$E2E_TMP/fail-127.0.0.4-24.jsonl" 24
sleep 0.3
answered 127.0.0.4 || fail "default limit: 127.0.0.4 banned after 24 failures (expected 25)"
ok "default limit: 24 failures from 127.0.0.4, still answered"
failures 127.0.0.4 1
all_refused "$E2E_TMP/fail-127.0.0.4-1.jsonl" 1
sleep 0.3
answered 127.0.0.4 && fail "default limit: 127.0.0.4 still answered after 25 failures"
events_for 127.0.0.4/32
[ "$(count_failures 127.0.0.4)" = 25 ] || fail "auth_failure events from 127.0.0.4: $(count_failures 127.0.0.4), expected 25"
jq -e '[.[] | select(.kind == "ban" and .source == "127.0.0.4/32" and .reason == "auth_failures")] | length == 1' "$ev" >/dev/null ||
  fail "ban of 127.0.0.4/32: $(jq -c '[.[] | select(.kind == "ban")]' "$ev")"
ok "default limit: the 25th failure bans 127.0.0.4 (ban event auth_failures, 25 auth_failure events)"

failures 127.0.0.5 24
gc 127.0.0.5 auth 1 100 "$authid" "$password" >"$E2E_TMP/ok5.jsonl" || fail "guard_client from 127.0.0.5"
[ "$(jq -c '[.challenge, .final]' "$E2E_TMP/ok5.jsonl")" = '[401,200]' ] || fail "127.0.0.5 right password: $(cat "$E2E_TMP/ok5.jsonl")"
failures 127.0.0.5 24
all_refused "$E2E_TMP/fail-127.0.0.5-24.jsonl" 24
sleep 0.3
answered 127.0.0.5 || fail "127.0.0.5 banned after 24 failures + success + 24 failures (a success must reset the count)"
ok "127.0.0.5: 24 failures, a success, 24 failures: not banned (a success resets the count)"
no_panic
pal_stop
