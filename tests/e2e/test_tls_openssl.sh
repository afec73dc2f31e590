#!/usr/bin/env bash
# SIP over TLS with openssl s_client:
#   * TLS 1.2 and TLS 1.3 handshakes complete, and the certificate served is DATA/tls/cert.pem
#     (created at first start);
#   * an OPTIONS (with Content-Length) sent through each TLS connection gets "SIP/2.0 200";
#   * TLS 1.1 and 1.0 are refused — checked only after proving that this openssl client can
#     speak them at all (against a throwaway openssl s_server), so the refusal is palisade's.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need openssl ss

port=$(free_port)
data=$E2E_TMP/data
pal_start "$data" --listen "tls:$HOST:$port"
if [ ! -s "$data/tls/cert.pem" ] || [ ! -s "$data/tls/key.pem" ]; then
  fail "first start did not create $data/tls/cert.pem and key.pem"
fi
want_fp=$(openssl x509 -in "$data/tls/cert.pem" -noout -fingerprint -sha256) ||
  fail "$data/tls/cert.pem is not a PEM certificate"

options_msg() { # a complete OPTIONS request, CRLF line ends
  local tag=$1
  printf '%s\r\n' \
    "OPTIONS sip:ping@$HOST:$port;transport=tls SIP/2.0" \
    "Via: SIP/2.0/TLS $HOST:5061;branch=z9hG4bK-e2e-$tag-$RANDOM" \
    "Max-Forwards: 70" \
    "From: <sip:e2e@$HOST>;tag=e2e$tag" \
    "To: <sip:ping@$HOST>" \
    "Call-ID: e2e-tls-$tag-$RANDOM@$HOST" \
    "CSeq: 1 OPTIONS" \
    "Content-Length: 0" \
    ""
}

# Send one OPTIONS through an s_client connection, keep stdin open until a status line
# arrives (at most 5 s), then close. Output in $E2E_TMP/s_client.$1.{out,err}.
# (The feeding side reads the file s_client writes: that is the point, hence SC2094.)
# shellcheck disable=SC2094
tls_options() { # name, s_client args...
  local name=$1 out err i
  shift
  out=$E2E_TMP/s_client.$name.out err=$E2E_TMP/s_client.$name.err
  {
    options_msg "$name"
    for ((i = 0; i < 50; i++)); do
      grep -q '^SIP/2.0 ' "$out" 2>/dev/null && break
      sleep 0.1
    done
  } | timeout -k 2 15 openssl s_client -connect "$HOST:$port" -servername localhost "$@" \
    >"$out" 2>"$err" || true
}

# s_client's verbose output: "New, <cipher's version>, Cipher is X" once a handshake is done
# ("(NONE)" otherwise) and the negotiated version in the SSL-Session block.
handshake_ok() { # file, TLSv1.x
  grep -q '^New, TLS.*, Cipher is ' "$1" && grep -Eq "^ +Protocol +: $2\$" "$1"
}

for v in 1_2 1_3; do
  name=tls$v
  tls_options "$name" "-tls$v"
  out=$E2E_TMP/s_client.$name.out
  want="TLSv${v/_/.}"
  handshake_ok "$out" "$want" || {
    show "$out" 30
    show "$E2E_TMP/s_client.$name.err" 10
    fail "no $want handshake with palisade"
  }
  # the certificate presented is the one first start wrote
  got_fp=$(sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$out" |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null || true)
  [ "$got_fp" = "$want_fp" ] || fail "$want: served certificate ($got_fp) is not $data/tls/cert.pem ($want_fp)"
  grep -q '^SIP/2.0 200' "$out" || {
    show "$out" 30
    fail "$want handshake done, but OPTIONS through it got no 'SIP/2.0 200'"
  }
  ok "$want handshake, certificate = DATA/tls/cert.pem, OPTIONS -> $(grep -m1 '^SIP/2.0' "$out" | tr -d '\r')"
done

# ---- old protocol versions must be refused
# Can this openssl client speak TLS 1.1 / 1.0 at all? (Debian's default config forbids it;
# SECLEVEL=0 lifts that for this one command.) Prove it against openssl's own server first.
old_ciphers='DEFAULT@SECLEVEL=0'
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$E2E_TMP/probe.key" -out "$E2E_TMP/probe.crt" >/dev/null 2>&1 || fail "openssl req failed"
for v in 1_1 1; do
  want="TLSv${v/_/.}"
  [ "$v" = 1 ] && want=TLSv1
  pport=$(free_port)
  spawn "$E2E_TMP/s_server.$v.log" timeout 20 openssl s_server -accept "$HOST:$pport" \
    -cert "$E2E_TMP/probe.crt" -key "$E2E_TMP/probe.key" "-tls$v" -cipher "$old_ciphers" -naccept 1 -www
  srv=$BG_PID
  for ((i = 0; i < 50; i++)); do grep -q ACCEPT "$E2E_TMP/s_server.$v.log" && break; sleep 0.1; done
  timeout -k 2 10 openssl s_client -connect "$HOST:$pport" "-tls$v" -cipher "$old_ciphers" \
    </dev/null >"$E2E_TMP/probe.$v.out" 2>&1 || true
  stop_pid "$srv" 2
  if ! handshake_ok "$E2E_TMP/probe.$v.out" "$want"; then
    log "this openssl cannot speak $want even to itself: $want refusal not checked"
    continue
  fi
  rc=0
  timeout -k 2 10 openssl s_client -connect "$HOST:$port" "-tls$v" -cipher "$old_ciphers" \
    </dev/null >"$E2E_TMP/old.$v.out" 2>&1 || rc=$?
  if grep -q '^New, TLS' "$E2E_TMP/old.$v.out"; then
    show "$E2E_TMP/old.$v.out" 20
    fail "palisade accepted a $want handshake (TLS 1.2+ only)"
  fi
  [ "$rc" != 0 ] || fail "openssl s_client -tls$v exited 0 against palisade: expected a failed handshake"
  ok "$want refused (s_client exit $rc)"
done

alive "$PAL_PID" || fail "palisade died during the TLS checks"
no_panic
pal_stop
