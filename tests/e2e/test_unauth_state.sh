#!/usr/bin/env bash
# Issue 12 item 6: requests that match nothing, and requests without credentials, create no transaction state.
#   * the attack, from 127.0.0.70: 4,000 CANCELs that match no INVITE and 4,000 INVITEs without credentials
#     (each a new transaction; a python UDP client, 2,000 requests/s; the flood tiers and the unanswered-
#     challenge limit raised so that the guard does not cut it short): every CANCEL is answered 481 and every
#     INVITE 407, and the `service state` log line (written every 5 s when something changed) never shows more
#     than 50 server transactions (before the fix, each CANCEL stayed 32 s: about 4,000);
#   * the legitimate use: extension 100 registers (401, 200) from 127.0.0.71; then one INVITE whose final answer
#     is never ACKed, and the state line shows its one server transaction (timer H): the count is real.
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
# an INVITE's final answer does, until its ACK (timer H, 32 s over UDP): one INVITE, never ACKed.
code=$(timeout -k 2 10 python3 - "$E2E_DIR" "$HOST" "$port" 127.0.0.71 <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[1])
from guard_client import Udp, request
host, port, src = sys.argv[2], int(sys.argv[3]), sys.argv[4]
u = Udp(host, port, src, 2)
r = u.transaction(request("INVITE", f"sip:100@{host}:{port}", src, u.local[1], "UDP", os.urandom(8).hex(), "t1", 1, "100",
                          (f"Contact: <sip:100@{src}:{u.local[1]}>",)))
print(r[0] if r else "none")
EOF
) || fail "INVITE client"
case $code in [3-6]??) ;; *) fail "the INVITE from 127.0.0.71 got no final answer: $code" ;; esac
for ((i = 0; i < 8; i++)); do
  [ "$(last_tx)" = 1 ] && break
  sleep 1
done
[ "$(last_tx)" = 1 ] || fail "the un-ACKed INVITE's transaction ($code) is not in the state line: last $(last_tx)"
ok "the state line shows the one server transaction of an INVITE answered $code and never ACKed"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
