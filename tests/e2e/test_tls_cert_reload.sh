#!/usr/bin/env bash
# The TLS certificate (issue 6, "Show"): `palisade cert show` and reloading without a restart.
#   1. self-signed (fresh DATA, --domain pbx.e2e.test): `palisade cert show --json` reports
#      DATA/tls/cert.pem, source self-signed, key ok, the subject and SANs (DNS:pbx.e2e.test,
#      DNS:localhost, IP:127.0.0.1, IP:::1) and SHA-256 fingerprint that openssl reads from the file,
#      and `openssl s_client` is served exactly that certificate;
#   2. palisade.toml `tls_cert`/`tls_key` (relative paths, Ed25519 certificates made with openssl):
#      cert show names them (source palisade.toml); s_client gets cert 1. Both files are replaced
#      (new files renamed over the old, as certbot-style tools do) by cert 2 while the server runs:
#      a new handshake presents cert 2 within 3.5 s (the server polls every 2 s), with the same PID,
#      and the log says "TLS certificate reloaded"; cert show follows;
#   3. SIGHUP: cert 3 written over cert 2 in place with the same size, inode and modification time
#      (so the poll cannot see it: still cert 2 after 3 s, which also proves the SIGHUP is what
#      reloads), then SIGHUP: cert 3 within 1.5 s, same PID;
#   4. a broken certificate file (garbage) is refused: the server keeps serving cert 3 and keeps
#      running, and logs that the certificate was not reloaded; fixing the file (cert 4) is picked up;
#   5. --tls-cert/--tls-key on the command line (files elsewhere): rewritten in place (cat >) with
#      cert 5, served within 3.5 s.
# Ports 30450-30499.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=30450 E2E_PORT_MAX=30499
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need openssl python3 ss

# fingerprint of a PEM file / of what the server presents on a new handshake
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
served_fp() {
  timeout -k 1 5 openssl s_client -connect "$HOST:$1" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
# mkcert DIR NAME: an Ed25519 self-signed certificate for NAME (fixed serial: the same size for names of
# the same length) into DIR/cert.pem and DIR/key.pem, written to temporary files first
mkcert() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  openssl req -x509 -newkey ed25519 -nodes -days 30 -set_serial 0x1e2e -subj "/CN=$name/O=Palisade e2e" \
    -addext "subjectAltName=DNS:$name,IP:127.0.0.1" -keyout "$dir/key.new" -out "$dir/cert.new" >/dev/null 2>&1 ||
    fail "openssl cannot make an Ed25519 certificate"
}
# wait_fp PORT FP SECONDS: poll new handshakes until FP is served; prints the delay in ms
wait_fp() {
  local p=$1 want=$2 secs=$3 t0 now got
  t0=$(date +%s%N)
  while :; do
    got=$(served_fp "$p" || true)
    now=$(date +%s%N)
    if [ "$got" = "$want" ]; then
      echo $(((now - t0) / 1000000))
      return 0
    fi
    [ $(((now - t0) / 1000000)) -lt $((secs * 1000)) ] || {
      echo "timeout (last served ${got:-nothing})"
      return 1
    }
    sleep 0.2
  done
}
show_json() { "$PALISADE_BIN" cert show --json --data "$1"; }

# ---- 1. self-signed
data=$E2E_TMP/data
port=$(free_port)
pal_start "$data" --listen "tls:$HOST:$port" --domain pbx.e2e.test
[ -s "$data/tls/cert.pem" ] || fail "no $data/tls/cert.pem after the first start"
show_json "$data" >"$E2E_TMP/show1.json" || fail "palisade cert show --json: $(cat "$E2E_TMP/show1.json")"
fp=$(file_fp "$data/tls/cert.pem")
subj=$(openssl x509 -in "$data/tls/cert.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
sans=$(openssl x509 -in "$data/tls/cert.pem" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
res=$(python3 - "$E2E_TMP/show1.json" "$data/tls/cert.pem" "$fp" "$subj" "$sans" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
path, fp, subj, sans = sys.argv[2:6]
errs = []
if j.get("cert_file") != path: errs.append("cert_file %r, expected %r" % (j.get("cert_file"), path))
if j.get("source") != "self-signed": errs.append("source %r" % j.get("source"))
if j.get("key_status") != "ok": errs.append("key_status %r" % j.get("key_status"))
if (j.get("sha256_fingerprint") or "").upper() != fp.upper(): errs.append("fingerprint %r, openssl says %r" % (j.get("sha256_fingerprint"), fp))
want = {"DNS:pbx.e2e.test", "DNS:localhost", "IP:127.0.0.1"}
got = set(j.get("sans") or [])
if not want <= got or not any(s.startswith("IP:") and ":" in s[3:] for s in got): errs.append("sans %r, expected %s and IP:::1" % (sorted(got), sorted(want)))
# openssl: "DNS:pbx.e2e.test,DNS:localhost,IP Address:127.0.0.1,IP Address:0:0:0:0:0:0:0:1"
if len(sans.split(",")) != len(got): errs.append("sans %r, openssl lists %r" % (sorted(got), sans))
# subject: the same attributes as openssl's RFC 2253 form, order aside
norm = lambda s: sorted(p.strip() for p in s.split(","))
if norm(j.get("subject") or "") != norm(subj): errs.append("subject %r, openssl says %r" % (j.get("subject"), subj))
if j.get("expired") is not False or not j.get("not_after_utc"): errs.append("validity %r/%r" % (j.get("expired"), j.get("not_after_utc")))
if errs:
    sys.exit("; ".join(errs))
print("subject %s, sans %s, sha256 %s..." % (j["subject"], ",".join(j["sans"]), j["sha256_fingerprint"][:23]))
PY
) || fail "cert show (self-signed): $res"
served=$(served_fp "$port")
[ "$served" = "$fp" ] || fail "s_client is served $served, DATA/tls/cert.pem is $fp"
ok "cert show --json (self-signed): $res; the same fingerprint is served"
pal_stop

# ---- 2. palisade.toml tls_cert/tls_key, files replaced (rename)
data2=$E2E_TMP/data2
mkdir -p "$data2/mycert"
mkcert "$data2/mycert" pbx1.e2e.test
mv "$data2/mycert/key.new" "$data2/mycert/key.pem"
mv "$data2/mycert/cert.new" "$data2/mycert/cert.pem"
printf 'tls_cert = "mycert/cert.pem"\ntls_key = "mycert/key.pem"\n' >"$data2/palisade.toml"
fp1=$(file_fp "$data2/mycert/cert.pem")
port=$(free_port)
pal_start "$data2" --listen "tls:$HOST:$port"
pid=$PAL_PID
show_json "$data2" >"$E2E_TMP/show2.json" || fail "palisade cert show --json: $(cat "$E2E_TMP/show2.json")"
python3 - "$E2E_TMP/show2.json" "$data2/mycert/cert.pem" "$fp1" <<'PY' || fail "cert show with palisade.toml: $(cat "$E2E_TMP/show2.json")"
import json, sys
j = json.load(open(sys.argv[1]))
ok = (j["source"] == "palisade.toml" and j["cert_file"] == sys.argv[2] and j["sha256_fingerprint"].upper() == sys.argv[3].upper()
      and j["key_status"] == "ok" and "CN=pbx1.e2e.test" in j["subject"] and "DNS:pbx1.e2e.test" in j["sans"])
sys.exit(0 if ok else 1)
PY
served=$(served_fp "$port")
[ "$served" = "$fp1" ] || fail "palisade.toml cert: s_client is served ${served:-nothing}, expected cert 1 $fp1"
ok "palisade.toml tls_cert/tls_key: cert show names mycert/cert.pem (source palisade.toml, CN=pbx1.e2e.test), cert 1 served"

mkcert "$data2/mycert" pbx2.e2e.test
fp2=$(file_fp "$data2/mycert/cert.new")
mv "$data2/mycert/key.new" "$data2/mycert/key.pem"
mv "$data2/mycert/cert.new" "$data2/mycert/cert.pem"
dt=$(wait_fp "$port" "$fp2" 4) || {
  show "$PAL_ERR"
  fail "cert 2 renamed over cert 1: not served within 4 s ($dt)"
}
[ "$dt" -le 3500 ] || fail "cert 2 served only after $dt ms (expected within 3.5 s)"
alive "$pid" || fail "palisade died"
grep -q 'TLS certificate reloaded' "$PAL_ERR" || fail "no 'TLS certificate reloaded' in the log"
[ "$(show_json "$data2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256_fingerprint"])')" = "$fp2" ] ||
  fail "cert show does not show cert 2"
ok "cert 2 renamed over cert 1 while running: served after $dt ms, same pid $pid, logged, cert show follows"

# ---- 3. SIGHUP: cert 3 written in place with the same stamps (size, inode, mtime)
sighup_ok=0
for try in 1 2 3; do
  mkcert "$data2/mycert" "pbx3.e2e.test"
  fp3=$(file_fp "$data2/mycert/cert.new")
  for f in cert key; do
    [ "$(stat -c %s "$data2/mycert/$f.new")" = "$(stat -c %s "$data2/mycert/$f.pem")" ] ||
      fail "cert 3's $f.pem has another size than cert 2's (the SIGHUP check needs the same size)"
  done
  ino_before=$(stat -c %i "$data2/mycert/cert.pem")
  touch -r "$data2/mycert/cert.pem" "$E2E_TMP/ref.cert"
  touch -r "$data2/mycert/key.pem" "$E2E_TMP/ref.key"
  cat "$data2/mycert/key.new" >"$data2/mycert/key.pem"
  cat "$data2/mycert/cert.new" >"$data2/mycert/cert.pem"
  touch -r "$E2E_TMP/ref.key" "$data2/mycert/key.pem"
  touch -r "$E2E_TMP/ref.cert" "$data2/mycert/cert.pem"
  [ "$(stat -c %i "$data2/mycert/cert.pem")" = "$ino_before" ] || fail "in-place write changed the inode"
  sleep 3
  served=$(served_fp "$port")
  if [ "$served" = "$fp3" ]; then
    log "try $try: the poll caught the in-place write between write and touch; again"
    continue
  fi
  [ "$served" = "$fp2" ] || fail "before SIGHUP: served ${served:-nothing}, expected still cert 2"
  nlog=$(grep -c 'TLS certificate reloaded' "$PAL_ERR" || true)
  kill -HUP "$pid"
  dt=$(wait_fp "$port" "$fp3" 2) || {
    show "$PAL_ERR"
    fail "SIGHUP: cert 3 not served within 2 s ($dt)"
  }
  [ "$dt" -le 1500 ] || fail "SIGHUP: cert 3 served only after $dt ms"
  alive "$pid" || fail "palisade died after SIGHUP"
  [ "$(grep -c 'TLS certificate reloaded' "$PAL_ERR" || true)" -gt "$nlog" ] || fail "no new 'TLS certificate reloaded' log after SIGHUP"
  grep -q 'SIGHUP' "$PAL_ERR" || fail "the log does not mention SIGHUP"
  sighup_ok=1
  break
done
[ "$sighup_ok" = 1 ] || fail "SIGHUP check could not be set up in 3 tries"
ok "cert 3 written in place with cert 2's size/inode/mtime: still cert 2 after 3 s (no poll reload); SIGHUP: cert 3 after $dt ms, same pid"

# ---- 4. a broken certificate is not taken; the fixed one is
nerr=$(grep -c 'not reloaded' "$PAL_ERR" || true)
printf -- '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' >"$data2/mycert/cert.pem"
kill -HUP "$pid"
sleep 2.5
alive "$pid" || fail "palisade died on a broken certificate"
[ "$(grep -c 'not reloaded' "$PAL_ERR" || true)" -gt "$nerr" ] || {
  show "$PAL_ERR"
  fail "a broken certificate file: no 'not reloaded' error in the log"
}
served=$(served_fp "$port")
[ "$served" = "$fp3" ] || fail "after a broken certificate file: served ${served:-nothing}, expected cert 3 to stay"
mkcert "$data2/mycert" pbx4.e2e.test
fp4=$(file_fp "$data2/mycert/cert.new")
mv "$data2/mycert/key.new" "$data2/mycert/key.pem"
mv "$data2/mycert/cert.new" "$data2/mycert/cert.pem"
dt=$(wait_fp "$port" "$fp4" 4) || fail "fixed certificate (cert 4) not served within 4 s ($dt)"
ok "broken certificate file: logged 'not reloaded', cert 3 kept, server alive; fixed file (cert 4) served after $dt ms"
no_panic
pal_stop

# ---- 5. --tls-cert/--tls-key, rewritten in place
cdir=$E2E_TMP/flagcert
mkcert "$cdir" pbx5.e2e.test
mv "$cdir/key.new" "$cdir/key.pem"
mv "$cdir/cert.new" "$cdir/cert.pem"
fp5a=$(file_fp "$cdir/cert.pem")
port=$(free_port)
pal_start "$E2E_TMP/data3" --listen "tls:$HOST:$port" --tls-cert "$cdir/cert.pem" --tls-key "$cdir/key.pem"
served=$(served_fp "$port")
[ "$served" = "$fp5a" ] || fail "--tls-cert: served ${served:-nothing}, expected $fp5a"
sleep 1.1 # a new modification time even on coarse clocks
mkcert "$cdir" pbx6.e2e.test
fp5b=$(file_fp "$cdir/cert.new")
cat "$cdir/key.new" >"$cdir/key.pem"
cat "$cdir/cert.new" >"$cdir/cert.pem"
dt=$(wait_fp "$port" "$fp5b" 4) || {
  show "$PAL_ERR"
  fail "--tls-cert file rewritten in place: new certificate not served within 4 s ($dt)"
}
[ "$dt" -le 3500 ] || fail "--tls-cert rewritten: new certificate served only after $dt ms"
ok "--tls-cert/--tls-key rewritten in place (cat >): new certificate served after $dt ms, no restart"
no_panic
pal_stop
