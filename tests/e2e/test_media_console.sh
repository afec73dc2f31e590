#!/usr/bin/env bash
# Conference rooms, call recordings and music on hold in the REST API (/api/v1/conferences, /recordings, /moh) and the web
# console's Rooms & recordings page in headless Chromium (media_console.py), with real calls: 101's phone is a
# sipp UAS (its calls recorded: `recording set 101 always`) that 100 calls (sipp UAC), then 100 joins room 900
# (sipp UAC that stays until Palisade hangs it up) and is muted and kicked from the page. Screenshots go to the
# scratch directory (path printed; E2E_KEEP=1 keeps them).
# Ports: SIP from free_port in 26000-26099, palisade relay 26140-26199.
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 sipp sox
[ -x /usr/bin/chromium ] || fail "chromium missing: run scripts/install-deps.sh"
python3 -c 'import playwright' 2>/dev/null || fail "python3 playwright missing: run scripts/install-deps.sh"

RTP_LO=26140 RTP_HI=26199
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
shots=$E2E_TMP/screenshots
mkdir -p "$shots"
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 102"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
pal recording set 101 always >/dev/null || fail "recording set 101 always"
pal conference add 900 >/dev/null || fail "conference add 900"

base=$(free_port 12)
port=$base p101=$((base + 1)) p100=$((base + 6))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$p101" --bind "$p101") || fail "register 101: $r"
spawn "$E2E_TMP/uas.out" timeout -k 2 30 sipp -sf "$SCEN/call_uas_rtp.xml" -i "$HOST" -p "$p101" -mi "$HOST" \
  -mp $((p101 + 1)) -rtp_echo -m 1 -nostdin -timeout 25 -trace_err -error_file "$E2E_TMP/uas.err"
uas_pid=$BG_PID
sleep 0.5
printf 'SEQUENTIAL\n100;%s;%s;101\n' "$(cred 100 2)" "$(cred 100 3)" >"$E2E_TMP/call.csv"
# 2 s of a 1 kHz tone as G.711 u-law RTP from the caller (call_uac_rtp.xml plays g711.pcap from its directory)
sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 2 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$port" -sf "$SCEN/call_uac_rtp.xml" -inf "$E2E_TMP/call.csv" -i "$HOST" \
  -p "$p100" -mi "$HOST" -mp $((p100 + 1)) -m 1 -d 500 -nostdin -timeout 25 -trace_err -error_file "$E2E_TMP/call.err" \
  >"$E2E_TMP/call.out" 2>&1 </dev/null) || fail "the recorded call 100 -> 101 failed: $(tail -n 5 "$E2E_TMP/call.err")"
wait_exit "$uas_pid" 5 || fail "101's sipp did not finish its call"
for ((i = 0; i < 50; i++)); do
  [ "$(pal recording list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] && break
  sleep 0.1
done
[ "$(pal recording list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "no recording of the call 100 -> 101: $(pal recording list)"
ok "a recorded call 100 -> 101 (sipp both sides): one recording listed"

# 100 joins room 900 and stays until Palisade hangs it up (the kick on the page)
printf 'SEQUENTIAL\n100;%s;%s;900\n' "$(cred 100 2)" "$(cred 100 3)" >"$E2E_TMP/room.csv"
spawn "$E2E_TMP/room.out" timeout -k 2 90 sipp "$HOST:$port" -sf "$SCEN/pickup_caller.xml" -inf "$E2E_TMP/room.csv" \
  -i "$HOST" -p "$p100" -mi "$HOST" -mp $((p100 + 1)) -m 1 -nostdin -timeout 85 -trace_err \
  -error_file "$E2E_TMP/room.err"
room_pid=$BG_PID
for ((i = 0; i < 50; i++)); do
  [ "$(pal conference participants 900 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] && break
  sleep 0.2
done
[ "$(pal conference participants 900 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "100 is not in room 900: $(pal conference participants 900)"
ok "100 is in room 900"

timeout 100 python3 "$E2E_DIR/media_console.py" "$PAL_ADMIN_PORT" "$data" "$PALISADE_BIN" "$shots" ||
  fail "media_console.py failed (screenshots: $shots)"
log "screenshots: $shots"
wait_exit "$room_pid" 10 || fail "the caller kicked from room 900 did not see the call end"
wait "$room_pid" || fail "the room caller's sipp failed: $(tail -n 5 "$E2E_TMP/room.err")"
ok "the caller kicked on the page got Palisade's BYE"
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
