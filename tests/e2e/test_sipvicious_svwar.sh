#!/usr/bin/env bash
# SIPVicious svwar (0.3.x) cannot enumerate Palisade's extensions: with extensions 100, 101 (disabled), 205
# and 1000 in the data, svwar scans 100-110,200-210,1000-1005 with REGISTER, INVITE and OPTIONS, once with its
# sanity check and once with --force, and must report no extension at all. Palisade answers a random user like a
# real one (REGISTER 401, INVITE 407, OPTIONS 200), so svwar either refuses to scan ("authentication request for
# an unknown extension") or learns that answer as the "bad user" one and finds nothing.
#
# Two more checks keep the test able to fail:
#   * control: svwar against a tiny leaky responder (404 for everyone, 401 for user 205) must report 205, and
#     found_extensions must parse it from svwar's table: proves the parser reads svwar's real output format;
#   * probe.py sends REGISTER, INVITE and OPTIONS for existing, disabled and unknown users (and for an auth ID
#     used as a user) and compares the answers' status line, header names and challenge parameters (everything
#     but the nonce, tags and echoed fields), since svwar itself stops at the first extension once every
#     answer looks like the bad-user one. The leaky responder must fail the same probe. Timing is only logged.
#
# svwar binds 0.0.0.0 (it ignores -b) and, by default, port 5060: every run gets its own -P port, never reused,
# because Palisade retransmits the 407 of an INVITE transaction for 32 s (svwar's ACK carries a new branch, so it
# matches nothing) and a stale 407 reaching a later OPTIONS scan on the same port would be reported as "found".
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need svwar python3 ss jq

RANGE=100-110,200-210,1000-1005
EXISTING=(100 101 205 1000)
DISABLED=101

# ------------------------------------------------------------------ helpers

# A local port for one svwar/probe run, never handed out twice in this test.

# Extensions listed in svwar's result table, as "EXT AUTH" lines, e.g.
#   | 205        | reqauth        |
found_extensions() {
  awk -F'|' 'NF >= 4 {
    e = $2; a = $3; gsub(/[ \t]/, "", e); gsub(/[ \t]/, "", a)
    if (e != "" && e != "Extension") print e, a
  }' "$1"
}

# run_svwar NAME TARGET_PORT svwar-args...: output in $E2E_TMP/svwar-NAME.out (path in SVWAR_OUT).
run_svwar() {
  local name=$1 port=$2 lport rc=0
  shift 2
  lport=$(free_port)
  SVWAR_OUT=$E2E_TMP/svwar-$name.out
  timeout -k 2 30 svwar -v -p "$port" -P "$lport" -x "$HOST" --maximumtime 5 "$@" "$HOST" \
    >"$SVWAR_OUT" 2>&1 </dev/null || rc=$?
  case $rc in 124 | 137)
    show "$SVWAR_OUT" 20
    fail "svwar $name timed out"
    ;;
  esac
  grep -q 'Traceback\|Unhandled exception' "$SVWAR_OUT" && {
    show "$SVWAR_OUT" 30
    fail "svwar $name crashed"
  }
  # evidence that svwar talked to a SIP server at all (otherwise "found nothing" proves nothing)
  if grep -q 'No server response' "$SVWAR_OUT" ||
    ! grep -q 'authentication request for an unknown extension\|Ok SIP device found' "$SVWAR_OUT"; then
    show "$SVWAR_OUT" 20
    fail "svwar $name got no answer from port $port"
  fi
  log "svwar $name (-P $lport $*): exit $rc"
}

# ------------------------------------------------------------------ python helpers

# Leaky responder: 404 for every user except 205, which gets 401 (REGISTER) / 407 (others) / 200 (OPTIONS).
cat >"$E2E_TMP/leaky.py" <<'EOF'
import re, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    msg = data.decode("utf-8", "replace")
    if not msg or msg.startswith("SIP/2.0") or msg.startswith("ACK "):
        continue
    head = msg.split("\r\n\r\n", 1)[0].split("\r\n")
    method = head[0].split(" ", 1)[0]
    keep = [h for h in head[1:] if re.match(r"(?i)(via|v|from|f|to|t|call-id|i|cseq)\s*:", h)]
    to = next((h for h in head[1:] if re.match(r"(?i)(to|t)\s*:", h)), "")
    user = re.search(r"sip:([^@;>]*)@", to)
    if user and user.group(1) == "205":
        if method == "OPTIONS":
            status, extra = "200 OK", []
        elif method == "REGISTER":
            status, extra = "401 Unauthorized", ['WWW-Authenticate: Digest realm="leaky", nonce="n", qop="auth"']
        else:
            status, extra = "407 Proxy Authentication Required", ['Proxy-Authenticate: Digest realm="leaky", nonce="n"']
    else:
        status, extra = "404 Not Found", []
    resp = "\r\n".join(["SIP/2.0 " + status] + keep + extra + ["Server: leaky", "Content-Length: 0", "", ""])
    s.sendto(resp.encode(), addr)
EOF

# probe.py PORT LOCALPORT USER...: one REGISTER, INVITE and OPTIONS per user (INVITE answers are ACKed);
# prints "METHOD USER MS SIGNATURE" per answer, then "DIFF METHOD" for every method whose signatures differ.
# Exit 0 when every method got one answer per user and a single signature, 1 otherwise.
cat >"$E2E_TMP/probe.py" <<'EOF'
import random, re, socket, sys, time
port, lport, users = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", lport))
s.settimeout(2.0)
def rnd():
    return "%08x" % random.getrandbits(32)
def headers(msg):
    out = []
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        out.append((name.strip().lower(), value.strip()))
    return out
def signature(msg):
    hs = headers(msg)
    parts = [msg.split("\r\n", 1)[0], ",".join(n for n, _ in hs)]
    for n, v in hs:
        if n in ("www-authenticate", "proxy-authenticate"):
            params = dict(re.findall(r'(\w+)=("[^"]*"|[^,\s]*)', v))
            params.pop("nonce", None)
            parts.append(n + ":" + ";".join("%s=%s" % kv for kv in sorted(params.items())))
        elif n in ("server", "allow", "accept", "supported", "content-length", "warning", "retry-after"):
            parts.append(n + ":" + v)
    return " | ".join(parts)
bad = False
for method in ("REGISTER", "INVITE", "OPTIONS"):
    sigs = {}
    for user in users:
        branch, cid, tag = "z9hG4bK" + rnd(), rnd() + "@probe", rnd()
        uri = "sip:%s@127.0.0.1:%d" % (user, port)
        if method == "REGISTER":
            uri = "sip:127.0.0.1:%d" % port
        via = "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (lport, branch)
        frm = "From: <sip:%s@127.0.0.1>;tag=%s" % (user, tag)
        to = "To: <sip:%s@127.0.0.1>" % user
        req = "\r\n".join(["%s %s SIP/2.0" % (method, uri), via, "Max-Forwards: 70", frm, to,
                           "Call-ID: " + cid, "CSeq: 1 " + method,
                           "Contact: <sip:%s@127.0.0.1:%d>" % (user, lport), "Content-Length: 0", "", ""])
        t0 = time.monotonic()
        s.sendto(req.encode(), ("127.0.0.1", port))
        resp = None
        try:
            while True:
                data, _ = s.recvfrom(65535)
                msg = data.decode("utf-8", "replace")
                if ("Call-ID: " + cid) in msg and not msg.startswith("SIP/2.0 1"):
                    resp = msg
                    break
        except socket.timeout:
            pass
        ms = (time.monotonic() - t0) * 1000
        if resp is None:
            print("%s %s no answer" % (method, user))
            bad = True
            continue
        if method == "INVITE":
            to_hdr = next((v for n, v in headers(resp) if n in ("to", "t")), "<%s>" % uri)
            ack = "\r\n".join(["ACK %s SIP/2.0" % uri, via, "Max-Forwards: 70", frm, "To: " + to_hdr,
                               "Call-ID: " + cid, "CSeq: 1 ACK", "Content-Length: 0", "", ""])
            s.sendto(ack.encode(), ("127.0.0.1", port))
        sig = signature(resp)
        sigs.setdefault(sig, []).append(user)
        print("%s %s %.1f %s" % (method, user, ms, sig))
    if len(sigs) > 1:
        bad = True
        print("DIFF %s: %s" % (method, " // ".join("%s -> %s" % (",".join(u), sg) for sg, u in sigs.items())))
sys.exit(1 if bad else 0)
EOF

# ------------------------------------------------------------------ control: a leaky responder is caught

lport=$(free_port)
spawn "$E2E_TMP/leaky.log" python3 -u "$E2E_TMP/leaky.py" "$lport"
leaky_pid=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q ready "$E2E_TMP/leaky.log" 2>/dev/null && break
  sleep 0.1
done
grep -q ready "$E2E_TMP/leaky.log" || fail "leaky responder did not start"
run_svwar control "$lport" -m REGISTER -e 200-210
found=$(found_extensions "$SVWAR_OUT")
[ "$found" = "205 reqauth" ] || {
  show "$SVWAR_OUT" 30
  fail "control: svwar against a responder that leaks 205 reported '${found:-nothing}', expected '205 reqauth'"
}
ok "control: svwar finds 205 on a leaky responder and the table parser reads it"
if timeout -k 2 40 python3 "$E2E_TMP/probe.py" "$lport" "$(free_port)" 205 204 >"$E2E_TMP/probe-leaky.out" 2>&1; then
  show "$E2E_TMP/probe-leaky.out" 10
  fail "control: probe.py saw no difference on the leaky responder"
fi
grep -q '^DIFF REGISTER' "$E2E_TMP/probe-leaky.out" || {
  show "$E2E_TMP/probe-leaky.out" 10
  fail "control: probe.py did not report the REGISTER difference"
}
ok "control: probe.py reports the leaky responder's different answers"
stop_pid "$leaky_pid"

# ------------------------------------------------------------------ palisade

data=$E2E_TMP/data
for n in "${EXISTING[@]}"; do
  "$PALISADE_BIN" ext add "$n" --data "$data" --json >"$E2E_TMP/ext-$n.json" || fail "ext add $n"
done
"$PALISADE_BIN" ext set "$DISABLED" --enabled false --data "$data" >/dev/null || fail "ext set $DISABLED --enabled false"
authid=$(jq -r .auth_id "$E2E_TMP/ext-100.json")
port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port"

for m in REGISTER INVITE OPTIONS; do
  for mode in check force; do
    extra=()
    [ "$mode" = force ] && extra=(--force)
    run_svwar "$m-$mode" "$port" -m "$m" -e "$RANGE" "${extra[@]}"
    found=$(found_extensions "$SVWAR_OUT")
    if [ -n "$found" ]; then
      show "$SVWAR_OUT" 40
      fail "svwar -m $m ${extra[*]} found extension(s): $(echo "$found" | tr '\n' ' ')"
    fi
    how=$(grep -o 'authentication request for an unknown extension\|We got an unknown response\|found nothing' \
      "$SVWAR_OUT" | sort -u | tr '\n' ';')
    ok "svwar -m $m ${extra[*]:-(sanity check on)} over $RANGE: no extension found ($how)"
  done
done

# Same answers for existing, disabled and unknown users, and for an auth ID used as a user name.
users=(100 205 1000 "$DISABLED" 102 999 1001 4242424242 "$authid")
if ! timeout -k 2 60 python3 "$E2E_TMP/probe.py" "$port" "$(free_port)" "${users[@]}" \
  >"$E2E_TMP/probe.out" 2>&1; then
  show "$E2E_TMP/probe.out" 40
  fail "answers differ between existing, disabled and unknown users (or some got no answer)"
fi
# timing, for the log only (loopback, debug build: not a pass criterion)
awk '$3 ~ /^[0-9.]+$/ { n[$1" "($2 ~ /^(100|205|1000)$/ ? "existing" : "other")]++; t[$1" "($2 ~ /^(100|205|1000)$/ ? "existing" : "other")] += $3 }
  END { for (k in n) printf "%s: mean %.2f ms over %d\n", k, t[k] / n[k], n[k] }' "$E2E_TMP/probe.out" |
  sort | while read -r line; do log "timing $line"; done
ok "REGISTER/INVITE/OPTIONS: one answer signature for existing, disabled, unknown users and an auth ID (${#users[@]} users)"

no_panic
pal_stop
