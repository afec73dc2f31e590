#!/usr/bin/env bash
# The digest realm is fixed once and a domain change never locks phones out (issue 18):
#   * `palisade --version` names the git revision the binary was built from;
#   * `ext add` before the first `serve --domain` (the README's order), then serve with a domain other than the
#     host name: the extension registers (reg_client.py, real digest over UDP); the challenge's realm is the
#     one fixed at `ext add`, not the new domain;
#   * a restart with yet another --domain: it still registers;
#   * `palisade realm set` refuses (exit 1) and names the extension whose password would break; with --yes it
#     changes and names it again; after a restart the old password is refused and a reset one registers;
#   * upgrade from a database written before the stable realm (migration 15 undone with python's sqlite3):
#     the server copies the database to backups/pre-upgrade-* before migrating and keeps the realm the
#     passwords were hashed for, so the phone still registers.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26599}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3

version=$("$PALISADE_BIN" --version)
case $version in "palisade "*" ("*")") ;; *) fail "--version printed '$version'" ;; esac
if rev=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null); then
  case $version in *"($rev)") ;; *) fail "--version '$version' does not name HEAD $rev" ;; esac
fi
ok "--version: $version"

data=$E2E_TMP/data
"$PALISADE_BIN" ext add 301 --data "$data" --json >"$E2E_TMP/301.json" 2>"$E2E_TMP/add.err" || fail "ext add 301"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
auth_id=$(field "$E2E_TMP/301.json" auth_id)
password=$(field "$E2E_TMP/301.json" password)
realm=$(field "$E2E_TMP/301.json" realm)

port=$(free_port)
# register PASSWORD -> prints the final status code; the challenge's realm goes to $E2E_TMP/realm.
register() {
  local out=$E2E_TMP/reg.$RANDOM.json
  timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" udp 301 "$auth_id" "$1" >"$out" 2>&1 ||
    fail "reg_client failed: $(cat "$out")"
  python3 - "$out" "$E2E_TMP/realm" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(d["challenge"].get("www_authenticate", {}).get("realm", ""))
print(d.get("final", d["challenge"])["code"])
PY
}

pal_start "$data" --listen "udp:$HOST:$port" --domain 127.0.0.1
code=$(register "$password")
[ "$code" = 200 ] || fail "after ext add then serve --domain 127.0.0.1, REGISTER got $code (expected 200)"
[ "$(cat "$E2E_TMP/realm")" = "$realm" ] || fail "challenge realm '$(cat "$E2E_TMP/realm")', expected '$realm'"
ok "ext add before serve --domain 127.0.0.1: 301 registers (200), challenge realm $realm"
pal_stop

pal_start "$data" --listen "udp:$HOST:$port" --domain changed.example
code=$(register "$password")
[ "$code" = 200 ] || fail "after a domain change REGISTER got $code (expected 200)"
ok "restart with --domain changed.example: 301 still registers (200)"
pal_stop

rc=0
"$PALISADE_BIN" realm set new.example --data "$data" >"$E2E_TMP/set.out" 2>"$E2E_TMP/set.err" || rc=$?
[ "$rc" = 1 ] || fail "realm set without --yes exited $rc (expected 1)"
{ grep -q '301' "$E2E_TMP/set.err" && grep -q -- '--yes' "$E2E_TMP/set.err"; } ||
  fail "realm set refusal does not name 301 and --yes: $(cat "$E2E_TMP/set.err")"
[ "$("$PALISADE_BIN" realm show --data "$data" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["realm"])')" = "$realm" ] ||
  fail "a refused realm set changed the realm"
ok "realm set without --yes refused: $(cat "$E2E_TMP/set.err")"
"$PALISADE_BIN" realm set new.example --yes --data "$data" --json >"$E2E_TMP/set.json" || fail "realm set --yes"
grep -q '"301"' "$E2E_TMP/set.json" || fail "realm set --yes does not list 301: $(cat "$E2E_TMP/set.json")"
pal_start "$data" --listen "udp:$HOST:$port"
code=$(register "$password")
[ "$code" = 401 ] || fail "after realm set --yes the old password got $code (expected 401, as the command warned)"
"$PALISADE_BIN" ext reset-password 301 --data "$data" --json >"$E2E_TMP/reset.json" || fail "ext reset-password"
password=$(field "$E2E_TMP/reset.json" password)
code=""
for _ in $(seq 1 20); do
  code=$(register "$password")
  [ "$code" = 200 ] && break
  sleep 0.3
done
[ "$code" = 200 ] || fail "after reset-password REGISTER got $code"
[ "$(cat "$E2E_TMP/realm")" = new.example ] || fail "challenge realm '$(cat "$E2E_TMP/realm")' after realm set"
ok "realm set --yes named 301; old password refused (401), reset password registers in realm new.example"
pal_stop

# A database from before the stable realm: undo migration 15 (alone: later ones add columns, which cannot run
# twice), as if an older Palisade had written it.
python3 - "$data/palisade.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("DELETE FROM settings WHERE key = 'realm'")
c.execute("DELETE FROM _sqlx_migrations WHERE version = 15")
c.commit()
PY
pal_start "$data" --listen "udp:$HOST:$port" --domain upgraded.example
ls "$data"/backups/pre-upgrade-schema*-to-*.db >/dev/null 2>&1 || fail "no pre-upgrade copy in $data/backups"
code=$(register "$password")
[ "$code" = 200 ] || fail "after the upgrade REGISTER got $code (expected 200)"
[ "$(cat "$E2E_TMP/realm")" = new.example ] || fail "the upgrade changed the realm to '$(cat "$E2E_TMP/realm")'"
ok "upgrade: copied to $(basename "$(ls "$data"/backups/pre-upgrade-*)") first; realm kept; 301 registers"
no_panic
pal_stop
