#!/usr/bin/env bash
# The console's security model (console_security.py): no page or API answers without a session or token; cookie
# flags; login with TOTP, a forced 2FA enrolment, CSRF and role checks, logout; five wrong passwords ban the
# source from the console but not from SIP (and a SIP ban does not lock the console); then, restarted with
# admin_networks = ["127.0.0.2/32"], a client from 127.0.0.1 is refused before TLS while 127.0.0.2 is served.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 openssl

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip"
timeout 100 python3 "$E2E_DIR/console_security.py" "$PAL_ADMIN_PORT" "$sip" "$data" "$PALISADE_BIN" ||
  fail "console_security.py failed"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"

# admin_networks: only 127.0.0.2 may connect; the console listens on all of 127.0.0.0/8.
printf 'admin_networks = ["127.0.0.2/32"]\n' >>"$data/palisade.toml"
aport=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip" --admin-listen "0.0.0.0:$aport"
python3 - "$aport" <<'PY' || fail "admin_networks not enforced"
import sys
sys.path.insert(0, "tests/e2e")
from console_client import Client, refused
port = int(sys.argv[1])
assert refused("127.0.0.1", port, "127.0.0.1"), "127.0.0.1 (outside admin_networks) got a TLS handshake"
res, _ = Client("127.0.0.2", port, source="127.0.0.2").request("GET", "/login")
assert res.status == 200, res.status
print("ok   127.0.0.1 refused before TLS; 127.0.0.2 served")
PY
# Not even plain HTTP gets an answer from outside admin_networks.
out=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/" || true)
[ "$out" = 000 ] || fail "plain HTTP from outside admin_networks answered $out"
ok "admin_networks enforced before TLS and before the HTTP redirect"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
