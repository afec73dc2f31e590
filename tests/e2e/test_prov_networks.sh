#!/usr/bin/env bash
# Who may fetch provisioning files (issue 14): `provisioning_networks` lets phones outside `admin_networks` reach
# /prov/ and nothing else, and keeps /prov/ from sources outside it (here admin 127.0.0.1/32, phones
# 127.0.0.2/32; 127.0.0.3 is in neither and is refused before TLS). With `provisioning_client_certs`, a phone that
# presents a (vendor) client certificate is bound to it: its fingerprint is recorded, and the same URL and MAC
# without that certificate (or with another) get 404.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need curl openssl python3

data=$E2E_TMP/data
mkdir -p "$data"
chmod 700 "$data"
cat >"$data/palisade.toml" <<'TOML'
admin_networks = ["127.0.0.1/32"]
provisioning_networks = ["127.0.0.2/32"]
provisioning_client_certs = true
TOML
sip=$(free_port)
pal_start "$data" --listen "tls:$HOST:$sip"
port=$PAL_ADMIN_PORT
pal() { "$PALISADE_BIN" "$@" --data "$data"; }

pal ext add 501 >/dev/null
url=$(pal phone add 00:15:65:0a:0b:0c --ext 501 --model yealink --host "127.0.0.1:$port" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
ua="Yealink SIP-T46S 66.86.0.15 00:15:65:0a:0b:0c"
# A "vendor" device certificate, and another one.
for c in dev other; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$c.e2e.test" \
    -keyout "$E2E_TMP/$c.key" -out "$E2E_TMP/$c.pem" 2>/dev/null || fail "openssl req ($c)"
done
get() { # SOURCE URL [curl args...] → status (000: no HTTP answer)
  local src=$1 u=$2
  shift 2
  curl -s -k --interface "$src" -A "$ua" -o "$E2E_TMP/body" -w '%{http_code}' --max-time 10 "$@" "$u" || true
}

st=$(get 127.0.0.1 "https://127.0.0.1:$port/login")
[ "$st" = 200 ] || fail "the administrator's address got $st for /login"
st=$(get 127.0.0.1 "${url}0015650a0b0c.cfg")
[ "$st" = 404 ] || fail "/prov/ from outside provisioning_networks answered $st, not 404"
ok "admin address: the console answers, /prov/ is 404"

st=$(get 127.0.0.2 "https://127.0.0.1:$port/login")
[ "$st" = 404 ] || fail "a phone-only address got $st for /login, not 404"
st=$(get 127.0.0.3 "https://127.0.0.1:$port/login")
case $st in 000*) ;; *) fail "an address in neither list got HTTP $st, not a refused connection" ;; esac
ok "phone address: no console (404); an address in neither list: connection refused"

st=$(get 127.0.0.2 "${url}001565a0b0c0.cfg" --cert "$E2E_TMP/dev.pem" --key "$E2E_TMP/dev.key")
[ "$st" = 404 ] || fail "a wrong MAC answered $st"
st=$(get 127.0.0.2 "${url}0015650a0b0c.cfg" --cert "$E2E_TMP/dev.pem" --key "$E2E_TMP/dev.key")
[ "$st" = 200 ] || fail "the phone with its certificate got $st"
grep -q '^account.1.password = ' "$E2E_TMP/body" || fail "the first fetch carries no password"
want=$(openssl x509 -in "$E2E_TMP/dev.pem" -outform der | sha256sum | cut -d' ' -f1)
got=$(pal phone show 0015650a0b0c --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bound_cert_sha256"])')
[ "$got" = "$want" ] || fail "the phone is bound to certificate '$got', not the one it presented ($want)"
ok "provisioned from 127.0.0.2 with a client certificate: bound to its SHA-256"

st=$(get 127.0.0.2 "${url}0015650a0b0c.cfg")
[ "$st" = 404 ] || fail "the bound URL without the certificate answered $st, not 404"
st=$(get 127.0.0.2 "${url}0015650a0b0c.cfg" --cert "$E2E_TMP/other.pem" --key "$E2E_TMP/other.key")
[ "$st" = 404 ] || fail "the bound URL with another certificate answered $st, not 404"
st=$(get 127.0.0.2 "${url}0015650a0b0c.cfg" --cert "$E2E_TMP/dev.pem" --key "$E2E_TMP/dev.key")
[ "$st" = 200 ] || fail "the bound phone with its certificate got $st on a refetch"
if grep -q 'password' "$E2E_TMP/body"; then fail "the refetch carries a password again"; fi
ok "same URL and MAC without the certificate or with another: 404; with it: the file, without secrets"

no_panic "$PAL_ERR"
pal_stop "$PAL_PID"
