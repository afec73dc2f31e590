#!/usr/bin/env bash
# e2e: alone (CPU-bound load: run with nothing beside it; see run.sh)
# Packet-flood tiers per source (issue 5, "Show"), with flood_amber_pps=200 and flood_red_pps=1000 (values
# sipp reaches reliably on loopback):
#   1. sipp REGISTER flood from 127.0.0.2 at 500/s for 5 s (between amber and red,
#      scenarios/guard_flood_register.xml: each call = one REGISTER expecting its 401 within 1 s, -nr):
#      a `throttle` event for 127.0.0.2/32, at most ~amber+slack of the REGISTERs answered and most dropped,
#      no ban; once throttle_seconds (5) have passed 127.0.0.2 is answered again;
#   2. the same flood at 3000/s for 3 s (above red): a `ban` event for 127.0.0.2/32 with reason flood, an
#      automatic blacklist entry, and 127.0.0.2 stays unanswered after the throttle time;
#   3. sipp INVITE flood (no credentials, answered 407) from 127.0.0.4 at 3000/s: banned, reason flood;
#   during each flood, sipp from 127.0.0.3 (scenarios/reg_auth.xml, the digest scenario of
#   test_register_sipp_1000.sh) makes 200 authenticated registrations at 50/s: all must succeed
#   (exit 0, 200 successful, 0 failed); and the server's RSS grows by less than 50 MiB over the floods.
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
answered() { timeout -k 2 10 python3 "$client" "$HOST:$port" "$1" probe --timeout 1 >/dev/null; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$PAL_PID/status"; }
# stat FILE COLUMN: last value of a column of a sipp statistics file
stat() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v+0}' "$1"; }
ev=$E2E_TMP/events.json
events_with() { # JQ_FILTER DESCRIPTION: wait (3 s) until some event matches; all events in $ev
  local i
  for ((i = 0; i < 30; i++)); do
    pal events --json --limit 10000 >"$ev" || fail "palisade events"
    jq -e "[.[] | select($1)] | length > 0" "$ev" >/dev/null && return 0
    sleep 0.1
  done
  jq -c '.[] | select(.kind != "auth_challenge" and .kind != "auth_success")' "$ev" | head -20 | sed 's/^/    /' >&2
  fail "no event $2 within 3 s"
}

pal ext add-range 3000 3199 >"$E2E_TMP/creds.csv" || fail "ext add-range 3000 3199"
inf=$E2E_TMP/reg.inf
{
  echo SEQUENTIAL
  tail -n +2 "$E2E_TMP/creds.csv" | tr ',' ';'
} >"$inf"
pal security set flood_amber_pps 200 >/dev/null || fail "security set flood_amber_pps 200"
pal security set flood_red_pps 1000 >/dev/null || fail "security set flood_red_pps 1000"
if pal security set flood_red_pps 150 >"$E2E_TMP/red150.out" 2>&1; then
  fail "flood_red_pps 150 (below amber 200) was accepted"
fi
ok "flood_amber_pps 200, flood_red_pps 1000; red below amber refused: $(head -1 "$E2E_TMP/red150.out")"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# flood NAME SRC SCENARIO RATE COUNT: sipp flood in the background (PID in FLOOD_PID)
flood() {
  local name=$1 src=$2 sf=$3 rate=$4 n=$5 lport
  lport=$(free_port)
  # shellcheck disable=SC2016 # the inner script takes its values as arguments
  spawn "$E2E_TMP/flood-$name.out" bash -c 'cd "$1" && date +%s%N >"$8.t0" && timeout -k 2 40 sipp "$2" -sf "$3" -t u1 -i "$4" -p "$5" \
    -m "$6" -r "$7" -l 20000 -nr -nostdin -timeout 35 -trace_stat -stf "$8" -fd 1; rc=$?; date +%s%N >"$8.t1"; exit $rc' \
    _ "$E2E_TMP" "$HOST:$port" "$E2E_DIR/scenarios/$sf" "$src" "$lport" "$n" "$rate" "$E2E_TMP/flood-$name.csv"
  FLOOD_PID=$BG_PID
}
# flood_end NAME: wait for the flood's sipp; prints "SENT ANSWERED DROPPED RATE" (RATE: requests per second
# sent, over sipp's run time less the 1 s it waits for the last answer)
flood_end() {
  local name=$1 f=$E2E_TMP/flood-$1.csv sent okc failc ms
  wait_exit "$FLOOD_PID" 45 || fail "flood $name: sipp did not end"
  ms=$((($(cat "$f.t1") - $(cat "$f.t0")) / 1000000 - 1000))
  sent=$(stat "$f" 'OutgoingCall(C)')
  okc=$(stat "$f" 'SuccessfulCall(C)')
  failc=$(stat "$f" 'FailedCall(C)')
  [ "$sent" -gt 0 ] || {
    show "$E2E_TMP/flood-$name.out" 20
    fail "flood $name: sipp sent nothing"
  }
  [ $((okc + failc)) = "$sent" ] || fail "flood $name: $sent calls, $okc successful + $failc failed (calls left unfinished)"
  echo "$sent $okc $failc $((sent * 1000 / (ms > 0 ? ms : 1)))"
}
# legit NAME: 200 authenticated registrations from 127.0.0.3 at 50/s; must all succeed
legit() {
  local name=$1 lport rc=0 st okc failc retr
  lport=$(free_port)
  st=$E2E_TMP/legit-$name.csv
  (cd "$E2E_TMP" && timeout -k 2 60 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" -inf "$inf" -t u1 \
    -i 127.0.0.3 -p "$lport" -m 200 -r 50 -l 200 -nostdin -timeout 50 -timeout_error -max_retrans 3 \
    -trace_stat -stf "$st" -fd 1 -trace_err -error_file "$E2E_TMP/legit-$name.err" \
    >"$E2E_TMP/legit-$name.out" 2>&1 </dev/null) || rc=$?
  okc=$(stat "$st" 'SuccessfulCall(C)')
  failc=$(stat "$st" 'FailedCall(C)')
  retr=$(stat "$st" 'Retransmissions(C)')
  if [ "$rc" != 0 ] || [ "$okc" != 200 ] || [ "$failc" != 0 ]; then
    show "$E2E_TMP/legit-$name.out" 15
    show "$E2E_TMP/legit-$name.err" 20
    fail "legitimate registrations from 127.0.0.3 during the $name flood: sipp exit $rc, $okc successful, $failc failed of 200"
  fi
  LEGIT="200/200 registered, 0 failed, $retr retransmissions, mean REGISTER-to-200 time $(awk -F';' \
    'NR==1{for(i=1;i<=NF;i++) if($i=="ResponseTimereg(C)") k=i; next} {v=$k} END{split(v, a, ":"); x = (a[1]*3600 + a[2]*60 + a[3]) * 1000 + a[4] / 1000; print (x < 1 ? "< 1 ms" : x " ms")}' "$st")"
}

legit warmup
rss0=$(rss_kib)
ok "before the floods: legitimate client $LEGIT; RSS $((rss0 / 1024)) MiB"

# ------------------------------------------------------------------ 1. amber: 500/s for 5 s
flood amber 127.0.0.2 guard_flood_register.xml 500 2500
sleep 0.3
legit amber
read -r sent okc failc rate < <(flood_end amber)
events_with '.kind == "throttle" and .source == "127.0.0.2/32"' "throttle 127.0.0.2/32"
jq -e '[.[] | select(.kind == "ban")] | length == 0' "$ev" >/dev/null ||
  fail "a ban after the amber flood: $(jq -c '[.[] | select(.kind == "ban")]' "$ev")"
{ [ "$okc" -ge 150 ] && [ "$okc" -le 400 ]; } || fail "amber flood: $okc of $sent REGISTERs answered, expected about 200 (amber) then drops"
[ "$failc" -ge $((sent / 2)) ] || fail "amber flood: only $failc of $sent REGISTERs dropped"
throttle=$(jq -r '[.[] | select(.kind == "throttle")][0] | "\(.reason): \(.detail)"' "$ev")
ok "amber flood 127.0.0.2: $sent REGISTERs (~$rate/s): $okc answered, $failc dropped; throttle event ($throttle); no ban"
ok "during the amber flood, 127.0.0.3: $LEGIT"
# the throttle lifts after throttle_seconds (5 s from its start)
for ((i = 0; i < 10; i++)); do
  answered 127.0.0.2 && break
done
answered 127.0.0.2 || fail "127.0.0.2 still unanswered 10 s after the amber flood (throttle_seconds is 5)"
ok "127.0.0.2 answered again after the throttle"

# ------------------------------------------------------------------ 2. red: 3000/s for 3 s
flood red 127.0.0.2 guard_flood_register.xml 3000 9000
sleep 0.3
legit red
read -r sent okc failc rate < <(flood_end red)
events_with '.kind == "ban" and .source == "127.0.0.2/32"' "ban 127.0.0.2/32"
r=$(jq -r '[.[] | select(.kind == "ban" and .source == "127.0.0.2/32") | .reason] | join(",")' "$ev")
[ "$r" = flood ] || fail "ban of 127.0.0.2/32: reasons '$r', expected flood"
bdetail=$(jq -r '[.[] | select(.kind == "ban" and .source == "127.0.0.2/32")][0].detail' "$ev")
pal blacklist list --json >"$E2E_TMP/bl.json" || fail "blacklist list"
jq -e '[.[] | select(.net == "127.0.0.2/32" and .origin == "auto" and .reason == "flood")] | length == 1' "$E2E_TMP/bl.json" >/dev/null ||
  fail "blacklist list has no automatic flood entry for 127.0.0.2/32: $(jq -c . "$E2E_TMP/bl.json")"
ok "red flood 127.0.0.2: $sent REGISTERs (~$rate/s): $okc answered, $failc dropped; ban event flood ($bdetail)"
ok "during the red flood, 127.0.0.3: $LEGIT"
sleep 5.5
answered 127.0.0.2 && fail "127.0.0.2 answered 5.5 s after its flood ban (a ban is not a throttle)"
ok "127.0.0.2 still unanswered after throttle_seconds: banned"

# ------------------------------------------------------------------ 3. INVITE flood: 3000/s from 127.0.0.4
answered 127.0.0.4 || fail "127.0.0.4 not answered before its flood"
flood invite 127.0.0.4 guard_flood_invite.xml 3000 9000
sleep 0.3
legit invite
read -r sent okc failc rate < <(flood_end invite)
events_with '.kind == "ban" and .source == "127.0.0.4/32"' "ban 127.0.0.4/32"
r=$(jq -r '[.[] | select(.kind == "ban" and .source == "127.0.0.4/32") | .reason] | join(",")' "$ev")
[ "$r" = flood ] || fail "ban of 127.0.0.4/32: reasons '$r', expected flood"
[ "$okc" -ge 1 ] || fail "INVITE flood: no INVITE got its 407 (did the flood reach the server?)"
answered 127.0.0.4 && fail "127.0.0.4 answered after its INVITE flood"
ok "INVITE flood 127.0.0.4: $sent INVITEs (~$rate/s): $okc answered (407), $failc dropped; ban event flood"
ok "during the INVITE flood, 127.0.0.3: $LEGIT"

rss1=$(rss_kib)
grow=$(((rss1 - rss0) / 1024))
[ "$grow" -lt 50 ] || fail "RSS grew by $grow MiB over the floods ($((rss0 / 1024)) -> $((rss1 / 1024)) MiB), limit 50"
ok "RSS $((rss0 / 1024)) MiB before the floods, $((rss1 / 1024)) MiB after (+$grow MiB, limit 50)"
answered 127.0.0.3 || fail "127.0.0.3 not answered at the end"
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
