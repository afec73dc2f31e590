#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for tests and runs a command with PALISADE_TEST_POSTGRES set to its URL; stops the
# server and removes its files afterwards (also on Ctrl-C). Without a command, prints the URL and waits.
#
#   scripts/pg-test-server.sh cargo test -p palisade-store     # the store's tests on SQLite and on PostgreSQL
#   scripts/pg-test-server.sh                                  # a server to experiment with, until Ctrl-C
#
# E2E_PORT_MIN/E2E_PORT_MAX bound the port it picks (from the top); PG_PORT forces one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/pg_lib.sh
. "$here/../tests/e2e/pg_lib.sh"

trap pg_stop EXIT
trap 'exit 130' INT TERM
pg_start "${PG_PORT:-}"
echo "PostgreSQL: $PG_URL" >&2
if [ $# -eq 0 ]; then
  echo "$PG_URL"
  echo "(Ctrl-C stops it and removes $PG_DIR)" >&2
  while sleep 3600; do :; done
fi
PALISADE_TEST_POSTGRES=$PG_URL "$@"
