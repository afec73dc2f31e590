#!/usr/bin/env bash
# One node on PostgreSQL (issue 17, first milestone): the test starts a throwaway PostgreSQL (pg_lib.sh),
# `palisade ext add-range --database URL` creates 3 extensions in it, `palisade serve --database URL` runs on it
# and sipp (scenarios/reg_auth.xml) registers the 3 over UDP. Then:
#   * the registrations are rows in PostgreSQL (psql), and no SQLite database was created in the data directory;
#   * a second start on a new, empty data directory with PALISADE_DATABASE (the environment variable) loads the
#     3 registrations and answers an authenticated REGISTER query with the contact sipp registered: everything
#     came from PostgreSQL.
#   * a URL that is not postgres:// is refused with a message saying what to write, without a password.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/pg_lib.sh
. "$E2E_DIR/pg_lib.sh"
need sipp python3 ss psql
trap 'e2e_cleanup; pg_stop' EXIT

pg_start "$(free_port)" || fail "could not start PostgreSQL (see above)"
log "PostgreSQL at $PG_URL"

N=3
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 400 $((400 + N - 1)) --data "$data" --database "$PG_URL" >"$csv" 2>"$E2E_TMP/add.err" || {
  show "$E2E_TMP/add.err"
  fail "ext add-range --database"
}
exts=$(psql -XAtq "$PG_URL" -c "SELECT count(*) FROM extensions")
[ "$exts" = "$N" ] || fail "PostgreSQL holds $exts extensions after ext add-range, expected $N"
ok "ext add-range --database wrote $N extensions into PostgreSQL"
inf=$E2E_TMP/reg.inf
{
  echo SEQUENTIAL
  tail -n +2 "$csv" | tr ',' ';'
} >"$inf"

port=$(free_port)
pal_start "$data" --database "$PG_URL" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"
grep -q 'store on PostgreSQL' "$PAL_ERR" || {
  show "$PAL_ERR"
  fail "the server does not log that its store is on PostgreSQL"
}

lport=$(free_port)
rc=0
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$E2E_DIR/scenarios/reg_auth.xml" \
  -inf "$inf" -t u1 -i "$HOST" -p "$lport" -m "$N" -r 10 -nostdin -timeout 20 -timeout_error -max_retrans 3 \
  -trace_stat -stf "$E2E_TMP/sipp.csv" -trace_err -error_file "$E2E_TMP/sipp.err" \
  >"$E2E_TMP/sipp.out" 2>&1 </dev/null) || rc=$?
okc=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i; next} {v=$k} END{print v+0}' "$E2E_TMP/sipp.csv" 2>/dev/null || echo 0)
if [ "$rc" != 0 ] || [ "$okc" != "$N" ]; then
  show "$E2E_TMP/sipp.err" 30
  show "$PAL_ERR" 30
  fail "sipp registered $okc of $N (exit $rc)"
fi
ok "sipp registered $N extensions against the node on PostgreSQL"

# Registrations are written behind (batched); SIGTERM flushes them.
pal_stop
regs=$(psql -XAtq "$PG_URL" -c "SELECT count(*) FROM registrations WHERE contact_uri LIKE '%$HOST:$lport%'")
[ "$regs" = "$N" ] || fail "PostgreSQL holds $regs registrations with contact $HOST:$lport, expected $N"
ok "the $N registrations are rows in PostgreSQL"
[ ! -e "$data/palisade.db" ] || fail "a SQLite database was created in $data although --database named PostgreSQL"
ok "no SQLite database in the data directory"

# A new node on an empty data directory, configured by the environment only, sees the same state.
data2=$E2E_TMP/data2
PALISADE_DATABASE=$PG_URL pal_start "$data2" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"
loaded=$(grep -o 'registrations=[0-9]*' "$PAL_ERR" | head -1 | cut -d= -f2)
if [ -z "$loaded" ] || [ "$loaded" -lt "$N" ]; then
  show "$PAL_ERR"
  fail "second node: the log says registrations=${loaded:-?}, expected $N"
fi
IFS=, read -r number auth_id password _pin < <(tail -n +2 "$csv" | head -1)
out=$E2E_TMP/query.json
timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$port" udp "$number" "$auth_id" "$password" --query \
  >"$out" 2>&1 || fail "reg_client --query $number failed: $(cat "$out")"
python3 - "$out" "$number@$HOST:$lport" <<'PY' || fail "REGISTER query for $number on the second node (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
fin = d.get("final", d["challenge"])
if fin["code"] != 200:
    sys.exit(f"query got {fin['status']}, expected 200")
contacts = [v for k, v in fin["headers"] if k.lower() in ("contact", "m")]
if not any(sys.argv[2] in c for c in contacts):
    sys.exit(f"the 200 lists {contacts}, not the contact sip:{sys.argv[2]} registered on the first node")
print(f"{fin['status']}; Contact: {'; '.join(contacts)}")
PY
ok "a node on an empty data directory with PALISADE_DATABASE authenticates and knows the registrations (registrations=$loaded)"
no_panic
pal_stop

# A database that is not a postgres:// URL is refused, and the password is not echoed.
rc=0
"$PALISADE_BIN" serve --data "$E2E_TMP/data3" --database "mysql://u:s3cretpw@h/db" --listen "udp:$HOST:$port" \
  >"$E2E_TMP/bad.out" 2>"$E2E_TMP/bad.err" </dev/null || rc=$?
[ "$rc" != 0 ] || fail "serve accepted --database mysql://…"
grep -q 'expected postgres://' "$E2E_TMP/bad.err" || {
  show "$E2E_TMP/bad.err"
  fail "the refusal of a non-PostgreSQL URL does not say what to write"
}
if grep -q 's3cretpw' "$E2E_TMP/bad.err"; then fail "the refusal echoes the URL's password"; fi
ok "a non-PostgreSQL URL is refused with the expected form, password hidden"
