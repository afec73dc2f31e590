#!/usr/bin/env bash
# Provisioning as each vendor's phone fetches it (issue 14): curl with the phone's User-Agent and file names over
# HTTPS, verifying the server's certificate. Every file parses (XML well-formed, key = value sets) and holds TLS,
# mandatory SRTP, the auth ID and a password, DTMF, voicemail/MWI and the trusted certificate; the password
# registers over TLS (real digest REGISTER). The secret is served once: a second fetch from the same phone has
# no password, another MAC gets the same 404 as an unknown token, plain HTTP only redirects. `phone reprovision`
# rotates the password: the old one is refused, the new one registers.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need curl python3

data=$E2E_TMP/data
tls=$(free_port)
pal_start "$data" --listen "tls:$HOST:$tls"
port=$PAL_ADMIN_PORT
ca=$data/tls/cert.pem
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

# model  ext  mac           user-agent                                                    files (common…, device last)
cat >"$E2E_TMP/phones" <<'LIST'
yealink 201 001565a1b2c3 Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3|y000000000044.cfg 001565a1b2c3.cfg
snom 202 000413a1b2c3 Mozilla/4.0 (compatible; snomD735-SIP 10.1.33.33; 000413A1B2C3)|snomD735.xml 000413A1B2C3.xml
grandstream 203 000b82a1b2c3 Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82a1b2c3|cfg000b82a1b2c3.xml
polycom 204 0004f2a1b2c3 FileTransport PolycomVVX-VVX_411-UA/6.3.0.14929|000000000000.cfg 0004f2a1b2c3.cfg 0004f2a1b2c3-phone.cfg
linphone 205 - Linphone/5.1.65 (belle-sip/5.1.0)|linphone.xml
generic 206 - curl/8|phone.cfg
LIST

fetch() { # URL UA OUT → HTTP status
  curl -s --cacert "$ca" -A "$2" -o "$3" -w '%{http_code}' --max-time 10 "$1" || echo "curl-failed"
}

declare -A URL PW AUTH
while IFS= read -r line; do
  read -r model ext mac ua_files <<<"$line"
  ua=${ua_files%%|*}
  files=${ua_files#*|}
  pal ext add "$ext" --srtp enforced >/dev/null
  macarg=()
  [ "$mac" = - ] || macarg=("$mac")
  out=$(pal phone add "${macarg[@]}" --ext "$ext" --model "$model" --host "$HOST:$port" --json) ||
    fail "phone add $model failed"
  url=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  case $url in "https://$HOST:$port/prov/"????????????????????????????????/) ;; *) fail "$model: odd URL $url" ;; esac
  URL[$model]=$url
  AUTH[$model]=$(pal ext show "$ext" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_id"])')
  dev=${files##* }
  if [ "$model" = yealink ]; then
    # A HEAD first (some phones check before they fetch) does not spend the one credentials response.
    st=$(curl -s --cacert "$ca" -A "$ua" -I -o /dev/null -w '%{http_code}' --max-time 10 "$url$dev" || true)
    [ "$st" = 200 ] || fail "yealink: HEAD $dev answered $st"
  fi
  for f in $files; do
    st=$(fetch "$url$f" "$ua" "$E2E_TMP/$model.$f")
    [ "$st" = 200 ] || fail "$model: GET $f as '$ua' answered $st"
  done
  # Non-device files hold no secret.
  for f in $files; do
    [ "$f" = "$dev" ] && continue
    if grep -qi 'password\|passwd\|P34>\|user_pass' "$E2E_TMP/$model.$f"; then
      show "$E2E_TMP/$model.$f" 20
      fail "$model: the common file $f holds a password"
    fi
  done
  parsed=$(python3 "$E2E_DIR/prov_client.py" parse "$model" "$E2E_TMP/$model.$dev") || {
    show "$E2E_TMP/$model.$dev" 40
    fail "$model: $dev does not parse"
  }
  check=$(printf '%s' "$parsed" | python3 -c '
import json, sys
r = json.load(sys.stdin)
want_auth, model = sys.argv[1], sys.argv[2]
bad = [k for k in ("tls", "srtp", "mwi", "dtmf", "ca") if r[k] is not None and not r[k]]
if not r["password"] or len(r["password"]) < 10: bad.append("password")
if r["auth_id"] != want_auth: bad.append("auth_id")
if not r["admin_password"]: bad.append("admin_password")
if r["voicemail"] != "999": bad.append("voicemail")
print(" ".join(bad) or "ok")
print(r["password"] or "")' "${AUTH[$model]}" "$model")
  verdict=$(printf '%s\n' "$check" | sed -n 1p)
  [ "$verdict" = ok ] || {
    show "$E2E_TMP/$model.$dev" 40
    fail "$model: $dev lacks: $verdict"
  }
  PW[$model]=$(printf '%s\n' "$check" | sed -n 2p)
  ok "$model: $files served and parsed; TLS, SRTP mandatory, auth ID, password, DTMF, voicemail, MWI, CA (where the format has them)"
done <"$E2E_TMP/phones"

# The served certificate is the server's.
st=$(fetch "${URL[yealink]}ca.pem" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3" "$E2E_TMP/ca.pem")
[ "$st" = 200 ] || fail "ca.pem answered $st"
cmp -s "$E2E_TMP/ca.pem" "$ca" || fail "ca.pem is not DATA/tls/cert.pem"
ok "ca.pem is the server's certificate"

register() { # NUMBER AUTH PASSWORD → final status code
  timeout -k 2 15 python3 "$E2E_DIR/reg_client.py" "$HOST:$tls" tls "$1" "$2" "$3" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["final"]["code"])' || echo none
}
st=$(register 201 "${AUTH[yealink]}" "${PW[yealink]}")
[ "$st" = 200 ] || fail "the password served to the Yealink does not register over TLS ($st)"
ok "the served password registers over TLS"

# Served once: the same phone fetching again gets its file without the password.
st=$(fetch "${URL[yealink]}001565a1b2c3.cfg" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3" "$E2E_TMP/again.cfg")
[ "$st" = 200 ] || fail "the bound Yealink's second fetch answered $st"
if grep -q 'password' "$E2E_TMP/again.cfg"; then fail "the second fetch carries a password again"; fi
ok "a second fetch from the bound phone has no password"

# Refusals all look the same: unknown token, another MAC in the path, another MAC in the User-Agent.
st1=$(fetch "https://$HOST:$port/prov/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/001565a1b2c3.cfg" "x" "$E2E_TMP/r1")
st2=$(fetch "${URL[yealink]}001565a1b2c4.cfg" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c4" "$E2E_TMP/r2")
st3=$(fetch "${URL[yealink]}y000000000044.cfg" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c4" "$E2E_TMP/r3")
[ "$st1 $st2 $st3" = "404 404 404" ] || fail "refusals answered $st1 $st2 $st3, expected 404 404 404"
cmp -s "$E2E_TMP/r1" "$E2E_TMP/r2" || fail "refusals differ in their body"
cmp -s "$E2E_TMP/r1" "$E2E_TMP/r3" || fail "refusals differ in their body"
ok "unknown token, wrong MAC in path and in User-Agent: the same 404"
# Refusal events are written in batches, every half second.
for ((i = 0; i < 30; i++)); do
  n=$(pal events --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["kind"]=="provisioning_refused"))')
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
[ "$n" -ge 3 ] || fail "expected 3 provisioning_refused security events, found $n"
ok "each refusal is a provisioning_refused security event"

# Never in clear: plain HTTP to the same port redirects, with no file.
st=$(curl -s -o "$E2E_TMP/plain" -w '%{http_code} %{redirect_url}' --max-time 5 "http://$HOST:$port/prov/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/x.cfg")
case $st in "308 https://"*) ;; *) fail "plain HTTP answered '$st'" ;; esac
ok "plain HTTP only redirects to HTTPS"

# reprovision: a new URL; the old password keeps working until the phone fetches the new one, then stops.
out=$(pal phone reprovision 00:15:65:A1:B2:C3 --host "$HOST:$port" --json)
url=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
[ "$url" != "${URL[yealink]}" ] || fail "reprovision kept the URL"
st=$(fetch "${URL[yealink]}001565a1b2c3.cfg" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3" "$E2E_TMP/old.cfg")
[ "$st" = 404 ] || fail "the old URL still answers ($st) after reprovision"
st=$(register 201 "${AUTH[yealink]}" "${PW[yealink]}")
[ "$st" = 200 ] || fail "the current password stopped working before the phone fetched the new one ($st)"
st=$(fetch "${url}001565a1b2c3.cfg" "Yealink SIP-T46S 66.86.0.15 00:15:65:a1:b2:c3" "$E2E_TMP/new.cfg")
[ "$st" = 200 ] || fail "the new URL answered $st"
new=$(python3 "$E2E_DIR/prov_client.py" parse yealink "$E2E_TMP/new.cfg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"] or "")')
[ -n "$new" ] || fail "reprovision served no password"
[ "$new" != "${PW[yealink]}" ] || fail "reprovision served the old password"
st=$(register 201 "${AUTH[yealink]}" "${PW[yealink]}")
[ "$st" != 200 ] || fail "the old password still registers after the phone fetched the new one"
st=$(register 201 "${AUTH[yealink]}" "$new")
[ "$st" = 200 ] || fail "the new password does not register ($st)"
ok "reprovision: old password worked until the fetch, then refused; the new one registers"

state=$(pal phone show 001565a1b2c3 --json | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["state"], p["bound_source"], bool(p["admin_password"]))')
[ "$state" = "provisioned $HOST True" ] || fail "phone show says '$state'"
ok "phone show: provisioned, bound to $HOST, web-admin password shown"

no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
