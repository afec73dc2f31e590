#!/usr/bin/env bash
# Backups in the API and the console (console_backups.py): back up now, list (a scheduled archive included),
# download — and `palisade restore` of the downloaded file into a fresh directory succeeds —, upload an archive
# (checked with restore's own code, kept, the exact restore command shown and working), a corrupted or foreign
# upload refused with a clear message and nothing kept; read-scope tokens and viewer accounts may not download or
# create; every action in the audit log.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 openssl

data=$E2E_TMP/data
sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip"
timeout 100 python3 "$E2E_DIR/console_backups.py" "$PAL_ADMIN_PORT" "$data" "$PALISADE_BIN" "$E2E_TMP" ||
  fail "console_backups.py failed"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
