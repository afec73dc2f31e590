#!/usr/bin/env bash
# Logs for systemd and a SIEM (issue 18):
#   * `serve --syslog udp:127.0.0.1:PORT` with a small UDP listener (python) as the SIEM: 3 wrong passwords from
#     127.0.0.2 (auth_failures_before_ban 3) arrive as RFC 5424 messages (checked against the RFC's grammar):
#     facility authpriv, MSGID auth_failure and then ban, structured data palisade@32473 with kind, reason and
#     source; routine challenges are not sent;
#   * under systemd (JOURNAL_STREAM names the server's stderr) human log lines carry no timestamp and start with
#     a <N> priority journald understands (<6> info); with JOURNAL_STREAM naming another stream (a child with
#     redirected stderr), lines keep their timestamps.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26599}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 stat

data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add 600 --json >"$E2E_TMP/600.json" 2>/dev/null || fail "ext add 600"
auth_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["auth_id"])' "$E2E_TMP/600.json")
pal security set auth_failures_before_ban 3 >/dev/null || fail "security set"

# The SIEM: writes each datagram as one line of JSON-escaped text, for 30 s at most.
sport=$(free_port)
spawn "$E2E_TMP/siem.log" timeout -k 2 30 python3 -u -c '
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
with open(sys.argv[2], "a") as out:
    while True:
        data, _ = s.recvfrom(65535)
        out.write(json.dumps(data.decode("utf-8", "replace")) + "\n")
        out.flush()
' "$sport" "$E2E_TMP/siem.jsonl"
for ((i = 0; i < 50; i++)); do grep -q listening "$E2E_TMP/siem.log" 2>/dev/null && break; sleep 0.1; done

# Under systemd: JOURNAL_STREAM is DEVICE:INODE of the stream stderr is. pal_start writes stderr to
# $E2E_TMP/palisade.N.err: create it first so its inode is known (the redirection keeps the inode).
next_err=$E2E_TMP/palisade.$((PAL_N + 1)).err
: >"$next_err"
journal=$(stat -c '%d:%i' "$next_err")
port=$(free_port)
JOURNAL_STREAM=$journal pal_start "$data" --listen "udp:$HOST:$port" --syslog "udp:127.0.0.1:$sport"
grep -q '^<6>.*palisade ready' "$PAL_ERR" || {
  show "$PAL_ERR" 5
  fail "under systemd the ready line does not start with <6>"
}
if grep -qE '^(<[0-9]>)?[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$PAL_ERR"; then
  show "$PAL_ERR" 5
  fail "under systemd log lines still carry timestamps"
fi
ok "JOURNAL_STREAM names stderr: no timestamps, priority prefixes: $(grep -m1 'palisade ready' "$PAL_ERR")"

# A challenge alone (routine) must not reach the SIEM; 3 wrong passwords and the ban must.
timeout -k 2 20 python3 "$E2E_DIR/guard_client.py" "$HOST:$port" 127.0.0.2 auth 3 600 "$auth_id" WrongPassw0rd \
  >"$E2E_TMP/wrong.jsonl" || fail "guard_client"
for ((i = 0; i < 50; i++)); do
  [ "$(grep -c 'palisade@32473' "$E2E_TMP/siem.jsonl" 2>/dev/null || true)" -ge 4 ] && break
  sleep 0.1
done
python3 - "$E2E_TMP/siem.jsonl" <<'PY' || fail "syslog messages (see above)"
import json, re, sys
# RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG]
SD_PARAM = r'[^= \]"]{1,32}="(?:[^"\\\]]|\\["\\\]])*"'
SYSLOG = re.compile(
    r'^<(?P<pri>\d{1,3})>1 '
    r'(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) '
    r'(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<proc>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) '
    r'(?P<sd>\[(?P<sdid>[^= \]"]{1,32})((?: ' + SD_PARAM + r')*)\])(?: (?P<msg>.*))?$', re.S)
lines = [json.loads(l) for l in open(sys.argv[1])]
parsed = []
for l in lines:
    m = SYSLOG.match(l)
    if not m:
        sys.exit(f"not RFC 5424: {l!r}")
    params = dict(re.findall(r'([^= \]"]+)="((?:[^"\\\]]|\\["\\\]])*)"', m["sd"]))
    parsed.append((int(m["pri"]), m["msgid"], m["sdid"], params))
kinds = [p[1] for p in parsed]
if "auth_challenge" in kinds:
    sys.exit(f"routine challenges were sent: {kinds}")
fails = [p for p in parsed if p[1] == "auth_failure"]
bans = [p for p in parsed if p[1] == "ban"]
if len(fails) < 3 or not bans:
    sys.exit(f"expected 3 auth_failure and a ban, got {kinds}")
for pri, msgid, sdid, params in fails + bans:
    assert pri // 8 == 10, f"facility {pri // 8}, expected authpriv (10)"
    assert sdid == "palisade@32473", sdid
    assert params["kind"] == msgid and params["source"].startswith("127.0.0.2"), params
assert fails[0][3]["reason"] == "wrong_password", fails[0][3]
print(f"{len(parsed)} messages: {kinds}; first: {lines[0][:150]}")
PY
ok "SIEM got RFC 5424: $(head -c 200 "$E2E_TMP/siem.jsonl")"
no_panic
pal_stop

# A JOURNAL_STREAM that names another stream (inherited by a process whose stderr was redirected): timestamps.
JOURNAL_STREAM=1:1 pal_start "$data" --listen "udp:$HOST:$port"
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.*palisade ready' "$PAL_ERR" || {
  show "$PAL_ERR" 5
  fail "with JOURNAL_STREAM naming another stream the lines lost their timestamps"
}
ok "JOURNAL_STREAM naming another stream: timestamps kept"
pal_stop
