#!/usr/bin/env bash
# Ring groups and call queues through the REST API (office_api.py): add, show, change (only the fields given),
# remove, queue statistics, validation errors answered with the CLI's own messages, read tokens refused, every
# change audited, and the CLI sees what the API wrote.
set -euo pipefail
export E2E_PORT_MIN=26400 E2E_PORT_MAX=26499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 openssl

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip"
timeout 100 python3 "$E2E_DIR/office_api.py" "$PAL_ADMIN_PORT" "$data" "$PALISADE_BIN" ||
  fail "office_api.py failed"
ok "ring groups and queues through the API"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
