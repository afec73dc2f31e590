#!/usr/bin/env bash
# SIPVicious svmap (0.3.x) finds Palisade (that is expected of any SIP server), but the product name it
# reports is just "Palisade": no version number, for OPTIONS, REGISTER and INVITE scans. The raw answers
# (svmap --debug) carry exactly `Server: Palisade` and no User-Agent header.
# Controls, so the checks can fail: a server started with --server-header "Palisade/9.8.7" must be reported
# as such and be caught by the version check; --server-header "" must leave svmap with "unknown".
# Every svmap run gets its own -P port (svmap binds 0.0.0.0:5060 otherwise).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need svmap ss

# run_svmap NAME PORT LOCAL_PORT svmap-args...: output in $E2E_TMP/svmap-NAME.out
run_svmap() {
  local name=$1 port=$2 lport=$3 rc=0
  shift 3
  timeout -k 2 30 svmap -p "$port" -P "$lport" -x "$HOST" --debug "$@" "$HOST" \
    >"$E2E_TMP/svmap-$name.out" 2>&1 </dev/null || rc=$?
  case $rc in 124 | 137) fail "svmap $name timed out" ;; esac
}

# user_agent NAME PORT: the "User Agent" svmap reports for 127.0.0.1:PORT (empty when not found)
#   | 127.0.0.1:27000 | Palisade   |
user_agent() {
  awk -F'|' -v dev="$HOST:$2" '{
    d = $2; gsub(/^[ \t]+|[ \t]+$/, "", d)
    if (d == dev) { u = $3; gsub(/^[ \t]+|[ \t]+$/, "", u); print u; exit }
  }' "$E2E_TMP/svmap-$1.out"
}

# A product string with a version: a digit anywhere (Palisade/0.1.0, Palisade 1, v2 ...).
has_version() { [[ $1 =~ [0-9] ]]; }

# ------------------------------------------------------------------ palisade with its default header

port=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port"
pids=()
for m in OPTIONS REGISTER INVITE; do # in parallel: each svmap waits ~3 s for late answers
  lport=$(free_port)
  run_svmap "$m" "$port" "$lport" -m "$m" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "svmap run failed (see above)"; done
for m in OPTIONS REGISTER INVITE; do
  out=$E2E_TMP/svmap-$m.out
  ua=$(user_agent "$m" "$port")
  [ -n "$ua" ] || {
    show "$out" 20
    fail "svmap -m $m did not find palisade on $HOST:$port"
  }
  if [ "$ua" != Palisade ] || has_version "$ua"; then
    show "$out" 20
    fail "svmap -m $m reports user agent '$ua', expected exactly 'Palisade' (no version)"
  fi
  # raw answers: exactly "Server: Palisade", never a User-Agent header
  grep -q '^b.SIP/2.0 ' "$out" || fail "svmap -m $m: no SIP answer in its --debug output"
  if grep '^b.SIP/2.0 ' "$out" | grep -qiv '\\r\\nServer: Palisade\\r\\n'; then
    show "$out" 10
    fail "svmap -m $m: an answer without exactly 'Server: Palisade'"
  fi
  if grep '^b.SIP/2.0 ' "$out" | grep -qi '\\r\\nUser-Agent:'; then
    show "$out" 10
    fail "svmap -m $m: an answer carries a User-Agent header"
  fi
  ok "svmap -m $m finds $HOST:$port, user agent '$ua' (no version)"
done
no_panic
pal_stop

# ------------------------------------------------------------------ controls: configured headers

port2=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port2" --server-header "Palisade/9.8.7"
run_svmap versioned "$port2" "$(free_port)"
ua=$(user_agent versioned "$port2")
if [ "$ua" != "Palisade/9.8.7" ] || ! has_version "$ua"; then
  show "$E2E_TMP/svmap-versioned.out" 20
  fail "control: with --server-header Palisade/9.8.7 svmap reported '$ua' (or the version check missed it)"
fi
ok "control: --server-header Palisade/9.8.7 is reported as '$ua' and flagged as a version"
pal_stop

port3=$(free_port)
pal_start "$E2E_TMP/data" --listen "udp:$HOST:$port3" --server-header ""
run_svmap none "$port3" "$(free_port)"
ua=$(user_agent none "$port3")
[ "$ua" = unknown ] || {
  show "$E2E_TMP/svmap-none.out" 20
  fail "control: with --server-header \"\" svmap reported '$ua', expected 'unknown'"
}
if grep '^b.SIP/2.0 ' "$E2E_TMP/svmap-none.out" | grep -qi '\\r\\n\(Server\|User-Agent\):'; then
  fail "control: --server-header \"\" still sends a Server or User-Agent header"
fi
ok "control: --server-header \"\" sends no Server header (svmap: '$ua')"
no_panic
pal_stop
