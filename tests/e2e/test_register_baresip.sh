#!/usr/bin/env bash
# A real softphone registers: headless baresip (no audio) with four accounts made by
# `palisade ext add-range 601 604`:
#   601 over UDP, 602 over TCP, 603 over TLS, each with auth_user/auth_pass from the CSV;
#   604 over UDP with a wrong password.
# baresip must report "200 OK" for 601/602/603 on the right transport ({0/UDP|TCP|TLS/v4}) and a
# 401 for 604; `palisade registrations --json` must list 601/udp, 602/tcp, 603/tls with baresip's
# contacts and nothing for 604; the security log must hold a wrong_password failure for 604's auth ID.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=26000 E2E_PORT_MAX=26199
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need baresip python3 ss

data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
"$PALISADE_BIN" ext add-range 601 604 --data "$data" >"$csv" 2>/dev/null || fail "ext add-range 601 604"
cred() { sed -n "$(($1 - 599))p" "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

port=$(free_port 2) # palisade: udp/tcp on port, tls on port+1
tport=$((port + 1))
pal_start "$data" --listen "udp:$HOST:$port" --listen "tcp:$HOST:$port" --listen "tls:$HOST:$tport"

bport=$(free_port 2) # baresip listens on udp/tcp bport and tls bport+1
conf=$E2E_TMP/baresip
mkdir -p "$conf"
cat >"$conf/config" <<CONF
# headless, loopback-only baresip for palisade's e2e tests
poll_method		epoll
sip_listen		$HOST:$bport
sip_cafile		$data/tls/cert.pem
net_interface		$HOST
dns_server		$HOST:53
module_path		/usr/lib/baresip/modules
module_tmp		account.so
module_app		menu.so
CONF
{
  echo "<sip:601@$HOST:$port;transport=udp>;auth_user=$(cred 601 2);auth_pass=$(cred 601 3);regint=600"
  echo "<sip:602@$HOST:$port;transport=tcp>;auth_user=$(cred 602 2);auth_pass=$(cred 602 3);regint=600"
  echo "<sip:603@$HOST:$tport;transport=tls>;auth_user=$(cred 603 2);auth_pass=$(cred 603 3);regint=600"
  echo "<sip:604@$HOST:$port;transport=udp>;auth_user=$(cred 604 2);auth_pass=Wr0ngPassw0rd;regint=600"
} >"$conf/accounts"
: >"$conf/contacts"

out=$E2E_TMP/baresip.out
: >"$out"
spawn "$out" timeout -k 2 40 baresip -f "$conf" -t 30
bpid=$BG_PID

# Wait (up to 10 s) for baresip to report all four outcomes.
reported() {
  grep -q "601@$HOST: {0/UDP/v4} 200 OK" "$out" &&
    grep -q "602@$HOST: {0/TCP/v4} 200 OK" "$out" &&
    grep -q "603@$HOST: {0/TLS/v4} 200 OK" "$out" &&
    grep -q "reg: sip:604@$HOST:$port: 401 Unauthorized" "$out"
}
for ((i = 0; i < 100; i++)); do
  reported && break
  alive "$bpid" || break
  sleep 0.1
done
reported || {
  show "$out" 30
  show "$PAL_ERR" 20
  fail "baresip did not report 200 OK for 601/UDP, 602/TCP, 603/TLS and 401 for 604"
}
if grep -q "604@$HOST: .* 200 OK" "$out"; then
  show "$out" 30
  fail "baresip registered 604 with a wrong password"
fi
ok "baresip: 601 {0/UDP/v4} 200 OK, 602 {0/TCP/v4} 200 OK, 603 {0/TLS/v4} 200 OK; 604 (wrong password) 401 Unauthorized"

# The registrar's view, while baresip is still registered (the write-behind gets up to 3 s).
cat >"$E2E_TMP/check_bindings.py" <<'PY'
import json, sys
regs = json.load(sys.stdin)
bport = int(sys.argv[1])
got = {}
for r in regs:
    got.setdefault(r["extension"], []).append(r)
errors = []
for ext, tp, cport in [("601", "udp", bport), ("602", "tcp", bport), ("603", "tls", bport + 1)]:
    b = got.get(ext, [])
    if len(b) != 1:
        errors.append(f"{ext}: {len(b)} bindings, expected 1")
        continue
    b = b[0]
    if b["transport"].lower() != tp:
        errors.append(f"{ext}: transport {b['transport']}, expected {tp}")
    if f"@127.0.0.1:{cport}" not in b["contact"] or "baresip" not in (b["user_agent"] or ""):
        errors.append(f"{ext}: contact {b['contact']} / user agent {b['user_agent']}: not baresip on port {cport}")
if "604" in got:
    errors.append(f"604 has bindings: {got['604']}")
if errors:
    sys.exit("; ".join(errors))
print(" ".join(f"{r['extension']}/{r['transport']}" for r in sorted(regs, key=lambda r: r["extension"])))
PY
check_bindings() {
  "$PALISADE_BIN" registrations --json --data "$data" | python3 "$E2E_TMP/check_bindings.py" "$bport"
}
for ((i = 0; i < 30; i++)); do
  check_bindings >/dev/null 2>&1 && break
  sleep 0.1
done
bindings=$(check_bindings) || fail "palisade registrations --json: see above"
ok "palisade registrations: $bindings"

n604=$("$PALISADE_BIN" events --kind auth_failure --json --data "$data" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e["reason"] == "wrong_password" and e["user"] == sys.argv[1]))' "$(cred 604 2)")
[ "$n604" -ge 1 ] || fail "no auth_failure/wrong_password event for 604's auth ID"
ok "security log: $n604 wrong_password failure(s) for 604's auth ID"

stop_pid "$bpid" 5
alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
