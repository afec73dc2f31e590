#!/usr/bin/env bash
# Issue 12 item 15: RFC 4475 §3.1.2.13 unksm2 — a REGISTER whose To is not a SIP or SIPS URI (To: isbn:…) gets
# 400 before any challenge (the RFC's expected answer; it reveals nothing about extensions). The torture
# message's bytes (crates/sip/tests/rfc4475/unksm2.dat) go over UDP with only the Via sent-by changed to the
# sending socket (so the answer can come back); the answer must be 400 without WWW-Authenticate, and no
# security event is written. Control: the same bytes with a SIP To (sip:100@example.com) are challenged (401).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26799}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 ss

TORTURE=$REPO_ROOT/crates/sip/tests/rfc4475/unksm2.dat
[ -r "$TORTURE" ] || fail "missing $TORTURE"
data=$E2E_TMP/data
port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# send_torture TO_LINE -> "STATUS-LINE|header names" of the answer (TO_LINE replaces the To header when given)
send_torture() {
  timeout -k 2 10 python3 - "$TORTURE" "$HOST" "$port" "$1" <<'PY'
import socket, sys
path, host, port, to = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
raw = open(path, "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, 0))
s.settimeout(3)
# only the Via sent-by changes: the answer goes there
raw = raw.replace(b"192.0.2.21:5060", ("%s:%d" % s.getsockname()).encode())
if to:
    raw = raw.replace(b"To: isbn:2983792873", to.encode())
s.sendto(raw, (host, port))
data, _ = s.recvfrom(65535)
head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
names = [line.split(":", 1)[0].strip() for line in head[1:]]
print(head[0] + "|" + ",".join(names))
PY
}

# ---- 1. the torture message: 400, no challenge, no event
r=$(send_torture "") || fail "no answer to unksm2"
case $r in "SIP/2.0 400 "*) ;; *) fail "unksm2: expected a 400, got: $r" ;; esac
case ${r#*|} in *WWW-Authenticate*) fail "unksm2: the 400 carries a challenge: $r" ;; esac
sleep 1 # events are written behind (0.5 s)
ev=$("$PALISADE_BIN" events --json --limit 100 --data "$data")
[ "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$ev")" = 0 ] ||
  fail "unksm2 left security events: $ev"
ok "unksm2 (To: isbn:2983792873): ${r%%|*} (headers: ${r#*|}); no security event"

# ---- 2. control: the same bytes with a SIP To are challenged
r=$(send_torture "To: <sip:100@example.com>") || fail "no answer to unksm2 with a SIP To"
case $r in "SIP/2.0 401 "*) ;; *) fail "unksm2 with a SIP To: expected a 401, got: $r" ;; esac
case ${r#*|} in *WWW-Authenticate*) ;; *) fail "the 401 has no WWW-Authenticate: $r" ;; esac
ok "control, To: <sip:100@example.com>: ${r%%|*}"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
