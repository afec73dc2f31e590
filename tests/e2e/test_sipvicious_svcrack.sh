#!/usr/bin/env bash
# SIPVicious svcrack (0.3.x) cannot find extension 100's password with a dictionary that lacks it, and every
# guess is recorded as an auth_failure event carrying svcrack's source address (127.0.0.1:its -P port).
#
# svcrack's user semantics: `-u USER` is the digest username, and also the From/To user unless `-e EXT` is
# given. Palisade's digest username is the extension's random auth ID, never its number, so:
#   control  -u AUTHID -e 100, dictionary + the real password: svcrack MUST find it (it can succeed against
#            Palisade when told both names; this proves the tool, the target and the result parser work);
#   A        -u 100, dictionary + the real password: nothing (100 is not an auth ID: "unknown_user" events);
#   B        -u AUTHID (To: AUTHID), dictionary + the real password: nothing (To is not the auth ID's
#            extension: the right password is refused, "aor_mismatch");
#   C        -u AUTHID -e 100, dictionary without the password: nothing ("wrong_password" events);
#   D        -u AUTHID101 -e 101 for the disabled extension 101, dictionary + its real password: nothing.
# A-D run in parallel: svcrack waits 10 s (fixed socket timeout) for a last answer when it finds nothing.
# The dictionary is small (4 words) so the whole test stays below 25 failed authentications from 127.0.0.1,
# the default ban threshold of the design, should a ban be added later.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need svcrack jq ss

DICT=$E2E_DIR/data/sipvicious-passwords.txt
[ -s "$DICT" ] || fail "missing dictionary $DICT"
data=$E2E_TMP/data
for n in 100 101; do
  "$PALISADE_BIN" ext add "$n" --data "$data" --json >"$E2E_TMP/ext-$n.json" || fail "ext add $n"
done
"$PALISADE_BIN" ext set 101 --enabled false --data "$data" >/dev/null || fail "ext set 101 --enabled false"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")
password=$(jq -r .password "$E2E_TMP/ext-100.json")
authid101=$(jq -r .auth_id "$E2E_TMP/ext-101.json")
password101=$(jq -r .password "$E2E_TMP/ext-101.json")
if [ -z "$authid" ] || [ "$authid" = 100 ] || [ -z "$password" ]; then
  fail "unexpected ext add output: $(cat "$E2E_TMP/ext-100.json")"
fi
! grep -qxF -e "$password" -e "$password101" "$DICT" || fail "the dictionary contains a generated password"
cp "$DICT" "$E2E_TMP/dict-100.txt"
echo "$password" >>"$E2E_TMP/dict-100.txt"
cp "$DICT" "$E2E_TMP/dict-101.txt"
echo "$password101" >>"$E2E_TMP/dict-101.txt"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# Local ports for svcrack, all different (never reused: a late answer to one run must not reach another).

# "USER PASSWORD" lines of svcrack's result table:
#   | IaoWs3Pmp7 | 6hAH4AgA7o |
cracked() {
  awk -F'|' 'NF >= 4 {
    u = $2; p = $3; gsub(/[ \t]/, "", u); gsub(/[ \t]/, "", p)
    if (u != "" && u != "Extension") print u, p
  }' "$1"
}

# svcrack_cmd NAME LPORT args...: run svcrack (bounded), output in $E2E_TMP/svcrack-NAME.out
svcrack_cmd() {
  local name=$1 lport=$2 rc=0
  shift 2
  timeout -k 2 40 svcrack -v -p "$port" -P "$lport" -x "$HOST" --maximumtime 5 "$@" "$HOST" \
    >"$E2E_TMP/svcrack-$name.out" 2>&1 </dev/null || rc=$?
  echo "$rc" >"$E2E_TMP/svcrack-$name.rc"
}

check_run() { # NAME LPORT DESCRIPTION: svcrack ended normally, reached the server, cracked nothing
  local name=$1 lport=$2 what=$3 out rc found
  out=$E2E_TMP/svcrack-$name.out
  rc=$(cat "$E2E_TMP/svcrack-$name.rc")
  case $rc in 124 | 137) fail "svcrack $name timed out" ;; esac
  if grep -q 'no server response\|Traceback\|Unhandled exception' "$out"; then
    show "$out" 20
    fail "svcrack $name ($what): no answer from the server or crash (exit $rc)"
  fi
  found=$(cracked "$out")
  [ -z "$found" ] || {
    show "$out" 20
    fail "svcrack $name ($what) cracked: $found"
  }
  ok "svcrack $name ($what, -P $lport): no password found"
}

# ------------------------------------------------------------------ control: svcrack can crack Palisade

lp_ctl=$(free_port)
svcrack_cmd control "$lp_ctl" -u "$authid" -e 100 -d "$E2E_TMP/dict-100.txt"
found=$(cracked "$E2E_TMP/svcrack-control.out")
[ "$found" = "$authid $password" ] || {
  show "$E2E_TMP/svcrack-control.out" 20
  fail "control: svcrack -u AUTHID -e 100 with the password in its dictionary reported '${found:-nothing}'"
}
ok "control: svcrack -u AUTHID -e 100 finds the password when it is in the dictionary"

# ------------------------------------------------------------------ the attacks

lp_a=$(free_port) lp_b=$(free_port) lp_c=$(free_port) lp_d=$(free_port)
svcrack_cmd A "$lp_a" -u 100 -d "$E2E_TMP/dict-100.txt" &
pid_a=$!
svcrack_cmd B "$lp_b" -u "$authid" -d "$E2E_TMP/dict-100.txt" &
pid_b=$!
svcrack_cmd C "$lp_c" -u "$authid" -e 100 -d "$DICT" &
pid_c=$!
svcrack_cmd D "$lp_d" -u "$authid101" -e 101 -d "$E2E_TMP/dict-101.txt" &
pid_d=$!
wait "$pid_a" "$pid_b" "$pid_c" "$pid_d" || true
check_run A "$lp_a" "-u 100 (number as digest user), real password in the dictionary"
check_run B "$lp_b" "-u AUTHID (auth ID as To user), real password in the dictionary"
check_run C "$lp_c" "-u AUTHID -e 100, password not in the dictionary"
check_run D "$lp_d" "-u AUTHID101 -e 101 (disabled), real password in the dictionary"

# ------------------------------------------------------------------ auth_failure events

ev=$E2E_TMP/events.json
# count_ev SOURCE_PORT [REASON]: auth_failure events from 127.0.0.1:PORT (with that reason)
count_ev() {
  jq --arg src "$HOST:$1" --arg reason "${2:-}" \
    '[.[] | select(.kind == "auth_failure" and .source == $src and ($reason == "" or .reason == $reason))] | length' "$ev"
}
for ((i = 0; i < 50; i++)); do # events are written behind: allow them a few seconds
  "$PALISADE_BIN" events --data "$data" --kind auth_failure --json --limit 1000 >"$ev" || fail "palisade events failed"
  all=1
  for lp in "$lp_a" "$lp_b" "$lp_c" "$lp_d"; do [ "$(count_ev "$lp")" -gt 0 ] || all=0; done
  [ "$all" = 1 ] && break
  sleep 0.1
done
words=$(grep -c . "$DICT")
for run in "A $lp_a unknown_user" "B $lp_b aor_mismatch" "C $lp_c wrong_password" "D $lp_d disabled"; do
  read -r name lp reason <<<"$run"
  total=$(count_ev "$lp")
  n=$(count_ev "$lp" "$reason")
  [ "$n" -gt 0 ] || {
    jq -c --arg src "$HOST:$lp" '.[] | select(.source == $src)' "$ev" | tail -5 | sed 's/^/    /' >&2
    fail "svcrack $name: no auth_failure event with reason $reason from $HOST:$lp ($total auth_failure events from it)"
  }
  ok "svcrack $name: $total auth_failure events from $HOST:$lp ($n $reason)"
done
n=$(count_ev "$lp_c" wrong_password)
[ "$n" -ge "$words" ] || fail "svcrack C tried $words passwords, only $n wrong_password events from $HOST:$lp_c"
n=$(count_ev "$lp_ctl")
[ "$n" -ge "$words" ] || fail "control: $words wrong guesses, only $n auth_failure events from $HOST:$lp_ctl"
if grep -qF -e "$password" -e "$password101" "$ev"; then
  fail "a password appears in the events"
fi
ok "events: one auth_failure per wrong guess of C ($words) and of the control; no password in any event"

no_panic
pal_stop
