#!/usr/bin/env bash
# A SIP trunk over TLS, against a second Palisade acting as the provider.
#   * the provider: `palisade serve` with its own data directory, TLS on 127.0.0.80 and 127.0.0.81 (its
#     self-signed certificate, generated at first start, names localhost, not those addresses), extension 100
#     (auth ID provtrunk100, password given on stdin) that the PBX registers as;
#   * the PBX: trunk prov (--host 127.0.0.80 --transport tls --ca-file PROVIDER/tls/cert.pem
#     --tls-server-name localhost --username 100 --auth-user provtrunk100 --register) and trunk badca (the same
#     provider at 127.0.0.81, but --ca-file naming another certificate);
#   * the attack refused: badca's connection fails certificate verification (the PBX logs the trunk's address,
#     server name, CA file and "invalid peer certificate"), `trunk show badca` says failed with that reason at
#     once (not after the transaction's 32 s), and the provider holds no binding made through it;
#   * the legitimate use: prov registers (trunk show: registered; the provider's `registrations` show 100 over
#     TLS from the PBX);
#   * calls: 201 (sipp UAC on the PBX) dials 0300 (rule out: strip the 0, trunk prov, caller ID 100) -> the
#     provider authenticates the INVITE as 100 (digest user provtrunk100) and rings its 300 (a sipp UAS, RTP
#     echo). With --srtp disabled (the default) the trunk leg (PBX relay -> provider relay) carries the 1 kHz
#     tone in clear; after `trunk set prov --srtp enabled` it carries only SRTP (SDES keys exchanged over the
#     TLS connection: payload 170 bytes, entropy > 7.5 bits/byte, no tone) while both phones still get the tone;
#   * the provider's 300 calls 100 (the PBX's registration): the INVITE comes back over the connection the PBX
#     opened (the provider opens none to the PBX's TLS listener), DID 100 rings 201;
#   * both sides close connections idle for 3 s, yet prov's one connection (kept alive by the PBX's CRLF
#     pings) carries everything: tshark on the provider's TLS port sees exactly one ClientHello to prov (and
#     badca's refused attempts) and no SIP (nor an a=crypto line) in clear.
# Ports: 27400-27499 (signalling), relays 55200-55299 (PBX) and 55300-55399 (provider).
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=27400 E2E_PORT_MAX=27499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need python3 ss tshark openssl sipp sox
# shellcheck source=tests/e2e/secure_lib.sh
. "$(dirname "$0")/secure_lib.sh"

PROV=127.0.0.80 BADPROV=127.0.0.81
TRUNK_PW=Prov-Trunk-Secret-77
pbx=$E2E_TMP/pbx prov=$E2E_TMP/provider
P() { "$PALISADE_BIN" "$@" --data "$pbx"; }
V() { "$PALISADE_BIN" "$@" --data "$prov"; }

# one block: the provider, the PBX (UDP, TLS), the callee UAS (SIP, RTP/RTCP, video RTP/RTCP), the caller UAC
block=$(free_port 18)
pport=$block aport=$((block + 1)) atls=$((block + 2))
uport=$((block + 3)) umedia=$((block + 4)) cport=$((block + 8)) cmedia=$((block + 9))
u2port=$((block + 13)) u2media=$((block + 14))

# ---- the provider (its domain, the digest realm, set before the extension is made)
# Both sides close a connection idle for 3 s: only the PBX's keep-alives (CRLF CRLF every second) keep the
# trunk's connection, and with it the provider's way back to the PBX, open.
mkdir -p "$prov" "$pbx"
printf 'domain = "provider.test"\n[limits]\nidle_timeout_secs = 3\n' >"$prov/palisade.toml"
printf '[limits]\nidle_timeout_secs = 3\n' >"$pbx/palisade.toml"
printf '%s\n' "$TRUNK_PW" | V ext add 100 --auth-id provtrunk100 --password-stdin >/dev/null || fail "provider: ext add 100"
V ext add 300 --json >"$E2E_TMP/300.json" || fail "provider: ext add 300"
jf() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
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
  --password-stdin --register --source "$PROV/32" --caller-id 100 >/dev/null || fail "trunk add prov"
P ext add 201 --json >"$E2E_TMP/201.json" || fail "ext add 201"
P policy set country_code 49 >/dev/null || fail "policy set country_code"
P policy set national_prefix 0 >/dev/null || fail "policy set national_prefix"
P rule add out --prefix 0 --strip 1 --trunks prov >/dev/null || fail "rule add out"
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
for ((i = 0; i < 30; i++)); do
  [ "$(state badca)" = failed ] && break
  sleep 0.1
done
[ "$(state badca)" = failed ] || fail "badca: registration '$(state badca)', expected failed: $(P trunk show badca)"
err=$(P trunk show badca --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["registration"]["last_error"])')
case $err in *"cannot connect to the provider at $BADPROV:$pport (TLS)"*"invalid peer certificate"*"$E2E_TMP/other.pem"*) ;;
*) fail "badca's last error does not say why: '$err'" ;; esac
[ "$(V registrations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
  fail "the provider holds more than prov's binding: $(V registrations)"
ok "trunk badca: certificate refused ($(echo "$line" | grep -o 'invalid peer certificate[^"]*' | head -1)); trunk show: failed, '$err'"

# ---- an outbound call over the trunk: 201 (sipp UAC on the PBX) dials 0300 -> the provider's 300 (sipp UAS, echo)
sox -n -r 8000 -c 1 -t ul "$E2E_TMP/tone.ul" synth 4 sine 1000 2>/dev/null || fail "sox tone"
python3 "$E2E_DIR/make_g711_pcap.py" "$E2E_TMP/tone.ul" "$E2E_TMP/g711.pcap" || fail "g711.pcap"
r=$(timeout -k 2 10 python3 "$E2E_DIR/call_client.py" register "$PROV:$pport" 300 "$(jf "$E2E_TMP/300.json" auth_id)" \
  "$(jf "$E2E_TMP/300.json" password)" --contact "$PROV:$uport" --bind "$uport") || fail "register 300: $r"
case $r in *'"final": 200'*) ;; *) fail "register 300 at the provider: $r" ;; esac
spawn "$E2E_TMP/uas.out" timeout -k 2 60 sipp -sf "$E2E_DIR/scenarios/call_uas_rtp.xml" -i "$PROV" -p "$uport" \
  -mi "$PROV" -mp "$umedia" -rtp_echo -m 2 -nostdin -timeout 55 -trace_msg -message_file "$E2E_TMP/uas.msg" \
  -trace_err -error_file "$E2E_TMP/uas.err"
UAS=$BG_PID
printf 'SEQUENTIAL\n201;%s;%s;0300\n' "$(jf "$E2E_TMP/201.json" auth_id)" "$(jf "$E2E_TMP/201.json" password)" >"$E2E_TMP/uac.csv"

# call NAME: one call 201 -> 0300 (3 s of a 1 kHz tone, echoed by the callee) with the media captured; sets
# TRUNK_OUT / TRUNK_BACK (sec_rtp_leg lines of the trunk leg: PBX relay -> provider relay and back)
call() {
  local name=$1 rc=0 cap i n pt size ent f nu fu nc fc
  cap=$E2E_TMP/$name.pcap
  spawn "$E2E_TMP/$name.tshark.log" timeout -k 2 30 tshark -i lo -F pcap -a duration:25 -w "$cap" \
    -f "udp and portrange 55200-55399"
  local tpid=$BG_PID
  for ((i = 0; i < 50; i++)); do
    grep -q 'Capturing on' "$E2E_TMP/$name.tshark.log" && break
    sleep 0.1
  done
  (cd "$E2E_TMP" && timeout -k 2 30 sipp "$HOST:$aport" -sf "$E2E_DIR/scenarios/call_uac_rtp.xml" \
    -inf "$E2E_TMP/uac.csv" -i "$HOST" -p "$cport" -mi "$HOST" -mp "$cmedia" -m 1 -d 3000 -nostdin -timeout 25 \
    -timeout_error -trace_msg -message_file "$E2E_TMP/$name.uac.msg" -trace_err \
    -error_file "$E2E_TMP/$name.uac.err" >"$E2E_TMP/$name.uac.out" 2>&1 </dev/null) || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$name.uac.msg" 60
    show "$PBX_ERR" 30
    show "$PROV_ERR" 30
    fail "$name: the call 201 -> 0300 through the TLS trunk failed (sipp exit $rc)"
  }
  sleep 0.5
  stop_pid "$tpid" 3
  TRUNK_OUT=$(sec_rtp_leg "$cap" 55200 55299 55300 55399 "$E2E_TMP/$name.out")
  TRUNK_BACK=$(sec_rtp_leg "$cap" 55300 55399 55200 55299 "$E2E_TMP/$name.back")
  read -r n pt size ent f _ <<<"$TRUNK_OUT"
  log "$name: trunk leg out: $n packets (pt $pt, $size bytes, entropy $ent, ~$f Hz); back: $TRUNK_BACK"
  # the callee's leg (provider relay -> UAS) and the caller's (PBX relay -> UAC) carry the tone in clear
  read -r nu _ _ _ fu _ < <(sec_rtp_leg "$cap" 55300 55399 "$umedia" "$umedia" "$E2E_TMP/$name.callee")
  read -r nc _ _ _ fc _ < <(sec_rtp_leg "$cap" 55200 55299 "$cmedia" "$cmedia" "$E2E_TMP/$name.caller")
  if [ "$nu" -lt 100 ] || ! sec_near "$fu" 1000; then
    fail "$name: the callee got $nu packets (~$fu Hz): the caller's tone did not cross the trunk"
  fi
  if [ "$nc" -lt 100 ] || ! sec_near "$fc" 1000; then
    fail "$name: the caller got $nc packets back (~$fc Hz): the echo did not cross the trunk"
  fi
  if [ "$n" -lt 100 ]; then fail "$name: trunk leg: $n packets out"; fi
  ok "$name: call 201 -> 0300 over the TLS trunk: the callee got $nu packets of ~$fu Hz, the caller $nc echoed (~$fc Hz)"
}
# plain LEG_LINE / encrypted LEG_LINE: the trunk leg carries the tone in clear / only SRTP
plain() {
  local n pt size ent f
  read -r n pt size ent f _ <<<"$1"
  [ "$n" -ge 100 ] && [ "$size" = 160 ] && sec_near "$f" 1000
}
encrypted() {
  local n pt size ent f
  read -r n pt size ent f _ <<<"$1"
  [ "$n" -ge 100 ] && [ "$size" -gt 160 ] && ! sec_near "$f" 1000 &&
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 7.5 else 1)' "$ent"
}

# srtp disabled (the default): the trunk leg is plain RTP (what an eavesdropper on the path hears)
call plain-call
if ! plain "$TRUNK_OUT" || ! plain "$TRUNK_BACK"; then
  fail "--srtp disabled: the trunk leg is not plain 1 kHz RTP: $TRUNK_OUT | $TRUNK_BACK"
fi
ok "--srtp disabled: the tone crosses the trunk leg in clear ($TRUNK_OUT)"

# srtp enabled: SDES keys over the TLS trunk, SRTP on the trunk leg, the tone in clear only on the phones' legs
P trunk set prov --srtp enabled >/dev/null || fail "trunk set prov --srtp enabled"
sleep 1.2
call srtp-call
if ! encrypted "$TRUNK_OUT" || ! encrypted "$TRUNK_BACK"; then
  fail "--srtp enabled: the trunk leg is not SRTP: $TRUNK_OUT | $TRUNK_BACK"
fi
grep -q "RTP/SAVP" "$E2E_TMP/uas.msg" && fail "the provider's callee saw an SRTP offer (its own leg is plain UDP)"
ok "--srtp enabled: the trunk leg is SRTP both ways (payload > 160 bytes, entropy > 7.5, no tone): $TRUNK_OUT"
wait_exit "$UAS" 10 || fail "the provider's callee UAS did not finish"

sleep 4 # longer than both idle timeouts
# ---- a call from the provider: its 300 dials 100 (the PBX's registration) -> over the PBX's own TLS connection
# (the provider has no other way in: the PBX's contact is behind that connection) -> DID 100 -> 201 (a sipp UAS)
P did add 100 --trunk prov --ext 201 >/dev/null || fail "did add 100"
r=$(timeout -k 2 10 python3 "$E2E_DIR/call_client.py" register "$HOST:$aport" 201 "$(jf "$E2E_TMP/201.json" auth_id)" \
  "$(jf "$E2E_TMP/201.json" password)" --contact "$HOST:$u2port" --bind "$u2port") || fail "register 201: $r"
case $r in *'"final": 200'*) ;; *) fail "register 201 at the PBX: $r" ;; esac
spawn "$E2E_TMP/uas2.out" timeout -k 2 30 sipp -sf "$E2E_DIR/scenarios/call_uas_rtp.xml" -i "$HOST" -p "$u2port" \
  -mi "$HOST" -mp "$u2media" -rtp_echo -m 1 -nostdin -timeout 25 -trace_msg -message_file "$E2E_TMP/uas2.msg" \
  -trace_err -error_file "$E2E_TMP/uas2.err"
UAS2=$BG_PID
printf 'SEQUENTIAL\n300;%s;%s;100\n' "$(jf "$E2E_TMP/300.json" auth_id)" "$(jf "$E2E_TMP/300.json" password)" >"$E2E_TMP/in.csv"
rc=0
(cd "$E2E_TMP" && timeout -k 2 30 sipp "$PROV:$pport" -sf "$E2E_DIR/scenarios/call_uac_rtp.xml" -inf "$E2E_TMP/in.csv" \
  -i "$PROV" -p "$cport" -mi "$PROV" -mp "$cmedia" -m 1 -d 2000 -nostdin -timeout 25 -timeout_error \
  -trace_msg -message_file "$E2E_TMP/in.uac.msg" -trace_err -error_file "$E2E_TMP/in.uac.err" \
  >"$E2E_TMP/in.uac.out" 2>&1 </dev/null) || rc=$?
[ "$rc" = 0 ] || {
  show "$E2E_TMP/in.uac.msg" 60
  show "$PBX_ERR" 30
  show "$PROV_ERR" 30
  fail "the provider's call 300 -> 100 did not reach the PBX's 201 over the trunk (sipp exit $rc)"
}
wait_exit "$UAS2" 10 || fail "201's UAS did not finish"
grep -q "^INVITE " "$E2E_TMP/uas2.msg" || fail "201 got no INVITE"
[ -z "$(ss -Htn "( sport = :$atls )")" ] ||
  fail "the provider opened a connection to the PBX's TLS listener: $(ss -Htn "( sport = :$atls )")"
ok "the provider's call to the PBX's registration came back over the PBX's TLS connection and rang 201"

# ---- no SIP in clear on the trunk's connection
sleep 0.5
kill -INT "$TSHARK" 2>/dev/null || true
wait_exit "$TSHARK" 5 || true
hs=$(tshark -r "$E2E_TMP/trunk.pcap" -Y 'tls.handshake.type == 1' 2>/dev/null | wc -l)
# badca's refused connection is retried on the trunk's back-off: on a slow run there may be a second attempt
hs_prov=$(tshark -r "$E2E_TMP/trunk.pcap" -Y "tls.handshake.type == 1 && ip.dst == $PROV" 2>/dev/null | wc -l)
hs_bad=$(tshark -r "$E2E_TMP/trunk.pcap" -Y "tls.handshake.type == 1 && ip.dst == $BADPROV" 2>/dev/null | wc -l)
sip=$(tshark -r "$E2E_TMP/trunk.pcap" -Y sip 2>/dev/null | wc -l)
clear=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(sum(d.count(m) for m in (b"REGISTER sip:", b"INVITE sip:", b"SIP/2.0 ", b"a=crypto")))' "$E2E_TMP/trunk.pcap")
sni=$(tshark -r "$E2E_TMP/trunk.pcap" -Y 'tls.handshake.extensions_server_name == "localhost"' 2>/dev/null | wc -l)
[ "$sni" = "$hs" ] || fail "$sni of $hs ClientHellos carried SNI localhost (the trunks' --tls-server-name)"
if [ "$hs_prov" != 1 ] || [ "$hs_bad" -lt 1 ] || [ "$hs" != $((hs_prov + hs_bad)) ]; then
  fail "tshark saw $hs TLS ClientHellos on port $pport: $hs_prov to prov (expected 1: one connection, reused), $hs_bad to badca (expected at least 1)"
fi
[ "$sip" = 0 ] || fail "tshark decoded $sip SIP packets on the trunk's TLS port"
[ "$clear" = 0 ] || fail "SIP in clear on the trunk's TLS port: $sip SIP packets, $clear clear-text markers"
ok "tshark on port $pport: $hs ClientHellos with SNI localhost (one connection for prov's registration, calls and the call back), no SIP in clear"

alive "$PBX_PID" || fail "the PBX died"
alive "$PROV_PID" || fail "the provider died"
no_panic "$PBX_ERR"
no_panic "$PROV_ERR"
pal_stop "$PBX_PID"
pal_stop "$PROV_PID"
