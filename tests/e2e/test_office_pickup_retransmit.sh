#!/usr/bin/env bash
# The 200 OK Palisade sends a phone that picks up a ringing call (`*8`) is retransmitted over UDP until that phone's
# ACK (RFC 3261 13.3.1.4), like every other 2xx Palisade answers an INVITE with:
#   * 101's phone is a sipp UAS that rings and never answers; 100 (sipp UAC) calls 101;
#   * 102 (sipp UAC) dials *8 and treats the first 200 as lost: no ACK for 1.8 s. Its message log must show the
#     200 again (T1 = 0.5 s, then 1 s later: 2 or 3 copies in all) and no copy after its ACK (2.5 s more);
#   * the call goes on: `palisade calls` shows 100 -> 102 talking while 102 waits; 102 hangs up, the caller gets
#     the BYE, 101's phone got the CANCEL. Without the retransmission the picker would see a single 200.
# Ports: signalling 26000-26099 (free_port), relay 26100-26139.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3

RTP_LO=26100 RTP_HI=26139
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 102"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }

# palisade, then three sipp agents, each with its SIP port and the four media ports sipp binds from -mp.
base=$(free_port 16)
port=$base p101=$((base + 1)) p100=$((base + 6)) p102=$((base + 11))
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$p101" --bind "$p101") || fail "register 101: $r"
[ "$(jget "$r" 'r["final"]')" = 200 ] || fail "register 101: $r"
spawn "$E2E_TMP/ring.out" timeout -k 2 40 sipp -sf "$SCEN/call_uas_ring.xml" -i "$HOST" -p "$p101" -mi "$HOST" \
  -mp $((p101 + 1)) -m 1 -nostdin -timeout 35 -trace_msg -message_file "$E2E_TMP/ring.msg" -trace_err \
  -error_file "$E2E_TMP/ring.err"
ring_pid=$BG_PID
sleep 0.5
alive "$ring_pid" || fail "sipp UAS for 101 did not start: $(cat "$E2E_TMP/ring.out")"

# uac NAME SCENARIO NUMBER CALLED PORT: one sipp call from extension NUMBER (background: PID in UAC_PID)
uac() {
  printf 'SEQUENTIAL\n%s;%s;%s;%s\n' "$3" "$(cred "$3" 2)" "$(cred "$3" 3)" "$4" >"$E2E_TMP/$1.csv"
  spawn "$E2E_TMP/$1.out" timeout -k 2 40 sipp "$HOST:$port" -sf "$SCEN/$2" -inf "$E2E_TMP/$1.csv" -i "$HOST" \
    -p "$5" -mi "$HOST" -mp $(($5 + 1)) -m 1 -nostdin -timeout 35 -recv_timeout 20000 -trace_msg \
    -message_file "$E2E_TMP/$1.msg" -trace_err -error_file "$E2E_TMP/$1.err"
  UAC_PID=$BG_PID
}
# done_ok NAME PID SECONDS: sipp ran its call to the end with success
done_ok() {
  local rc=0
  wait_exit "$2" "$3" || fail "sipp $1 did not finish: $(tail -5 "$E2E_TMP/$1.msg")"
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$1.msg" 60
    show "$E2E_TMP/$1.err" 10
    fail "sipp $1 exited $rc (scenario not completed)"
  }
}
calls() { jget "$(pal calls --json)" 'sorted((x["caller"], x["callee"], x["state"]) for x in r)'; }
wait_calls() { # EXPECTED SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ "$(calls)" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

uac caller pickup_caller.xml 100 101 "$p100"
caller_pid=$UAC_PID
wait_calls "[('100', '101', 'ringing')]" 10 || fail "100 -> 101 does not ring: $(calls)"
ok "100 calls 101; 101's phone (sipp) rings"

uac picker pickup_picker_late_ack.xml 102 '*8' "$p102"
picker_pid=$UAC_PID
wait_calls "[('100', '102', 'talking')]" 5 || fail "*8 did not take the call: $(calls)"
ok "102 dialled *8 and took the call (100 -> 102 talking)"
done_ok picker "$picker_pid" 15
done_ok caller "$caller_pid" 5
done_ok ring "$ring_pid" 5

# The 200s to the picker's INVITE (CSeq 2) in its message log, each with the time sipp received it.
copies=$(python3 - "$E2E_TMP/picker.msg" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
n = 0
for block in text.split("-----------------------------------------------")[1:]:
    if "message received" not in block:
        continue
    body = block.split("\n\n", 1)[-1].lstrip("\n")
    if body.startswith("SIP/2.0 200") and re.search(r"^CSeq: *2 INVITE", body, re.M | re.I):
        n += 1
print(n)
PY
)
if [ "$copies" -lt 2 ] || [ "$copies" -gt 3 ]; then
  show "$E2E_TMP/picker.msg" 80
  fail "the picker received the 200 OK $copies time(s) (want 2-3: sent again until the ACK, not after)"
fi
ok "the picker, silent for 1.8 s, received the 200 OK $copies times; none after its ACK; the call ended normally"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
