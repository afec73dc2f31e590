# shellcheck shell=bash
# A throwaway PostgreSQL server for tests (issue 17): Debian's `postgresql` package, initdb into a temporary
# directory, pg_ctl on a private loopback port and a private socket directory; no system service is used.
#
#   . tests/e2e/pg_lib.sh
#   pg_start [PORT]     # starts it; sets PG_URL (postgres://postgres@127.0.0.1:PORT/palisade), PG_DIR, PG_PORT
#   pg_stop             # stops it and removes its directory (also safe to call twice)
#   pg_down / pg_up     # stops it (fast shutdown: every connection is cut) / starts it again, data kept
#
# Authentication is `trust`, bound to 127.0.0.1 only: the server lives for one test and holds test data.
# initdb refuses to run as root, so as root the server runs as the `postgres` user (created by the package).

PG_DIR=''
PG_PORT=''
PG_URL=''

# The directory of the PostgreSQL programs: Debian keeps them out of PATH (/usr/lib/postgresql/N/bin).
pg_bindir() {
  local d
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  echo "pg_lib: PostgreSQL not found: install Debian's 'postgresql' package (scripts/install-deps.sh)" >&2
  return 1
}

# Runs a command as the server's owner: `postgres` when we are root, else ourselves.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A free TCP port on 127.0.0.1 in E2E_PORT_MIN..E2E_PORT_MAX, searched from the top (tests take from the bottom).
pg_free_port() {
  local p min=${E2E_PORT_MIN:-25060} max=${E2E_PORT_MAX:-25199}
  for ((p = max; p >= min; p--)); do
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p"
      return 0
    fi
  done
  echo "pg_lib: no free port in $min..$max" >&2
  return 1
}

pg_start() {
  local bin
  bin=$(pg_bindir) || return 1
  PG_PORT=${1:-$(pg_free_port)} || return 1
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/palisade-pg.XXXXXX") || return 1
  chmod 0755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  pg_as_owner "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$PG_DIR/initdb.log" 2>&1 || {
    echo "pg_lib: initdb failed:" >&2
    tail -n 20 "$PG_DIR/initdb.log" >&2
    return 1
  }
  pg_up || return 1
  pg_as_owner "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres palisade || {
    pg_stop
    return 1
  }
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/palisade"
  export PG_URL
}

# (Re)starts the server of PG_DIR on PG_PORT.
pg_up() {
  local bin
  bin=$(pg_bindir) || return 1
  # fsync off: a test database need not survive a power cut, and it makes every commit much cheaper.
  pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=100" start \
    >"$PG_DIR/pg_ctl.log" 2>&1 || {
    echo "pg_lib: the server did not start:" >&2
    tail -n 20 "$PG_DIR/server.log" >&2
    return 1
  }
}

# Stops the server (fast shutdown), keeping its data for pg_up.
pg_down() {
  local bin
  bin=$(pg_bindir) || return 1
  pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >"$PG_DIR/pg_ctl.log" 2>&1 || {
    echo "pg_lib: the server did not stop:" >&2
    tail -n 20 "$PG_DIR/pg_ctl.log" >&2
    return 1
  }
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  local bin
  if bin=$(pg_bindir) && [ -f "$PG_DIR/data/postmaster.pid" ]; then
    pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
  fi
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "pg_lib: kept $PG_DIR" >&2
  else
    rm -rf "$PG_DIR"
  fi
  PG_DIR=''
}
