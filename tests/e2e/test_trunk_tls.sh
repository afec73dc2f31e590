#!/usr/bin/env bash
# A SIP trunk over TLS, against a second Palisade acting as the provider.
#   * the provider: `palisade serve` with its own data directory, TLS on 127.0.0.80 and 127.0.0.81 (its
#     self-signed certificate, generated at first start, names localhost, not those addresses), extension 100
#     (auth ID provtrunk100, password given on stdin) that the PBX registers as;
#   * the PBX: trunk prov (--host 127.0.0.80 --transport tls --ca-file PROVIDER/tls/cert.pem
#     --tls-server-name localhost --username 100 --auth-user provtrunk100 --register) and trunk badca (the same
#     provider at 127.0.0.81, but --ca-file naming another certificate);
#   * the attack refused: badca's connection fails certificate verification (the PBX logs the trunk's address,
#     server name, CA file and "invalid peer certificate"), it never registers, and the provider holds no binding
#     made through it;
#   * the legitimate use: prov registers (trunk show: registered; the provider's `registrations` show 100 over
#     TLS from the PBX), and tshark on the provider's TLS port sees TLS handshakes and no SIP in clear.
# Ports: 27400-27499 (signalling), relays 55200-55299 (PBX) and 55300-55399 (provider).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27400 E2E_PORT_MAX=27499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 ss tshark openssl

PROV=127.0.0.80 BADPROV=127.0.0.81
TRUNK_PW=Prov-Trunk-Secret-77
pbx=$E2E_TMP/pbx prov=$E2E_TMP/provider
P() { "$PALISADE_BIN" "$@" --data "$pbx"; }
V() { "$PALISADE_BIN" "$@" --data "$prov"; }

block=$(free_port 3)
pport=$block aport=$((block + 1)) atls=$((block + 2))

# ---- the provider (its domain, the digest realm, set before the extension is made)
mkdir -p "$prov"
echo 'domain = "provider.test"' >"$prov/palisade.toml"
printf '%s\n' "$TRUNK_PW" | V ext add 100 --auth-id provtrunk100 --password-stdin >/dev/null || fail "provider: ext add 100"
pal_start "$prov" --listen "tls:$PROV:$pport" --listen "tls:$BADPROV:$pport" \
  --listen "udp:$PROV:$pport" --rtp-ports 55300-55399 --advertise "$PROV"
PROV_PID=$PAL_PID PROV_ERR=$PAL_ERR
[ -s "$prov/tls/cert.pem" ] || fail "the provider generated no certificate"

# a certificate of someone else: the wrong CA for badca
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -days 2 \
  -addext subjectAltName=DNS:localhost -keyout "$E2E_TMP/other.key" -out "$E2E_TMP/other.pem" 2>/dev/null ||
  fail "openssl: other certificate"

# ---- tshark on the provider's TLS port
spawn "$E2E_TMP/tshark.log" timeout -k 2 60 tshark -i lo -F pcap -a duration:55 -w "$E2E_TMP/trunk.pcap" \
  -f "tcp port $pport"
TSHARK=$BG_PID
for ((i = 0; i < 50; i++)); do
  grep -q 'Capturing on' "$E2E_TMP/tshark.log" && break
  sleep 0.1
done

# ---- the PBX
printf '%s\n' "$TRUNK_PW" | P trunk add prov --host "$PROV" --port "$pport" --transport tls \
  --ca-file "$prov/tls/cert.pem" --tls-server-name localhost --username 100 --auth-user provtrunk100 \
  --password-stdin --register --source "$PROV/32" >/dev/null || fail "trunk add prov"
printf '%s\n' "$TRUNK_PW" | P trunk add badca --host "$BADPROV" --port "$pport" --transport tls \
  --ca-file "$E2E_TMP/other.pem" --tls-server-name localhost --username 100 --auth-user provtrunk100 \
  --password-stdin --register --source "$BADPROV/32" >/dev/null || fail "trunk add badca"
P trunk show prov | grep -q "certificate for localhost checked against $prov/tls/cert.pem" ||
  fail "trunk show prov: $(P trunk show prov)"
pal_start "$pbx" --listen "udp:$HOST:$aport" --listen "tls:$HOST:$atls" --rtp-ports 55200-55299
PBX_PID=$PAL_PID PBX_ERR=$PAL_ERR

# state TRUNK: its registration state
state() { P trunk show "$1" --json | python3 -c 'import json,sys; print((json.load(sys.stdin).get("registration") or {}).get("state"))'; }
for ((i = 0; i < 50; i++)); do
  [ "$(state prov)" = registered ] && break
  sleep 0.1
done
[ "$(state prov)" = registered ] || {
  show "$PBX_ERR" 30
  show "$PROV_ERR" 30
  fail "trunk prov: registration '$(state prov)' after 5 s, expected registered: $(P trunk show prov)"
}
V registrations --json | python3 -c '
import json, sys
regs = json.load(sys.stdin)
mine = [r for r in regs if r["extension"] == "100"]
assert len(mine) == 1 and mine[0]["transport"].lower() == "tls" and mine[0]["source"].startswith("127.0.0.1:"), regs
' || fail "the provider's registrations: $(V registrations)"
ok "trunk prov registered over TLS (certificate checked against the provider's own, server name localhost)"

# ---- badca: refused, clearly logged
for ((i = 0; i < 30; i++)); do
  grep -q "TLS connection to the trunk failed" "$PBX_ERR" && break
  sleep 0.1
done
line=$(grep "TLS connection to the trunk failed" "$PBX_ERR" | head -1)
case $line in *"$BADPROV:$pport"*"$E2E_TMP/other.pem"*"invalid peer certificate"*) ;;
*)
  show "$PBX_ERR" 30
  fail "no clear log of badca's refused certificate (got '$line')"
  ;;
esac
[ "$(state badca)" != registered ] || fail "badca registered with a CA file that does not vouch for the provider"
[ "$(V registrations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "the provider holds more than prov's binding: $(V registrations)"
ok "trunk badca: certificate refused ($(echo "$line" | grep -o 'invalid peer certificate[^"]*' | head -1)), not registered"

# ---- no SIP in clear on the trunk's connection
sleep 0.5
kill -INT "$TSHARK" 2>/dev/null || true
wait_exit "$TSHARK" 5 || true
hs=$(tshark -r "$E2E_TMP/trunk.pcap" -Y 'tls.handshake.type == 1' 2>/dev/null | wc -l)
sip=$(tshark -r "$E2E_TMP/trunk.pcap" -Y sip 2>/dev/null | wc -l)
clear=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.count(b"REGISTER sip:") + d.count(b"SIP/2.0 "))' "$E2E_TMP/trunk.pcap")
[ "$hs" -ge 2 ] || fail "tshark saw $hs TLS ClientHellos on port $pport (expected prov's and badca's)"
[ "$sip" = 0 ] || fail "tshark decoded $sip SIP packets on the trunk's TLS port"
[ "$clear" = 0 ] || fail "SIP in clear on the trunk's TLS port: $sip SIP packets, $clear clear-text markers"
ok "tshark on port $pport: $hs ClientHellos, no SIP in clear"

alive "$PBX_PID" || fail "the PBX died"
alive "$PROV_PID" || fail "the provider died"
no_panic "$PBX_ERR"
no_panic "$PROV_ERR"
pal_stop "$PBX_PID"
pal_stop "$PROV_PID"
