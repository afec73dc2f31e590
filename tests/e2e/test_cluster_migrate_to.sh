#!/usr/bin/env bash
# `palisade db migrate-to postgres://…` (issue 17, docs/cluster.md): a SQLite installation populated with the CLI
# (extensions, security settings, black- and whitelist entries, a trunk and an outbound rule, a ring group) and
# by a running server (a registration, security events from a wrong password), copied into a throwaway PostgreSQL:
#   * the command lists every table with its row count and checksum and says the copy was verified; PostgreSQL
#     holds the same number of extensions, IP rules and security events as SQLite;
#   * running it again is refused (the target is not empty), with exit status 1 and nothing changed;
#   * a server on PostgreSQL (new data directory) authenticates a phone with its old password (200), and
#     `palisade ext list --json` on PostgreSQL equals the one on SQLite;
#   * new rows get fresh ids (the identity sequences were moved past the copied ids): a wrong password on the
#     PostgreSQL server adds a security event.
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

data=$E2E_TMP/data
lite() { "$PALISADE_BIN" "$@" --data "$data"; }
csv=$E2E_TMP/credentials.csv
lite ext add-range 100 102 2>/dev/null | grep -E '^[0-9]+,' >"$csv" || fail "ext add-range 100 102"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
lite security set auth_failures_before_ban 10 >/dev/null || fail "security set"
lite blacklist add 198.51.100.0/24 --note "known scanner" >/dev/null || fail "blacklist add"
lite whitelist add 192.0.2.10 >/dev/null || fail "whitelist add"
lite trunk add carrier --host 127.0.0.99 --port 5060 --transport udp >/dev/null || fail "trunk add"
lite rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add"
lite group add 600 --members 100,101 >/dev/null 2>&1 || log "(ring group not created: $(lite group add 600 --members 100,101 2>&1 | head -1))"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"
reg() { # NUMBER PASSWORD -> final code
  timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" udp "$1" "$(cred "$1" 2)" "$2" 2>/dev/null |
    jq -r '.final.code // .challenge.code' 2>/dev/null || echo none
}
[ "$(reg 100 "$(cred 100 3)")" = 200 ] || fail "100 does not register on SQLite"
[ "$(reg 101 wrong-password)" != 200 ] || fail "a wrong password registered"
pal_stop
lite ext list --json >"$E2E_TMP/ext-sqlite.json" || fail "ext list on SQLite"
db=$data/palisade.db
count() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$db" "$1"; }
n_ext=$(count "SELECT count(*) FROM extensions") n_rules=$(count "SELECT count(*) FROM ip_rules")
n_events=$(count "SELECT count(*) FROM security_events")
[ "$n_events" -gt 0 ] || fail "the SQLite server recorded no security events"
log "SQLite: $n_ext extensions, $n_rules IP rules, $n_events security events"

pg_start "$(free_port)" || fail "could not start PostgreSQL (see above)"
out=$E2E_TMP/migrate.out
lite db migrate-to "$PG_URL" >"$out" 2>"$E2E_TMP/migrate.err" || {
  show "$E2E_TMP/migrate.err"
  fail "db migrate-to failed"
}
grep -q 'checksums verified' "$out" || {
  show "$out"
  fail "db migrate-to does not say it verified the copy"
}
tables=$(grep -cE '^[a-z_]+ +[0-9]+ +[0-9a-f]{16}$' "$out" || true)
[ "$tables" -ge 30 ] || {
  show "$out" 60
  fail "db migrate-to listed $tables tables (expected every table, 30 or more)"
}
ok "db migrate-to copied $tables tables: $(tail -2 "$out" | head -1)"
psqlq() { psql -XAtq "$PG_URL" -c "$1"; }
for q in "extensions:$n_ext" "ip_rules:$n_rules" "security_events:$n_events"; do
  t=${q%%:*} want=${q#*:}
  got=$(psqlq "SELECT count(*) FROM $t")
  [ "$got" = "$want" ] || fail "PostgreSQL holds $got rows in $t, SQLite $want"
done
note=$(psqlq "SELECT note FROM ip_rules WHERE net = '198.51.100.0/24'")
[ "$note" = "known scanner" ] || fail "the blacklist entry's note arrived as '$note'"
ok "PostgreSQL holds the same extensions, IP rules (with notes) and security events as SQLite"

rc=0
lite db migrate-to "$PG_URL" >"$E2E_TMP/again.out" 2>"$E2E_TMP/again.err" || rc=$?
[ "$rc" = 1 ] || fail "a second migrate-to into the same database exited $rc, expected 1"
grep -q 'not empty' "$E2E_TMP/again.err" || {
  show "$E2E_TMP/again.err"
  fail "the refusal of a non-empty target does not say it is not empty"
}
[ "$(psqlq "SELECT count(*) FROM extensions")" = "$n_ext" ] || fail "the refused migration changed the target"
ok "a second migration into the now non-empty database is refused: $(head -1 "$E2E_TMP/again.err")"
rc=0
lite db migrate-to "mysql://u:pw@h/db" >/dev/null 2>"$E2E_TMP/bad.err" || rc=$?
{ [ "$rc" = 1 ] && grep -q 'postgres://' "$E2E_TMP/bad.err"; } || fail "a non-PostgreSQL target was not refused clearly"

# A server on PostgreSQL, from a new data directory: the old passwords work.
pal_start "$E2E_TMP/data-pg" --database "$PG_URL" --listen "udp:$HOST:$port"
[ "$(reg 102 "$(cred 102 3)")" = 200 ] || fail "102 does not register with its old password on PostgreSQL"
before=$(psqlq "SELECT count(*) FROM security_events")
[ "$(reg 101 wrong-again)" != 200 ] || fail "a wrong password registered on PostgreSQL"
ok "a phone registers on the PostgreSQL server with its old password"
"$PALISADE_BIN" ext list --json --data "$E2E_TMP/cli" --database "$PG_URL" >"$E2E_TMP/ext-pg.json" ||
  fail "ext list on PostgreSQL"
python3 - "$E2E_TMP/ext-sqlite.json" "$E2E_TMP/ext-pg.json" <<'PY' || fail "ext list differs between SQLite and PostgreSQL"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
if a != b:
    sys.exit(f"SQLite: {a}\nPostgreSQL: {b}")
print(f"{len(a)} extensions, identical")
PY
ok "palisade ext list matches"
pal_stop
after=$(psqlq "SELECT count(*) FROM security_events")
[ "$after" -gt "$before" ] || fail "no new security event was stored on PostgreSQL after the migration ($before -> $after): ids collide?"
ok "new rows are stored after the copied ones ($before -> $after security events)"
