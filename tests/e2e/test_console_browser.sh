#!/usr/bin/env bash
# The web console in headless Chromium (console_browser.py, Playwright with Debian's chromium): TOTP login, an
# extension added from the console and registered by sipp, a ban that SIP obeys and an unban, a baresip call
# shown live on the dashboard, CDR CSV export, logout, and five wrong passwords banning the browser's source from
# the console but not from SIP. Screenshots of each page are written to the scratch directory (path printed;
# E2E_KEEP=1 keeps them).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need python3 sipp baresip
[ -x /usr/bin/chromium ] || fail "chromium missing: run scripts/install-deps.sh"
python3 -c 'import playwright' 2>/dev/null || fail "python3 playwright missing: run scripts/install-deps.sh"

data=$E2E_TMP/data
shots=$E2E_TMP/screenshots
mkdir -p "$shots"
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }

sip=$(free_port)
pal_start "$data" --listen "udp:$HOST:$sip" --rtp-ports 31000-31499

# Two phones: A (100) calls, B (101) answers.
sa=$(free_port 3)
sb=$(free_port 3)
baresip_conf "$E2E_TMP/a" "$sa" $((sa + 2)) 31500 31519 440 \
  "<sip:100@$HOST:$sip;transport=udp>;auth_user=$(cred 100 2);auth_pass=$(cred 100 3);regint=600"
baresip_conf "$E2E_TMP/b" "$sb" $((sb + 2)) 31520 31539 880 \
  "<sip:101@$HOST:$sip;transport=udp>;auth_user=$(cred 101 2);auth_pass=$(cred 101 3);answermode=auto;regint=600"
spawn "$E2E_TMP/b.log" timeout -k 2 100 baresip -f "$E2E_TMP/b" -t 95
spawn "$E2E_TMP/a.log" timeout -k 2 100 baresip -f "$E2E_TMP/a" -t 95
for ((i = 0; i < 100; i++)); do
  grep -q "100@$HOST: {0/UDP/v4} 200 OK" "$E2E_TMP/a.log" && grep -q "101@$HOST: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log" && break
  sleep 0.1
done
grep -q "101@$HOST: {0/UDP/v4} 200 OK" "$E2E_TMP/b.log" || fail "baresip 101 did not register"
ok "baresip 100 and 101 registered"

log "screenshots: $shots"
timeout 110 python3 "$E2E_DIR/console_browser.py" "$PAL_ADMIN_PORT" "$sip" "$data" "$PALISADE_BIN" "$shots" \
  "$(free_port)" $((sa + 2)) "$E2E_DIR/scenarios/reg_auth.xml" || fail "console_browser.py failed (screenshots: $shots)"
log "screenshots: $shots"
no_panic
pal_stop
