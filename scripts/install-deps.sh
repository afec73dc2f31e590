#!/usr/bin/env bash
# Install the system packages Palisade's tests need (Debian/Ubuntu, apt), idempotently.
#
#   scripts/install-deps.sh          # as root, or through sudo when it is available
#
# Fast when everything is present: one dpkg-query, no network. Otherwise one
# `apt-get update` and one `apt-get install --no-install-recommends`.
# No service is started by the install (temporary policy-rc.d that denies starts),
# and tshark's debconf question is preseeded (no setuid dumpcap), so it never
# waits for input.
set -euo pipefail

PKGS=(
  sip-tester          # sipp: OPTIONS scenarios over UDP/TCP
  sipsak              # OPTIONS pings (UDP/TCP/TLS)
  baresip baresip-core  # a real softphone (SIP over TLS)
  linphone-cli        # linphonec: a real client of Linphone's XML remote provisioning (test_prov_linphone)
  sipvicious          # svmap / svwar / svcrack: what attackers run
  openssl             # s_client: TLS handshakes and versions
  tshark              # packet captures when debugging
  sox                 # audio checks
  python3             # mutate.py (malformed-datagram flood) and helpers
  python3-websockets  # ws_client.py: SIP over WebSocket (ws and wss)
  iproute2            # ss: free-port checks; ip netns: the NAT test (test_media_nat_netns)
  nftables            # nft: the masquerading router of the NAT test
  procps              # ps / pgrep for process checks
  netcat-openbsd      # nc
  shellcheck          # lint of the project's shell scripts
  chromium            # the web console tests' browser (driven by Playwright, never its own download)
  python3-pip         # installs the Python packages below
  prometheus          # promtool: lint of the /metrics output (test_ops_metrics)
  systemd             # systemd-analyze verify/security of the packaged unit (test_ops_package)
  util-linux          # setpriv: run the packaged server as its system user (test_ops_package)
  bc                  # the benchmarks' arithmetic (scripts/bench-smoke.sh)
  jq                  # the benchmarks' JSON (scripts/bench-smoke.sh)
  postgresql          # a throwaway PostgreSQL server for the cluster tests (tests/e2e/pg_lib.sh)
  espeak-ng           # a spoken attendant greeting (test_attendant_group)
)

# Python packages of the web console tests: Playwright (drives the system chromium) and an OpenAPI validator.
# Debian's Python is "externally managed": install them for the user running the tests, past that guard.
PY_PKGS=(playwright openapi-spec-validator)
install_python_packages() {
  if python3 -c 'import playwright, openapi_spec_validator' 2>/dev/null; then
    return 0
  fi
  echo "install-deps: pip installing ${PY_PKGS[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${PY_PKGS[@]}" \
    >/tmp/palisade-install-pip.log 2>&1 || {
    tail -20 /tmp/palisade-install-pip.log >&2
    echo "install-deps: pip install failed (full log: /tmp/palisade-install-pip.log)" >&2
    exit 1
  }
}

# One dpkg-query for all: packages it does not know are simply absent from its output.
installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' "${PKGS[@]}" 2>/dev/null || true) "
missing=()
for p in "${PKGS[@]}"; do
  case $installed in *" $p:installed "*) ;; *) missing+=("$p") ;; esac
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  install_python_packages
  exit 0
fi
echo "install-deps: installing ${missing[*]}"

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)   # never prompt: CI has no stdin
  else
    echo "install-deps: missing packages (${missing[*]}) and not root, no sudo: install them as root" >&2
    exit 1
  fi
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "install-deps: apt-get not found: install by hand: ${missing[*]}" >&2
  exit 1
}

# Keep package scripts from starting services during the install, unless the machine already has a policy.
tmp_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  tmp_policy=1
fi
cleanup() {
  if [ "$tmp_policy" = 1 ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
  return 0
}
trap cleanup EXIT

# tshark (wireshark-common) asks whether non-root users may capture: answer no, never ask.
echo 'wireshark-common wireshark-common/install-setuid boolean false' |
  "${SUDO[@]}" debconf-set-selections

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" </dev/null >/tmp/palisade-install-deps.log 2>&1 || {
  tail -30 /tmp/palisade-install-deps.log >&2
  echo "install-deps: apt-get install failed (full log: /tmp/palisade-install-deps.log)" >&2
  exit 1
}
install_python_packages
echo "install-deps: done"
