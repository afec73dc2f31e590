#!/usr/bin/env bash
# Session bodies that are not plain SDP (issue 12 item 10):
#   * sipp (scenarios/call_uac_multipart.xml) calls 101 with a multipart/mixed INVITE shaped like RFC 4475's
#     mpart01: an SDP part naming 127.0.0.99 with an a=crypto key, and an ISUP part. The call is answered, and the
#     INVITE the callee (a sipp UAS) receives is plain application/sdp pointed at the relay: no 127.0.0.99, no
#     key, no ISUP part, no boundary (the SDP part was rewritten, the rest dropped);
#   * an INVITE whose body is application/x-palisade-test (scenarios/call_uac_unknown_body.xml) gets 415 with
#     Accept: application/sdp, and the callee sees nothing of it;
#   * the answer too: 102 (a sipp UAS made from call_uas_rtp.xml here) answers with a multipart/mixed 200 (an SDP part
#     naming 127.0.0.98, an ISUP part): the caller's 200 is plain application/sdp toward the relay, without 127.0.0.98,
#     the ISUP part or the boundary;
#   * a plain SDP call (call_client.py) still gets 200 and its BYE 200.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3

RTP_LO=40400 RTP_HI=40499
SCEN=$E2E_DIR/scenarios
CLIENT=$E2E_DIR/call_client.py
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 101 102 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 101 102"
"$PALISADE_BIN" ext add-range 200 200 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >>"$csv" ||
  fail "ext add-range 200 200"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; }
{
  echo SEQUENTIAL
  echo "200;$(cred 200 2);$(cred 200 3);101"
} >"$E2E_TMP/calls.csv"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

# The callee: 101 registered from the UAS's port; it logs every message it receives (-trace_msg).
ublock=$(free_port 6)
uport=$ublock umedia=$((ublock + 2))
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 101 "$(cred 101 2)" "$(cred 101 3)" \
  --contact "$HOST:$uport" --bind "$uport") || fail "register 101: $r"
case $r in *'"final": 200'*) ;; *) fail "register 101 -> $HOST:$uport: $r" ;; esac
mkdir -p "$E2E_TMP/uas"
spawn "$E2E_TMP/uas.out" bash -c "cd '$E2E_TMP/uas' && exec timeout -k 2 40 sipp -sf '$SCEN/call_uas_rtp.xml' \
  -i $HOST -p $uport -mi $HOST -mp $umedia -m 2 -nostdin -timeout 35 -trace_msg -message_file uas.msg"
upid=$BG_PID
sleep 0.5
alive "$upid" || {
  show "$E2E_TMP/uas.out"
  fail "sipp UAS did not start"
}

uac() { # scenario name
  local block rc=0
  block=$(free_port 6)
  (cd "$E2E_TMP" && exec timeout -k 2 20 sipp "$HOST:$port" -sf "$SCEN/$1.xml" -inf calls.csv -i "$HOST" \
    -p "$block" -mi "$HOST" -mp $((block + 2)) -m 1 -nostdin -timeout 15 -recv_timeout 8000 \
    -trace_msg -message_file "$1.msg" >"$E2E_TMP/$1.out" 2>&1 </dev/null) || rc=$?
  return "$rc"
}

# The attack on the other leg's privacy first: an unknown body type is refused, a multipart one rewritten.
uac call_uac_unknown_body || {
  show "$E2E_TMP/call_uac_unknown_body.out" 20
  show "$E2E_TMP/call_uac_unknown_body.msg" 40
  fail "INVITE with an application/x-palisade-test body: no 415 with Accept: application/sdp"
}
grep -q '^Accept: application/sdp' "$E2E_TMP/call_uac_unknown_body.msg" || fail "the 415 has no 'Accept: application/sdp'"
ok "INVITE with an application/x-palisade-test body: 415 with Accept: application/sdp"

uac call_uac_multipart || {
  show "$E2E_TMP/call_uac_multipart.out" 20
  show "$PAL_ERR" 20
  fail "the multipart INVITE call did not complete (INVITE, 407, INVITE, 200, ACK, BYE 200)"
}
ok "multipart/mixed INVITE (SDP + ISUP parts): answered, BYE 200"

# What the callee received: one INVITE (the 415 one never reached it), plain SDP toward the relay.
msgs=$E2E_TMP/uas/uas.msg
[ -s "$msgs" ] || fail "the UAS logged no message"
n=$(grep -c '^INVITE sip:' "$msgs" || true)
[ "$n" = 1 ] || fail "the callee received $n INVITEs (want 1: the 415 one must not reach it)"
for leak in 127.0.0.99 'a=crypto' ISUP unique-boundary multipart x-palisade-test; do
  if grep -qi -- "$leak" "$msgs"; then
    grep -n -i -- "$leak" "$msgs" | head -5 >&2
    fail "the callee saw '$leak' from the caller's body"
  fi
done
grep -qi '^Content-Type: application/sdp' "$msgs" || fail "the callee's INVITE is not application/sdp"
grep -q "^c=IN IP4 $HOST" "$msgs" || fail "the callee's SDP does not point at the relay ($HOST)"
ok "the callee got plain application/sdp toward the relay: no 127.0.0.99, no key, no ISUP part, no boundary"

# A multipart answer: 102 answers with an SDP part (127.0.0.98) and an ISUP part.
python3 - "$SCEN/call_uas_rtp.xml" "$E2E_TMP/uas_multipart.xml" <<'PY'
import sys
s = open(sys.argv[1]).read()
old = """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 2 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
"""
new = """      Content-Type: multipart/mixed;boundary=answer-boundary-7
      MIME-Version: 1.0
      Content-Length: [len]

      --answer-boundary-7
      Content-Type: application/sdp

      v=0
      o=- 2 2 IN IP4 127.0.0.98
      s=-
      c=IN IP4 127.0.0.98
"""
assert old in s
s = s.replace(old, new).replace("""      a=sendrecv

    ]]>""", """      a=sendrecv

      --answer-boundary-7
      Content-Type: application/ISUP; version=nxv3; base=etsi121

      ISUP-ANSWER-FROM-127.0.0.98
      --answer-boundary-7--

    ]]>""", 1)
open(sys.argv[2], "w").write(s)
PY
rblock=$(free_port 6)
r=$(timeout -k 2 10 python3 "$CLIENT" register "$HOST:$port" 102 "$(cred 102 2)" "$(cred 102 3)" \
  --contact "$HOST:$rblock" --bind "$rblock") || fail "register 102: $r"
case $r in *'"final": 200'*) ;; *) fail "register 102 -> $HOST:$rblock: $r" ;; esac
spawn "$E2E_TMP/uas2.out" timeout -k 2 30 sipp -sf "$E2E_TMP/uas_multipart.xml" -i "$HOST" -p "$rblock" \
  -mi "$HOST" -mp $((rblock + 2)) -m 1 -nostdin -timeout 25
sleep 0.5
sed -i 's/;101$/;102/' "$E2E_TMP/calls.csv"
rm -f "$E2E_TMP/call_uac_multipart.msg"
uac call_uac_multipart || {
  show "$E2E_TMP/call_uac_multipart.out" 20
  show "$PAL_ERR" 20
  fail "the call to 102 (multipart answer) did not complete"
}
# What the caller received (sipp logs what it sent too: keep the "message received" blocks only).
awk '/^-----/ { rx = 0 } /message received/ { rx = 1 } rx' "$E2E_TMP/call_uac_multipart.msg" >"$E2E_TMP/caller_rx.msg"
answer=$(sed -n '/^SIP\/2.0 200/,/^a=sendrecv/p' "$E2E_TMP/caller_rx.msg" | grep -v '^$' || true)
grep -q 'CSeq: 2 INVITE' <<<"$answer" || fail "no 200 to the INVITE in the caller's log"
for leak in 127.0.0.98 ISUP answer-boundary multipart; do
  if grep -qi -- "$leak" "$E2E_TMP/caller_rx.msg"; then
    grep -n -i -- "$leak" "$E2E_TMP/caller_rx.msg" | head -5 >&2
    fail "the caller saw '$leak' from the callee's multipart answer"
  fi
done
grep -qi '^Content-Type: application/sdp' <<<"$answer" || fail "the caller's 200 is not application/sdp: $answer"
ok "multipart/mixed 200 from the callee: the caller got plain application/sdp, without 127.0.0.98, the ISUP part or the boundary"

# The legitimate plain SDP call still works.
r=$(timeout -k 2 20 python3 "$CLIENT" call "$HOST:$port" 200 "$(cred 200 2)" "$(cred 200 3)" 101) || fail "plain call: $r"
case $r in *'"final": 200'*'"bye": 200'*) ;; *) fail "plain SDP call: $r" ;; esac
ok "a plain SDP call: 200, BYE 200"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
