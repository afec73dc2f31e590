#!/usr/bin/env bash
# Phones in the REST API (/api/v1/phones: create, errors, list, show, reprovision, remove, audit) and on the web
# console's Phones page in headless Chromium (prov_console.py): add a phone, see its URL once and fetch from it,
# show, reprovision, remove. Screenshots go to the scratch directory (path printed; E2E_KEEP=1 keeps them).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3
[ -x /usr/bin/chromium ] || fail "chromium missing: run scripts/install-deps.sh"
python3 -c 'import playwright' 2>/dev/null || fail "python3 playwright missing: run scripts/install-deps.sh"

data=$E2E_TMP/data
shots=$E2E_TMP/screenshots
mkdir -p "$shots"
sip=$(free_port 2)
pal_start "$data" --listen "udp:$HOST:$sip" --listen "tls:$HOST:$((sip + 1))"
timeout 100 python3 "$E2E_DIR/prov_console.py" "$PAL_ADMIN_PORT" "$data" "$PALISADE_BIN" "$shots" ||
  fail "prov_console.py failed (screenshots: $shots)"
log "screenshots: $shots"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
