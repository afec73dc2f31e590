#!/usr/bin/env bash
# Issue 12 item 6: requests that match nothing, and requests without credentials, create no transaction state.
#   * the attack, from 127.0.0.70: 4,000 CANCELs that match no INVITE and 4,000 INVITEs without credentials
#     (each a new transaction; a python UDP client, 2,000 requests/s; the flood tiers and the unanswered-
#     challenge limit raised so that the guard does not cut it short): every CANCEL is answered 481 and every
#     INVITE 407, and the `service state` log line (written every 5 s when something changed) never shows more
#     than 50 server transactions (before the fix, each CANCEL stayed 32 s: about 4,000);
#   * the legitimate use: extension 100 registers (401, 200) from 127.0.0.71 (no transaction kept: issue 16), then
#     calls itself with credentials, and the state line shows that INVITE's one server transaction: the count is
#     real.
# Ports: 26960-27039.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26960 E2E_PORT_MAX=27039
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq ss

data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add 100 --json >"$E2E_TMP/ext.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext.json")
password=$(jq -r .password "$E2E_TMP/ext.json")
pal security set flood_red_pps 200000 >/dev/null || fail "security set flood_red_pps"
pal security set flood_amber_pps 100000 >/dev/null || fail "security set flood_amber_pps"
pal security set unanswered_challenges_before_ban 1000000 >/dev/null || fail "security set unanswered_challenges_before_ban"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

# most server transactions any `service state` line showed so far
max_tx() {
  grep -ho 'service state.*' "$PAL_OUT" "$PAL_ERR" | sed -n 's/.*server_transactions=\([0-9]*\).*/\1/p' |
    sort -n | tail -1
}
last_tx() {
  grep -ho 'service state.*' "$PAL_OUT" "$PAL_ERR" | sed -n 's/.*server_transactions=\([0-9]*\).*/\1/p' | tail -1
}

timeout -k 2 60 python3 - "$HOST" "$port" 127.0.0.70 >"$E2E_TMP/flood.json" <<'EOF' || fail "flood client"
import json, os, socket, sys, time
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.setblocking(False)
lport = s.getsockname()[1]
codes = {}
def drain():
    while True:
        try:
            raw = s.recv(65535)
        except BlockingIOError:
            return
        code = raw.split(b" ", 2)[1].decode()
        codes[code] = codes.get(code, 0) + 1
def req(method, i):
    b = os.urandom(6).hex()
    sdp = ""
    extra = ""
    if method == "INVITE":
        sdp = f"v=0\r\no=- 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
        extra = f"Contact: <sip:100@{src}:{lport}>\r\nContent-Type: application/sdp\r\n"
    return (f"{method} sip:200@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:{lport};branch=z9hG4bK{b};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:100@{host}>;tag={b}\r\nTo: <sip:200@{host}>\r\nCall-ID: {b}{i}@{src}\r\n"
            f"CSeq: 1 {method}\r\n{extra}Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()
t0 = time.monotonic()
for i in range(4000):
    s.sendto(req("CANCEL", i), (host, port))
    s.sendto(req("INVITE", i), (host, port))
    drain()
    # 2,000 requests per second
    ahead = t0 + (i + 1) / 1000 - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
end = time.monotonic() + 3
while time.monotonic() < end:
    drain()
    time.sleep(0.05)
print(json.dumps(codes))
EOF
codes=$(cat "$E2E_TMP/flood.json")
log "answers to the flood: $codes"
[ "$(jq '."481" // 0' <<<"$codes")" -ge 3900 ] || fail "unmatched CANCELs not answered 481: $codes"
[ "$(jq '."407" // 0' <<<"$codes")" -ge 3900 ] || fail "unauthenticated INVITEs not answered 407: $codes"
sleep 6 # one more state line
m=$(max_tx)
[ -n "$m" ] || fail "no 'service state' line in the log"
[ "$m" -le 50 ] || {
  grep -h 'service state' "$PAL_OUT" "$PAL_ERR" | tail -5 >&2
  fail "server transactions reached $m during the flood of unmatched CANCELs and unauthenticated INVITEs"
}
ok "4,000 unmatched CANCELs (481) and 4,000 unauthenticated INVITEs (407) from 127.0.0.70: at most $m server transactions"

r=$(timeout -k 2 20 python3 "$E2E_DIR/guard_client.py" "$HOST:$port" 127.0.0.71 auth 1 100 "$authid" "$password")
[ "$(jq -c '[.challenge, .final]' <<<"$r")" = '[401,200]' ] || fail "100 registering from 127.0.0.71: $r"
ok "100 registers from 127.0.0.71 (401, 200)"
# The counter does count. A REGISTER keeps no transaction since issue 16 (answered once, like Kamailio's `sl`);
# an authenticated INVITE does: 100 calls itself (its binding points at a port nobody answers), so the INVITE's
# server transaction stays while Palisade rings the binding.
code=$(timeout -k 2 10 python3 - "$E2E_DIR" "$HOST" "$port" 127.0.0.71 "$authid" "$password" <<'EOF'
import os, random, sys
sys.path.insert(0, sys.argv[1])
from guard_client import Udp, auth_params, digest
host, port, src, auth_id, password = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
u = Udp(host, port, src, 2)
uri = f"sip:100@{host}:{port}"
call_id, tag = os.urandom(8).hex(), os.urandom(4).hex()
sdp = f"v=0\r\no=- 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
def invite(cseq, auth=None):
    def build(branch):
        lines = [f"INVITE {uri} SIP/2.0", f"Via: SIP/2.0/UDP {src}:{u.local[1]};branch={branch};rport",
                 "Max-Forwards: 70", f"From: <sip:100@{host}>;tag={tag}", f"To: <sip:100@{host}>",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} INVITE", f"Contact: <sip:100@{src}:{u.local[1]}>",
                 *([auth] if auth else []), "Content-Type: application/sdp", f"Content-Length: {len(sdp)}", "", sdp]
        return "\r\n".join(lines)
    return build
first = u.transaction(invite(1))
if not first or first[0] != 407:
    print(f"challenge-{first and first[0]}")
    sys.exit(0)
ch = auth_params([v for k, v in first[1] if k == "proxy-authenticate"][0])
cnonce = "%016x" % random.getrandbits(64)
resp = digest(auth_id, ch["realm"], password, "INVITE", uri, ch["nonce"], cnonce)
auth = (f'Proxy-Authorization: Digest username="{auth_id}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
        f'uri="{uri}", response="{resp}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc=00000001')
if "opaque" in ch:
    auth += f', opaque="{ch["opaque"]}"'
fin = u.transaction(invite(2, auth))  # waits up to 2 s for a final answer; none is expected while it rings
print(fin[0] if fin else "ringing")
EOF
) || fail "INVITE client"
for ((i = 0; i < 8; i++)); do
  [ "$(last_tx)" = 1 ] && break
  sleep 1
done
[ "$(last_tx)" = 1 ] || fail "the authenticated INVITE ($code) is not in the state line: last $(last_tx)"
ok "the state line shows the authenticated INVITE's one server transaction ($code)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
