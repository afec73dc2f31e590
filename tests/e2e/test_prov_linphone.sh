#!/usr/bin/env bash
# A real client provisioned end to end (issue 14): Debian's linphonec, given only the provisioning URL (Linphone's
# XML remote provisioning, [misc] config-uri) and the server's certificate to trust, fetches its configuration
# over HTTPS, registers over TLS with the credentials it was served (SRTP mandatory) and calls extension 102, a
# headless baresip on UDP that answers automatically. Checks: the phone is bound and provisioned, linphonec
# says it is registered and its call is connected, baresip says "Call established", `palisade calls` shows
# 101 -> 102 talking, and linphone's media was SRTP.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/e2e/baresip_lib.sh
. "$(dirname "$0")/baresip_lib.sh"
need linphonec baresip python3

data=$E2E_TMP/data
sip=$(free_port 2) # UDP on sip, TLS on sip+1
tls=$((sip + 1))
rtp=$(free_port 20)
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
# The extensions exist before the server starts, so baresip's first REGISTER finds them.
pal ext add 101 >/dev/null
pal ext add 102 --json >"$E2E_TMP/102.json"
pal_start "$data" --listen "udp:$HOST:$sip" --listen "tls:$HOST:$tls" --rtp-ports "$rtp-$((rtp + 19))"
ca=$data/tls/cert.pem
b_auth=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["auth_id"])' "$E2E_TMP/102.json")
b_pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$E2E_TMP/102.json")
# linphone's TLS (mbedtls) does not match IP addresses in certificates: the phone uses the name `localhost`,
# which the self-signed certificate carries; the file it is served names the SIP server by the same host.
url=$(pal phone add --ext 101 --model linphone --host "localhost:$PAL_ADMIN_PORT" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')

# B: baresip, extension 102 over UDP, answers automatically.
b=$E2E_TMP/b
bs=$(free_port 3)
brtp=$(free_port 10)
baresip_conf "$b" "$bs" "$((bs + 2))" "$brtp" "$((brtp + 9))" 880 \
  "<sip:102@$HOST:$sip;transport=udp>;auth_user=$b_auth;auth_pass=$b_pw;answermode=auto;regint=600"
spawn "$b/log" timeout -k 2 50 baresip -f "$b" -t 45
for ((i = 0; i < 100; i++)); do
  grep -q "102@$HOST: {0/UDP/v4} 200 OK" "$b/log" && break
  sleep 0.1
done
grep -q "102@$HOST: {0/UDP/v4} 200 OK" "$b/log" || {
  show "$b/log" 30
  fail "baresip (102) did not register over UDP"
}

# A: linphonec with the provisioning URL, the certificate to trust, and nothing else.
a=$E2E_TMP/a
mkdir -p "$a/home/.local/share/linphone"
lt=$(free_port)
lrtp=$(free_port 10)
cat >"$a/linphonerc" <<RC
[misc]
config-uri=${url}linphone.xml
[sip]
sip_port=0
sip_tcp_port=0
sip_tls_port=$lt
root_ca=$ca
[rtp]
audio_rtp_port=$lrtp-$((lrtp + 9))
RC
mkfifo "$a/in"
HOME=$a/home timeout -k 2 50 linphonec -c "$a/linphonerc" -d 6 -l "$a/linphone.log" <"$a/in" >"$a/out" 2>&1 &
E2E_PIDS+=("$!")
exec 3>"$a/in"
say() { printf '%s\n' "$*" >&3; }
for ((i = 0; i < 40; i++)); do
  say "status register"
  sleep 0.5
  grep -q '^registered, identity=' <(tr -d '\r' <"$a/out" | sed 's/^linphonec> //') && break
done
grep -q 'registered, identity=' "$a/out" || {
  show "$a/out" 20
  grep -i 'provision\|handshake\|SIP/2.0 [0-9]' "$a/linphone.log" | tail -20 >&2 || true
  show "$PAL_ERR" 20
  fail "linphonec did not register with the provisioned credentials"
}
grep -q '^Via: SIP/2.0/TLS' "$a/linphone.log" || fail "linphone's REGISTER did not go over TLS"
state=$(pal phone show linphone-101 --json | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["state"], p["bound_source"])')
[ "$state" = "provisioned $HOST" ] || fail "phone show says '$state' after linphone's fetch"
ok "linphonec fetched $url, registered over TLS with the served credentials; the phone is bound"

say "call 102"
for ((i = 0; i < 100; i++)); do
  grep -q "102@$HOST: Call established" "$b/log" && break
  sleep 0.1
done
grep -q "102@$HOST: Call established" "$b/log" || {
  show "$a/out" 20
  show "$b/log" 20
  show "$PAL_ERR" 20
  fail "linphone's call to 102 was not established at baresip"
}
calls=""
for ((i = 0; i < 30; i++)); do
  calls=$(pal calls --json)
  python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="101" and c[0]["callee"]=="102" and c[0]["state"]=="talking"))' "$calls" && break
  sleep 0.1
done
python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(not (len(c)==1 and c[0]["caller"]=="101" and c[0]["callee"]=="102"))' "$calls" ||
  fail "palisade calls does not show 101 -> 102: $calls"
grep -qi 'RTP/SAVP\|a=crypto' "$a/linphone.log" || fail "linphone's call offered no SRTP (RTP/SAVP, a=crypto)"
ok "linphone (101, SRTP over TLS) called baresip (102): established, palisade shows 101 -> 102"

say "terminate"
sleep 0.5
say "quit"
exec 3>&-
no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
