#!/usr/bin/env bash
# A source that sends REGISTERs and never answers the 401 challenges is blacklisted after
# unanswered_challenges_before_ban challenges (set to its minimum, 100; 99 is refused):
#   guard_client.py from 127.0.0.2: 101 REGISTERs without credentials, one after the other: the first 100
#     get 401, the 101st gets no answer (1 s); a `ban` event 127.0.0.2/32 reason unanswered_challenges;
#     the 100 challenges counted (routine challenges are daily counters, `palisade events --summary`, not rows);
#   sipp from 127.0.0.3 (scenarios/guard_challenge.xml: REGISTER, expect 401 within 1 s; -nr): 130 calls at
#     50/s -> exactly 100 successful (401 received), 30 failed, a ban event for 127.0.0.3/32;
#   a challenge followed by a valid answer is not "unanswered": from 127.0.0.4, 60 unanswered challenges,
#     20 authenticated registrations (each 401 then 200), 39 unanswered challenges -> still answered; the
#     100th unanswered challenge is answered and bans, the next request gets nothing.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=28000 E2E_PORT_MAX=28199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq sipp ss

client=$E2E_DIR/guard_client.py
data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
gc() {
  local src=$1
  shift
  timeout -k 2 150 python3 "$client" "$HOST:$port" "$src" "$@"
}
answered() { gc "$1" probe --timeout 1 >/dev/null; }
ev=$E2E_TMP/events.json
events_for() { # SOURCE_NET: wait (3 s) until a ban for it is in the DB; all events in $ev
  local i
  for ((i = 0; i < 30; i++)); do
    pal events --json --limit 10000 >"$ev" || fail "palisade events"
    [ "$(jq --arg s "$1" '[.[] | select(.kind == "ban" and .source == $s)] | length' "$ev")" -gt 0 ] && return 0
    sleep 0.1
  done
  jq -c '.[] | select(.kind == "ban")' "$ev" | sed 's/^/    /' >&2
  fail "no ban event for $1 within 3 s"
}
ban_reason() { jq -r --arg s "$1" '[.[] | select(.kind == "ban" and .source == $s) | .reason] | join(",")' "$ev"; }
# codes FILE: the answer codes of a `challenge` run, space-separated with counts ("100x401 1xnull")
codes() { jq -r '.code' "$1" | uniq -c | awk '{printf "%s%sx%s", (NR > 1 ? " " : ""), $1, $2}'; }

pal ext add 100 --json >"$E2E_TMP/ext-100.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")
password=$(jq -r .password "$E2E_TMP/ext-100.json")
if pal security set unanswered_challenges_before_ban 99 >"$E2E_TMP/set99.out" 2>&1; then
  fail "unanswered_challenges_before_ban 99 was accepted (minimum 100)"
fi
pal security set unanswered_challenges_before_ban 100 >/dev/null || fail "security set unanswered_challenges_before_ban 100"
ok "unanswered_challenges_before_ban: 99 refused ($(tr '\n' ' ' <"$E2E_TMP/set99.out")), 100 accepted"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# ------------------------------------------------------------------ guard_client, 127.0.0.2
gc 127.0.0.2 challenge 101 >"$E2E_TMP/c2.jsonl" || fail "guard_client challenge from 127.0.0.2"
got=$(codes "$E2E_TMP/c2.jsonl")
[ "$got" = "100x401 1xnull" ] || fail "127.0.0.2, 101 REGISTERs never answering the challenge: answers $got, expected 100x401 1xnull"
answered 127.0.0.2 && fail "127.0.0.2 answered after 100 unanswered challenges"
events_for 127.0.0.2/32
[ "$(ban_reason 127.0.0.2/32)" = unanswered_challenges ] || fail "ban of 127.0.0.2/32: reason '$(ban_reason 127.0.0.2/32)'"
n=$(pal events --summary --json | jq '[.counts[] | select(.kind == "auth_challenge") | .count] | add')
[ "$n" = 100 ] || fail "auth_challenge counter: $n, expected 100"
ok "127.0.0.2: 100 REGISTERs challenged (401), the 101st unanswered; ban event unanswered_challenges, 100 challenges counted"

# ------------------------------------------------------------------ sipp, 127.0.0.3
lport=$(free_port)
rc=0
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/guard_challenge.xml" -t u1 \
  -i 127.0.0.3 -p "$lport" -m 130 -r 50 -l 200 -nr -nostdin -timeout 20 \
  -trace_stat -stf "$E2E_TMP/sipp3.csv" >"$E2E_TMP/sipp3.out" 2>&1 </dev/null) || rc=$?
stat() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"; }
okc=$(stat "$E2E_TMP/sipp3.csv" 'SuccessfulCall(C)')
failc=$(stat "$E2E_TMP/sipp3.csv" 'FailedCall(C)')
{ [ "$okc" = 100 ] && [ "$failc" = 30 ]; } || {
  show "$E2E_TMP/sipp3.out" 20
  fail "sipp from 127.0.0.3 (exit $rc): $okc calls got their 401, $failc failed; expected 100 and 30"
}
events_for 127.0.0.3/32
[ "$(ban_reason 127.0.0.3/32)" = unanswered_challenges ] || fail "ban of 127.0.0.3/32: reason '$(ban_reason 127.0.0.3/32)'"
ok "sipp -i 127.0.0.3, 130 REGISTERs at 50/s never answering: 100 got 401, 30 no answer (sipp exit $rc); ban event unanswered_challenges"

# ------------------------------------------------------------------ answered challenges do not count, 127.0.0.4
gc 127.0.0.4 challenge 60 >"$E2E_TMP/c4a.jsonl" || fail "guard_client challenge from 127.0.0.4"
gc 127.0.0.4 auth 20 100 "$authid" "$password" >"$E2E_TMP/r4.jsonl" || fail "guard_client auth from 127.0.0.4"
gc 127.0.0.4 challenge 39 >"$E2E_TMP/c4b.jsonl" || fail "guard_client challenge from 127.0.0.4"
got="$(codes "$E2E_TMP/c4a.jsonl") / $(jq -c '[.challenge, .final]' "$E2E_TMP/r4.jsonl" | uniq -c | awk '{printf "%sx%s", $1, $2}') / $(codes "$E2E_TMP/c4b.jsonl")"
[ "$got" = "60x401 / 20x[401,200] / 39x401" ] || fail "127.0.0.4: answers $got, expected 60x401 / 20x[401,200] / 39x401"
answered 127.0.0.4 || fail "127.0.0.4 banned after 99 unanswered challenges and 20 answered ones"
gc 127.0.0.4 challenge 2 >"$E2E_TMP/c4c.jsonl" || fail "guard_client challenge from 127.0.0.4"
[ "$(codes "$E2E_TMP/c4c.jsonl")" = "1x401 1xnull" ] || fail "127.0.0.4, unanswered challenges 100 and 101: $(codes "$E2E_TMP/c4c.jsonl"), expected 1x401 1xnull"
events_for 127.0.0.4/32
[ "$(ban_reason 127.0.0.4/32)" = unanswered_challenges ] || fail "ban of 127.0.0.4/32: reason '$(ban_reason 127.0.0.4/32)'"
ok "127.0.0.4: 60 unanswered + 20 authenticated registrations + 39 unanswered: not banned; the 100th unanswered bans"

n=$(jq '[.[] | select(.kind == "ban")] | length' "$ev")
[ "$n" = 3 ] || fail "$n ban events, expected 3 (127.0.0.2, .3, .4): $(jq -c '[.[] | select(.kind == "ban") | .source]' "$ev")"
answered 127.0.0.5 || fail "127.0.0.5 (never sent anything) not answered"
no_panic
pal_stop
