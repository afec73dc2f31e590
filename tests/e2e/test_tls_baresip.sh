#!/usr/bin/env bash
# A real softphone over TLS: headless baresip (no audio modules, registration off) sends
# an OPTIONS to palisade's TLS listener with its `/options` menu command. baresip prints
# the response it got; it must be a 200 whose top Via says SIP/2.0/TLS (the request went
# through a completed TLS handshake).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need baresip ss

port=$(free_port)
data=$E2E_TMP/data
pal_start "$data" --listen "tls:$HOST:$port"

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
printf '%s\n' "<sip:probe@$HOST;transport=tls>;regint=0" >"$conf/accounts"
: >"$conf/contacts"

target="sip:ping@$HOST:$port;transport=tls"
out=$E2E_TMP/baresip.out
rc=0
(cd "$conf" && timeout -k 2 20 baresip -f "$conf" -t 5 -e "/options $target" >"$out" 2>&1 </dev/null) || rc=$?
[ "$rc" = 0 ] || {
  show "$out" 30
  fail "baresip exited with status $rc"
}

# The response baresip printed: the lines after "----- OPTIONS of <target> -----".
resp=$(sed -n "/^----- OPTIONS of /,\$p" "$out" | tr -d '\r')
status=$(printf '%s\n' "$resp" | sed -n '2p')
[ -n "$resp" ] || {
  show "$out" 30
  why=$(grep -o 'OPTIONS failed: .*\|options reply error: .*' "$out" | head -1 || true)
  fail "baresip's OPTIONS over TLS got no 200 (${why:-no response: TLS handshake or request failed})"
}
case $status in
  'SIP/2.0 200 '*) ;;
  *)
    show "$out" 30
    fail "baresip's OPTIONS over TLS got '$status', expected SIP/2.0 200"
    ;;
esac
printf '%s\n' "$resp" | grep -q '^Via: SIP/2.0/TLS ' || {
  show "$out" 30
  fail "the 200 does not carry baresip's TLS Via: the request did not go over TLS"
}
ok "baresip OPTIONS over TLS -> $status"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
