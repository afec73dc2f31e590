#!/usr/bin/env bash
# Trunks, outbound rules and DIDs written through the API and the console's Trunks & rules page
# (console_routing.py): add, change, remove each, a validation error each answered with the CLI's own message,
# the trunk password write-only (never in an answer, a page or the audit log), read tokens and viewers refused,
# every change audited, and the CLI sees what the API wrote.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 openssl

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip"
timeout 100 python3 "$E2E_DIR/console_routing.py" "$PAL_ADMIN_PORT" "$data" "$PALISADE_BIN" ||
  fail "console_routing.py failed"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
