#!/usr/bin/env bash
# A registrar that does not tell scanners which extensions exist: reg_client.py (a small Python
# REGISTER client computing the RFC 7616 MD5 qop=auth digest itself) answers palisade's 401 with
#   - the right password of an enabled extension      -> 200 (proves the client's digest is right);
#   - a wrong password                                -> 401 again, event auth_failure/wrong_password;
#   - the right password of a disabled extension      -> 401 again, event auth_failure/disabled;
#   - an auth ID that does not exist                  -> 401 again, event auth_failure/unknown_user.
# The three refusals must look the same on the wire: same status line, same header names in the
# same order, same WWW-Authenticate parameters (realm, algorithm, qop) and a nonce of the same
# length; each nonce must be fresh (differ from the challenge it answered). Over UDP and TCP.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 ss

data=$E2E_TMP/data
client=$E2E_DIR/reg_client.py
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

pal ext add 301 --json >"$E2E_TMP/301.json" || fail "ext add 301"
pal ext add 302 --json >"$E2E_TMP/302.json" || fail "ext add 302"
pal ext set 302 --enabled false >/dev/null || fail "ext set 302 --enabled false"
id1=$(field "$E2E_TMP/301.json" auth_id)
pw1=$(field "$E2E_TMP/301.json" password)
id2=$(field "$E2E_TMP/302.json" auth_id)
pw2=$(field "$E2E_TMP/302.json" password)

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port"

# reg() NAME TRANSPORT NUMBER AUTH_ID PASSWORD -> $E2E_TMP/NAME.json; prints the final status code
reg() {
  local name=$1 rc=0
  shift
  timeout -k 2 15 python3 "$client" "$HOST:$port" "$@" >"$E2E_TMP/$name.json" 2>"$E2E_TMP/$name.err" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$name.json"
    show "$E2E_TMP/$name.err"
    fail "reg_client $name ($1): exit $rc"
  }
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("final", d["challenge"])["code"])' \
    "$E2E_TMP/$name.json"
}

for tp in udp tcp; do
  code=$(reg "good-$tp" "$tp" 301 "$id1" "$pw1")
  [ "$code" = 200 ] || fail "$tp: the right password of extension 301 got $code, expected 200"
  code=$(reg "wrong-$tp" "$tp" 301 "$id1" "${pw1}x")
  [ "$code" = 401 ] || fail "$tp: a wrong password got $code, expected 401"
  code=$(reg "disabled-$tp" "$tp" 302 "$id2" "$pw2")
  [ "$code" = 401 ] || fail "$tp: the disabled extension 302 with its right password got $code, expected 401"
  code=$(reg "unknown-$tp" "$tp" 399 nosuchuser7 "Qw3rtyUiop5")
  [ "$code" = 401 ] || fail "$tp: an unknown auth ID got $code, expected 401"
  ok "$tp: right password -> 200; wrong password, disabled extension, unknown user -> 401"

  # The three refusals must be indistinguishable apart from per-request values.
  python3 - "$E2E_TMP/wrong-$tp.json" "$E2E_TMP/disabled-$tp.json" "$E2E_TMP/unknown-$tp.json" <<'PY' ||
import json, sys
answers = []
for path in sys.argv[1:]:
    d = json.load(open(path))
    ch, fin = d["challenge"], d["final"]
    wa = fin.get("www_authenticate")
    if not wa or "nonce" not in wa:
        sys.exit(f"{path}: the 401 has no WWW-Authenticate nonce: {fin}")
    if wa["nonce"] == ch["www_authenticate"]["nonce"]:
        sys.exit(f"{path}: the second 401 repeats the nonce of the first (no fresh nonce)")
    params = {k: v for k, v in wa.items() if k != "nonce"}
    answers.append((path, fin["status"], fin["header_names"], params, len(wa["nonce"])))
ref = answers[0]
for a in answers[1:]:
    for i, what in [(1, "status line"), (2, "header names"), (3, "WWW-Authenticate parameters"), (4, "nonce length")]:
        if a[i] != ref[i]:
            sys.exit(f"{what} differ: {ref[0]}: {ref[i]!r} vs {a[0]}: {a[i]!r}")
print(f"{ref[1]}; headers {','.join(ref[2])}; nonce length {ref[4]}")
PY
    fail "$tp: the three 401 answers differ (see above)"
  ok "$tp: wrong password, disabled and unknown user get identical 401s (status, header names, nonce length)"
done

# The security log names each refusal's reason (events are written behind: poll up to 3 s).
check_events() {
  pal events --kind auth_failure --json 2>/dev/null | python3 -c '
import json, sys
ev = json.load(sys.stdin)
want = {"wrong_password": sys.argv[1], "disabled": sys.argv[2], "unknown_user": "nosuchuser7"}
missing = [f"{r} (user {u})" for r, u in want.items()
           if sum(1 for e in ev if e["kind"] == "auth_failure" and e["reason"] == r and e["user"] == u) < 2]
if missing:
    have = [(e["reason"], e["user"]) for e in ev]
    sys.exit("missing auth_failure events: " + ", ".join(missing) + f"; have {have}")
' "$id1" "$id2"
}
for ((i = 0; i < 30; i++)); do
  check_events 2>/dev/null && break
  sleep 0.1
done
check_events || fail "security events: see above"
ok "auth_failure events: wrong_password, disabled, unknown_user (2 each, UDP and TCP)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
