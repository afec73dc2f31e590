#!/usr/bin/env bash
# Administration reaches the running server without a restart (it polls the database every 500 ms;
# each step below gets 1.5 s). With palisade running, reg_client.py (Python digest client) checks:
#   - `ext add 501`                 -> the new extension registers (200);
#   - `ext set 501 --enabled false` -> a fresh registration with the right password gets 401;
#   - `ext set 501 --enabled true`  -> 200 again;
#   - `ext reset-password 501`      -> the new password is accepted, then the old one is refused (401).
# Each step's delay (command done -> first answer showing the change) is logged.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 ss

data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
pal ext add 500 >/dev/null || fail "ext add 500"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# attempt NUMBER AUTH_ID PASSWORD -> prints the final status code of one authenticated REGISTER
# (runs in a command substitution: on a client error it prints "client-error" and logs the output)
attempt() {
  local out
  out=$(mktemp "$E2E_TMP/attempt.XXXXXX")
  timeout -k 2 10 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" udp "$@" >"$out" 2>&1 || {
    log "reg_client failed: $(cat "$out")"
    echo client-error
    return 0
  }
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("final", d["challenge"])["code"])' "$out"
}

# until CODE WHAT NUMBER AUTH_ID PASSWORD: retry for up to 1.5 s until the REGISTER gets CODE
until_code() {
  local want=$1 what=$2 t0 dt code
  shift 2
  t0=$(date +%s%N)
  while :; do
    code=$(attempt "$@")
    dt=$((($(date +%s%N) - t0) / 1000000))
    [ "$code" = "$want" ] && break
    [ "$dt" -lt 1500 ] || {
      show "$PAL_ERR"
      fail "$what: still $code after ${dt} ms, expected $want within 1.5 s"
    }
    sleep 0.05
  done
  ok "$what: $want after ${dt} ms"
}

pal ext add 501 --json >"$E2E_TMP/501.json" || fail "ext add 501"
id=$(field "$E2E_TMP/501.json" auth_id)
pw=$(field "$E2E_TMP/501.json" password)
until_code 200 "ext add 501 -> registers" 501 "$id" "$pw"

pal ext set 501 --enabled false >/dev/null || fail "ext set --enabled false"
until_code 401 "ext set 501 --enabled false -> right password refused" 501 "$id" "$pw"
code=$(attempt 501 "$id" "$pw")
[ "$code" = 401 ] || fail "disabled extension: a second attempt got $code, expected 401"

pal ext set 501 --enabled true >/dev/null || fail "ext set --enabled true"
until_code 200 "ext set 501 --enabled true -> registers again" 501 "$id" "$pw"

pal ext reset-password 501 --json >"$E2E_TMP/501-new.json" || fail "ext reset-password"
pw2=$(field "$E2E_TMP/501-new.json" password)
[ "$pw2" != "$pw" ] || fail "reset-password returned the old password"
[ "$(field "$E2E_TMP/501-new.json" auth_id)" = "$id" ] || fail "reset-password changed the auth ID"
until_code 200 "ext reset-password 501 -> new password accepted" 501 "$id" "$pw2"
code=$(attempt 501 "$id" "$pw")
[ "$code" = 401 ] || fail "after reset-password the old password got $code, expected 401"
ok "after reset-password the old password is refused (401)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
