#!/usr/bin/env bash
# Outbound calls through a trunk, with the call policy, over UDP. The provider is sipp on its own loopback
# address: `carrier` = a sipp UAS on 127.0.0.50 (scenarios/trunk_provider_auth.xml: 407 first, then checks
# the Proxy-Authorization with verifyauth and answers 200). Extension 100 calls with call_client.py from
# 127.0.0.1. Policy: country_code 49, international_prefix 00, national_prefix 0. Rules, in order:
#   emergency  prefix 1, length 3        -> carrier
#   intl       prefix 00                 -> carrier
#   out        prefix 0, strip 1         -> carrier
#   fo503      prefix 8, strip 1         -> dead (sipp on 127.0.0.51 answering 503), carrier
#   fotimeout  prefix 6, strip 1         -> silent (127.0.0.52, nothing listening), carrier
# What must happen:
#   * 0301234567 -> the provider gets INVITE sip:301234567@127.0.0.50:PORT, From user = the trunk's caller ID,
#     and after its 407 a Proxy-Authorization with username = the trunk's username and the right digest
#     response (checked here: sipp 3.6.1's verifyauth reads only Authorization);
#     the call is answered (200, BYE 200) and recorded as answered;
#   * 0044207946000 with allowed_country_codes "" (home only) -> 403 country_not_allowed (a policy_refusal
#     event, a call record); 00252611234567 -> 403 (Somalia, also after allowing 44); 000252611234567 (no
#     country code starts with 0) -> 404 bad_number; internal-only 100 dialling 0301234567 -> 403
#     internal_only; none of these reaches the provider;
#   * internal-only 100 dialling 112 -> goes out (sip:112@...); office-hours-only 100 (no hours configured)
#     -> 403 outside_office_hours; PIN-protected 100 -> 403 pin_*; 112 from PIN-protected, office-hours-only
#     100 -> goes out;
#   * `policy set allowed_country_codes 44` on the running server -> 0044207946000 goes out;
#   * failover: 80301234567 -> dead answers 503 -> the call reaches carrier (answered);
#   * failover on timeout: 60301234567 -> silent never answers -> the call reaches carrier (Timer B, <= 40 s).
# Ports: signalling 31000-31099, relay 31100-31199.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=31000 E2E_PORT_MAX=31099
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need sipp python3 ss

RTP_LO=31100 RTP_HI=31199
PROV=127.0.0.50 DEAD=127.0.0.51 SILENT=127.0.0.52
TRUNK_USER=palisade-trunk TRUNK_PASS=Trunk-Secret-42 CALLER_ID=4930999000
CLIENT=$E2E_DIR/call_client.py
SCEN=$E2E_DIR/scenarios
data=$E2E_TMP/data
csv=$E2E_TMP/credentials.csv
pal() { "$PALISADE_BIN" "$@" --data "$data"; }
"$PALISADE_BIN" ext add-range 100 101 --data "$data" 2>/dev/null | grep -E '^[0-9]+,' >"$csv" ||
  fail "ext add-range 100 101"
cred() { grep "^$1," "$csv" | cut -d, -f"$2"; } # cred NUMBER FIELD(2=auth_id,3=password)

cport=$(free_port)
dport=$(free_port)
sport=$(free_port)
pal policy set country_code 49 >/dev/null || fail "policy set country_code"
pal policy set international_prefix 00 >/dev/null || fail "policy set international_prefix"
pal policy set national_prefix 0 >/dev/null || fail "policy set national_prefix"
pal policy set allowed_country_codes "" >/dev/null || fail "policy set allowed_country_codes"
pal trunk add carrier --host "$PROV" --port "$cport" --transport udp --username "$TRUNK_USER" \
  --password "$TRUNK_PASS" --source "$PROV/32" --caller-id "$CALLER_ID" >/dev/null || fail "trunk add carrier"
pal trunk add dead --host "$DEAD" --port "$dport" --source "$DEAD/32" --caller-id "$CALLER_ID" >/dev/null ||
  fail "trunk add dead"
pal trunk add silent --host "$SILENT" --port "$sport" --source "$SILENT/32" --caller-id "$CALLER_ID" >/dev/null ||
  fail "trunk add silent"
pal rule add emergency --prefix 1 --min-len 3 --max-len 3 --trunks carrier >/dev/null || fail "rule add emergency"
pal rule add intl --prefix 00 --trunks carrier >/dev/null || fail "rule add intl"
pal rule add out --prefix 0 --strip 1 --trunks carrier >/dev/null || fail "rule add out"
pal rule add fo503 --prefix 8 --strip 1 --trunks dead,carrier >/dev/null || fail "rule add fo503"
pal rule add fotimeout --prefix 6 --strip 1 --trunks silent,carrier >/dev/null || fail "rule add fotimeout"
log "rules: $(pal rule list | tr '\n' '|')"

port=$(free_port)
pal_start "$data" --listen "udp:$HOST:$port" --rtp-ports "$RTP_LO-$RTP_HI"

jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"r": v}))' "$1" "$2"; }
# call_as100 NUMBER [call_client options...] -> JSON on stdout
call_as100() {
  local n=$1
  shift
  timeout -k 2 50 python3 "$CLIENT" call "$HOST:$port" 100 "$(cred 100 2)" "$(cred 100 3)" "$n" "$@"
}
cdr_json() { pal cdr --json --limit 1000; }
ncdr() { cdr_json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
cdr_newest() { # the newest call record, once there are N (write-behind)
  local n=$1 i
  for ((i = 0; i < 40; i++)); do
    [ "$(ncdr)" -ge "$n" ] && break
    sleep 0.1
  done
  cdr_json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(max(r, key=lambda x: x["id"])) if r else "{}")'
}
refusals() { pal events --kind policy_refusal --json --limit 1000; }
nref() { refusals | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# newest_refusal N: the newest policy_refusal event once there are N
newest_refusal() {
  local n=$1 i
  for ((i = 0; i < 40; i++)); do
    [ "$(nref)" -ge "$n" ] && break
    sleep 0.1
  done
  refusals | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps(r[0]) if r else "{}")'
}

# start_provider SCENARIO IP PORT NAME CALLS: sipp UAS as a provider; PID in UAS_PID
start_provider() {
  spawn "$E2E_TMP/$4.out" timeout -k 2 90 sipp -sf "$SCEN/$1" -i "$2" -p "$3" -mi "$2" -m "$5" -nostdin \
    -timeout 85 -trace_msg -message_file "$E2E_TMP/$4.msg" -trace_stat -stf "$E2E_TMP/$4.csv" -fd 1 \
    -trace_err -error_file "$E2E_TMP/$4.err"
  UAS_PID=$BG_PID
  sleep 0.5
  alive "$UAS_PID" || {
    show "$E2E_TMP/$4.out"
    fail "sipp provider $4 did not start"
  }
}
# provider_done NAME PID: sipp ran its calls to the end (exit 0)
provider_done() {
  local i rc=0
  for ((i = 0; i < 100; i++)); do alive "$2" || break; sleep 0.1; done
  alive "$2" && {
    show "$E2E_TMP/$1.msg" 40
    fail "sipp provider $1 still waiting (its scenario did not complete)"
  }
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || {
    show "$E2E_TMP/$1.msg" 60
    show "$E2E_TMP/$1.err" 10
    fail "sipp provider $1 exited $rc (scenario not completed)"
  }
}
# invites NAME: the request lines of the INVITEs the provider received
invites() { tr -d '\r' <"$E2E_TMP/$1.msg" 2>/dev/null | grep -E '^INVITE ' || true; }
# hdr_of_invite NAME N HEADER: header HEADER of the Nth INVITE (1-based) the provider received
hdr_of_invite() {
  python3 - "$E2E_TMP/$1.msg" "$2" "$3" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r\n", "\n")
msgs = [m for m in re.split(r"\n(?=INVITE |ACK |BYE |CANCEL |SIP/2.0 )", text)]
inv = [m for m in msgs if m.lstrip().startswith("INVITE ")]
n, name = int(sys.argv[2]), sys.argv[3].lower()
if len(inv) < n:
    sys.exit(f"only {len(inv)} INVITEs")
for line in inv[n - 1].split("\n")[1:]:
    if ":" in line and line.split(":", 1)[0].strip().lower() == name:
        print(line.split(":", 1)[1].strip())
        break
PY
}
# digest_ok HEADER_VALUE METHOD: the digest response is right for TRUNK_USER/TRUNK_PASS (RFC 7616 MD5, qop auth or none)
digest_ok() {
  python3 - "$1" "$2" "$TRUNK_USER" "$TRUNK_PASS" <<'PY'
import hashlib, re, sys
v, method, user, pw = sys.argv[1:5]
p = {k.lower(): (a if a else b) for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', v)}
h = lambda s: hashlib.md5(s.encode()).hexdigest()
ha1, ha2 = h(f"{user}:{p['realm']}:{pw}"), h(f"{method}:{p['uri']}")
if p.get("qop"):
    want = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
else:
    want = h(f"{ha1}:{p['nonce']}:{ha2}")
sys.exit(0 if p.get("username") == user and p.get("response") == want else 1)
PY
}
expect_answered() { # OUT LABEL
  if [ "$(jget "$1" 'r.get("final")')" != 200 ] || [ "$(jget "$1" 'r.get("bye")')" != 200 ]; then
    fail "$2: expected 407, then 200 and BYE 200, got $1"
  fi
}
# expect_refused NUMBER REASON LABEL: 403 after the 407, a new policy_refusal event with REASON, a call record
expect_refused() {
  local out n0 e0 ev rec
  n0=$(ncdr)
  e0=$(nref)
  local want=${4:-403}
  out=$(call_as100 "$1") || fail "$3: call_client: $out"
  if [ "$(jget "$out" 'r["challenge"]')" != 407 ] || [ "$(jget "$out" 'r["final"]')" != "$want" ]; then
    fail "$3: dialling $1 expected 407 then $want, got $out"
  fi
  ev=$(newest_refusal $((e0 + 1)))
  [ "$(nref)" -gt "$e0" ] || fail "$3: no policy_refusal event after the $want to $1 (events: $(refusals))"
  case $ev in *"$2"*) ;; *) fail "$3: newest policy_refusal event lacks reason $2: $ev" ;; esac
  case $ev in *"$(cred 100 3)"*) fail "$3: the event holds the extension's password: $ev" ;; esac
  rec=$(cdr_newest $((n0 + 1)))
  [ "$(ncdr)" -gt "$n0" ] || fail "$3: no call record for the refused call to $1"
  log "$3: event $ev"
  log "$3: record $rec"
  ok "$3: $1 -> 407, then $(jget "$out" 'r["responses"][-1][1:]'); policy_refusal event with $2; call record $(jget "$rec" 'r.get("disposition")')"
}

# ---- 1. a national call through the challenging provider
start_provider trunk_provider_auth.xml "$PROV" "$cport" national 1
out=$(call_as100 0301234567) || fail "call 0301234567: $out"
log "0301234567: $out"
provider_done national "$UAS_PID"
ruri=$(invites national | head -1)
[ "$ruri" = "INVITE sip:301234567@$PROV:$cport SIP/2.0" ] ||
  fail "provider's first INVITE: '$ruri' (expected INVITE sip:301234567@$PROV:$cport SIP/2.0)"
[ "$(invites national | wc -l)" = 2 ] || fail "provider got $(invites national | wc -l) INVITEs (expected 2: one before and one after its 407)"
from=$(hdr_of_invite national 1 from)
case $from in *"sip:$CALLER_ID@"*) ;; *) fail "provider's INVITE From is '$from' (expected user $CALLER_ID, the trunk's caller ID)" ;; esac
pauth=$(hdr_of_invite national 2 proxy-authorization)
case $pauth in *"username=\"$TRUNK_USER\""*) ;; *) fail "second INVITE's Proxy-Authorization: '$pauth' (expected username=\"$TRUNK_USER\")" ;; esac
case $pauth in *"realm=\"carrier.e2e.test\""*) ;; *) fail "Proxy-Authorization realm: '$pauth'" ;; esac
# sipp 3.6.1's verifyauth ignores Proxy-Authorization: check the digest response here
digest_ok "$pauth" INVITE || fail "second INVITE's Proxy-Authorization does not hold the right digest response for $TRUNK_USER/$TRUNK_PASS: $pauth"
expect_answered "$out" "0301234567 through carrier"
rec=$(cdr_newest 1)
[ "$(jget "$rec" 'r.get("disposition")')" = answered ] || fail "call record of 0301234567: $rec"
log "record: $rec"
ok "0301234567: provider got '$ruri', From $from, then (after its 407) Proxy-Authorization username=$TRUNK_USER with the right digest response; caller got 200, BYE 200; record answered (callee $(jget "$rec" 'r.get("callee")'))"

# ---- 2. refusals: none reaches the provider (which listens meanwhile and then takes the next allowed call)
start_provider trunk_provider_auth.xml "$PROV" "$cport" intl 1
expect_refused 0044207946000 country_not_allowed "UK with allowed_country_codes \"\""
expect_refused 00252611234567 country_not_allowed "Somalia (252)"
expect_refused 000252611234567 bad_number "a 0 after the international prefix (000252611234567)" 404
pal ext set 100 --internal-only true >/dev/null || fail "ext set 100 --internal-only true"
sleep 1.5
expect_refused 0301234567 internal_only "internal-only 100"
[ -z "$(invites intl)" ] || fail "a refused call reached the provider: $(invites intl)"
ok "none of the refused calls reached the provider"

# ---- 3. emergency from the internal-only extension
out=$(call_as100 112) || fail "call 112: $out"
log "112: $out"
provider_done intl "$UAS_PID"
ruri=$(invites intl | head -1)
[ "$ruri" = "INVITE sip:112@$PROV:$cport SIP/2.0" ] || fail "emergency: provider's INVITE '$ruri' (expected sip:112@$PROV:$cport)"
expect_answered "$out" "112 from internal-only 100"
ok "emergency 112 from internal-only 100: provider got '$ruri', call answered"

# ---- 3b. office-hours-only (no office hours configured) and PIN-protected: 403, emergency still out
pal ext set 100 --internal-only false --office-hours-only true >/dev/null ||
  fail "ext set 100 --internal-only false --office-hours-only true"
sleep 1.5
start_provider trunk_provider_auth.xml "$PROV" "$cport" hours 1
expect_refused 0301234567 outside_office_hours "office-hours-only 100, no hours configured"
pal ext set 100 --office-hours-only false --pin-protect true >/dev/null ||
  fail "ext set 100 --office-hours-only false --pin-protect true"
sleep 1.5
expect_refused 0301234567 pin_ "PIN-protected 100 (no 777 unlock yet)"
[ -z "$(invites hours)" ] || fail "a refused call reached the provider: $(invites hours)"
pal ext set 100 --office-hours-only true >/dev/null || fail "ext set 100 --office-hours-only true"
sleep 1.5
out=$(call_as100 112) || fail "call 112: $out"
provider_done hours "$UAS_PID"
[ "$(invites hours | head -1)" = "INVITE sip:112@$PROV:$cport SIP/2.0" ] ||
  fail "emergency from a PIN-protected, office-hours-only 100: provider's INVITE '$(invites hours | head -1)'"
expect_answered "$out" "112 from PIN-protected, office-hours-only 100"
ok "emergency 112 from PIN-protected, office-hours-only 100 (outside hours): provider got '$(invites hours | head -1)', answered"
pal ext set 100 --office-hours-only false --pin-protect false >/dev/null ||
  fail "ext set 100 --office-hours-only false --pin-protect false"

# ---- 4. the UK once allowed (changed on the running server)
pal policy set allowed_country_codes 44 >/dev/null || fail "policy set allowed_country_codes 44"
sleep 1.5
start_provider trunk_provider_auth.xml "$PROV" "$cport" uk 1
out=$(call_as100 0044207946000) || fail "call 0044207946000: $out"
log "0044207946000: $out"
provider_done uk "$UAS_PID"
ruri=$(invites uk | head -1)
[ "$ruri" = "INVITE sip:0044207946000@$PROV:$cport SIP/2.0" ] ||
  fail "UK call: provider's INVITE '$ruri' (expected sip:0044207946000@$PROV:$cport: rule intl does not rewrite)"
expect_answered "$out" "0044207946000 with allowed_country_codes 44"
ok "allowed_country_codes 44: 0044207946000 goes out ('$ruri'), answered"
expect_refused 00252611234567 country_not_allowed "Somalia (252) with allowed_country_codes 44"

# ---- 5. failover: dead answers 503 -> carrier
start_provider trunk_provider_503.xml "$DEAD" "$dport" dead 1
dead_pid=$UAS_PID
start_provider trunk_provider_auth.xml "$PROV" "$cport" fo503 1
out=$(call_as100 80301234567) || fail "call 80301234567: $out"
log "80301234567: $out"
provider_done dead "$dead_pid"
provider_done fo503 "$UAS_PID"
[ "$(invites dead | head -1)" = "INVITE sip:0301234567@$DEAD:$dport SIP/2.0" ] ||
  fail "failover: the first trunk (dead) got '$(invites dead | head -1)'"
[ "$(invites fo503 | head -1)" = "INVITE sip:0301234567@$PROV:$cport SIP/2.0" ] ||
  fail "failover: carrier got '$(invites fo503 | head -1)'"
expect_answered "$out" "failover after 503"
ok "failover: dead answered 503 to '$(invites dead | head -1)', then carrier got '$(invites fo503 | head -1)', answered"

# ---- 6. failover on timeout: nothing listens on silent's address
start_provider trunk_provider_auth.xml "$PROV" "$cport" fotime 1
t0=$(date +%s.%N)
out=$(call_as100 60301234567 --wait 45) || fail "failover on timeout (60301234567): the caller got no final answer within 45 s: $out"
t1=$(date +%s.%N)
log "60301234567: $out"
[ -n "$(invites fotime)" ] ||
  fail "failover on timeout: trunk silent ($SILENT:$sport, nothing listening) timed out but carrier never got an INVITE; the caller got $(jget "$out" 'r["responses"]') after $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
provider_done fotime "$UAS_PID"
expect_answered "$out" "failover after a timeout"
ok "failover on timeout: carrier got '$(invites fotime | head -1)' after silent timed out; answered ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"

alive "$PAL_PID" || fail "palisade died"
no_panic
pal_stop
