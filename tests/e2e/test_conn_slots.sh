#!/usr/bin/env bash
# Issue 12 item 5: connection slots cannot be exhausted by idle connections, and keep-alives are counted.
# palisade.toml [limits]: max_connections = 300 (lowered from 10,000), first_request_timeout_secs = 5.
#   * the attack: 2,000 plain TCP connections, 20 from each of 100 addresses 127.0.2.1-100, that never send
#     anything; the server never holds more than 300 (at the cap, the oldest connection that never
#     authenticated is closed to make room);
#   * the legitimate use, while they are open: extension 100 registers over TLS (401, 200) from 127.0.0.1
#     (reg_client.py) — it is not locked out;
#   * every attack connection is closed by the server within first_request_timeout_secs (+2 s) of opening, as
#     is a fresh connection that only sends CRLF keep-alives; the registered TLS phone's connection stays;
#   * a connection sending a flood of CRLF keep-alives (1,000 in one second, flood_amber_pps 300) is throttled
#     by the guard like any other traffic: a `throttle` event for its source, and the connection is closed.
# Ports: 27040-27119.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27040 E2E_PORT_MAX=27119
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 jq ss

data=$E2E_TMP/data
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
pal ext add 100 --json >"$E2E_TMP/ext.json" || fail "ext add 100"
authid=$(jq -r .auth_id "$E2E_TMP/ext.json")
password=$(jq -r .password "$E2E_TMP/ext.json")
pal security set flood_amber_pps 300 >/dev/null || fail "security set flood_amber_pps"
cat >"$data/palisade.toml" <<'EOF'
[limits]
max_connections = 300
first_request_timeout_secs = 5
EOF

tcp_port=$(free_port 2)
tls_port=$((tcp_port + 1))
pal_start "$data" --listen "tcp:$HOST:$tcp_port" --listen "tls:$HOST:$tls_port"

# The attack runs in the background: opens the connections, holds them, and reports how each ended.
timeout -k 2 40 python3 - "$HOST" "$tcp_port" >"$E2E_TMP/attack.json" 2>"$E2E_TMP/attack.err" <<'EOF' &
import json, select, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
socks = {}
refused = 0
for a in range(1, 101):
    for _ in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.2.{a}", 0))
        s.settimeout(2)
        try:
            s.connect((host, port))
        except OSError:
            refused += 1
            s.close()
            continue
        s.setblocking(False)
        socks[s] = time.monotonic()
opened = len(socks)
print(json.dumps({"event": "opened", "opened": opened, "refused": refused}), flush=True)
lifetimes = []
poller = select.poll()  # select() cannot take descriptors above 1023
by_fd = {s.fileno(): s for s in socks}
for fd in by_fd:
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
deadline = time.monotonic() + 20
while socks and time.monotonic() < deadline:
    for fd, _ in poller.poll(500):
        s = by_fd.pop(fd, None)
        if s is None:
            continue
        try:
            data = s.recv(4096)
        except (ConnectionResetError, OSError):
            data = b""
        if data:
            by_fd[fd] = s
            continue
        poller.unregister(fd)
        lifetimes.append(time.monotonic() - socks.pop(s))
        s.close()
print(json.dumps({"event": "done", "opened": opened, "closed": len(lifetimes), "still_open": len(socks),
                  "max_lifetime": max(lifetimes, default=0)}), flush=True)
EOF
ATTACK=$!
E2E_PIDS+=("$ATTACK")
for ((i = 0; i < 50; i++)); do grep -q '"opened"' "$E2E_TMP/attack.json" 2>/dev/null && break; sleep 0.1; done
grep -q '"opened"' "$E2E_TMP/attack.json" || fail "the attack did not open its connections: $(cat "$E2E_TMP/attack.err")"
log "attack: $(head -1 "$E2E_TMP/attack.json")"

# ---- the legitimate use, while the server is full of idle connections
r=$(timeout -k 2 20 python3 "$E2E_DIR/reg_client.py" "$HOST:$tls_port" tls 100 "$authid" "$password") ||
  fail "TLS registration while idle connections fill the server: $r"
[ "$(jq -c '[.challenge.code, .final.code]' <<<"$r")" = '[401,200]' ] || fail "TLS registration: $r"
ok "extension 100 registered over TLS (401, 200) while 2,000 idle connections were opened against a cap of 300"
most=$(ss -Htn state established "( sport = :$tcp_port )" | wc -l)
[ "$most" -le 300 ] || fail "open connections to the TCP port: $most (cap 300)"

# ---- the first-request timeout closes them all
wait "$ATTACK" || true
done_line=$(tail -1 "$E2E_TMP/attack.json")
log "attack: $done_line"
[ "$(jq .still_open <<<"$done_line")" = 0 ] || fail "idle attack connections still open 20 s later: $done_line"
life=$(jq .max_lifetime <<<"$done_line")
awk -v l="$life" 'BEGIN { exit !(l <= 7.5) }' || fail "an idle connection lived ${life}s (first_request_timeout_secs 5)"
ok "every idle connection was closed by the server (longest lived ${life}s; first_request_timeout_secs 5); $most were open after the registration"

timeout -k 2 20 python3 - "$HOST" "$tcp_port" >"$E2E_TMP/pings.json" <<'EOF' || fail "keep-alive-only client"
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
t0 = time.monotonic()
closed = None
while time.monotonic() - t0 < 9:
    try:
        s.sendall(b"\r\n\r\n")
        s.settimeout(1)
        if s.recv(64) == b"":
            closed = time.monotonic() - t0
            break
        time.sleep(1)
    except socket.timeout:
        pass
    except OSError:
        closed = time.monotonic() - t0
        break
print(json.dumps({"closed_after": closed}))
EOF
after=$(jq .closed_after "$E2E_TMP/pings.json")
{ [ "$after" != null ] && awk -v l="$after" 'BEGIN { exit !(l >= 4 && l <= 7.5) }'; } ||
  fail "a connection sending only keep-alives: closed after '$after' s (expected about 5)"
ok "a connection sending only CRLF keep-alives (one a second) is closed after ${after}s: keep-alives are not a valid request"

# ---- a keep-alive flood is throttled
timeout -k 2 20 python3 - "$HOST" "$tcp_port" >"$E2E_TMP/flood.json" <<'EOF' || fail "keep-alive flood client"
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.91", 0))
s.connect((sys.argv[1], int(sys.argv[2])))
closed = False
try:
    for _ in range(1000):
        s.sendall(b"\r\n\r\n")
    s.settimeout(3)
    while True:
        d = s.recv(65536)
        if not d:
            closed = True
            break
except (ConnectionResetError, BrokenPipeError):
    closed = True
except socket.timeout:
    pass
print(json.dumps({"closed": closed}))
EOF
[ "$(jq .closed "$E2E_TMP/flood.json")" = true ] || fail "1,000 keep-alives in one second: connection not closed"
for ((i = 0; i < 30; i++)); do
  n=$(pal events --kind throttle --json | jq '[.[] | select(.source == "127.0.0.91/32")] | length')
  [ "$n" -gt 0 ] && break
  sleep 0.1
done
[ "$n" -gt 0 ] || fail "no throttle event for the keep-alive flood from 127.0.0.91"
ok "1,000 CRLF keep-alives in one second from 127.0.0.91: throttled (throttle event), connection closed"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
