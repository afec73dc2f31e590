#!/usr/bin/env bash
# Lifecycle: first start creates the data directory and a certificate; SIGTERM (even with an
# idle TCP client connected) ends palisade with status 0 within 2 s; a second start on the
# same data directory reuses the same certificate and key (same fingerprint, same file, and
# the same certificate served over TLS), and stops cleanly too.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need openssl python3 ss

data=$E2E_TMP/data
[ ! -e "$data" ] || fail "scratch data dir already exists"
port=$(free_port 2) # udp+tcp on port, tls on port+1
listens=(--listen "udp:$HOST:$port" --listen "tcp:$HOST:$port" --listen "tls:$HOST:$((port + 1))")

served_fp() { # SHA-256 fingerprint of the certificate served on the TLS port
  timeout -k 2 10 openssl s_client -connect "$HOST:$((port + 1))" -servername localhost </dev/null 2>/dev/null |
    sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
}

# ---- first start
pal_start "$data" "${listens[@]}"
[ -d "$data" ] || fail "first start did not create the data directory $data"
[ -s "$data/tls/cert.pem" ] || fail "first start did not create $data/tls/cert.pem"
[ -s "$data/tls/key.pem" ] || fail "first start did not create $data/tls/key.pem"
fp1=$(openssl x509 -in "$data/tls/cert.pem" -noout -fingerprint -sha256) || fail "cert.pem is not a certificate"
key1=$(sha256sum <"$data/tls/key.pem")
[ "$(served_fp)" = "$fp1" ] || fail "first start serves a certificate other than $data/tls/cert.pem"
ok "first start: data dir and certificate created ($fp1)"

# an idle TCP client must not hold up shutdown
spawn "$E2E_TMP/idle-client.log" python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
time.sleep(30)
' "$HOST" "$port"
idle=$BG_PID
for ((i = 0; i < 50; i++)); do grep -q connected "$E2E_TMP/idle-client.log" && break; sleep 0.1; done
grep -q connected "$E2E_TMP/idle-client.log" || fail "idle TCP client could not connect"

pal_stop "$PAL_PID" 2
ok "SIGTERM with an idle TCP connection open: status 0 in ${PAL_STOP_MS} ms"
stop_pid "$idle" 1
no_panic

# ---- second start, same data directory
pal_start "$data" "${listens[@]}"
fp2=$(openssl x509 -in "$data/tls/cert.pem" -noout -fingerprint -sha256)
key2=$(sha256sum <"$data/tls/key.pem")
[ "$fp2" = "$fp1" ] || fail "second start replaced the certificate ($fp1 -> $fp2)"
[ "$key2" = "$key1" ] || fail "second start replaced the private key"
[ "$(served_fp)" = "$fp1" ] || fail "second start serves a certificate other than the first one"
ok "second start reuses the certificate and key"
pal_stop "$PAL_PID" 2
ok "second SIGTERM: status 0 in ${PAL_STOP_MS} ms"
no_panic
