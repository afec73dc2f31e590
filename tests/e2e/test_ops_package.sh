#!/usr/bin/env bash
# The Debian package (issue 18), on a fresh root, without touching this machine's system:
#   * packaging/build-deb.sh builds the .deb from the debug binary (stripped; --fast compression);
#   * `dpkg --root ROOT --force-script-chrootless -i` installs it into an empty root (copies of this machine's
#     passwd/group files only): the maintainer scripts create the system user palisade (nologin) there, not
#     here; /var/lib/palisade is 0700 palisade; /etc/palisade/palisade.toml is a conffile the data directory
#     links to;
#   * `systemd-analyze verify` of the installed unit prints nothing; `systemd-analyze security --offline`
#     scores it (recorded; must stay "OK", at most 2.0);
#   * the installed binary runs as the palisade user (setpriv, no capabilities) with NOTIFY_SOCKET as systemd
#     would set it: READY=1 when up, SIGHUP (systemctl reload) -> RELOADING=1 then READY=1 and still running,
#     SIGTERM -> STOPPING=1; the files it created belong to palisade, mode 0600;
#   * upgrade: a second build (0.1.0-2) installed over it keeps the locally edited conffile, the extensions and
#     the data; the server starts again on them;
#   * `palisade backup` and `restore` as the service user; the restore goes into a data directory that holds only
#     the configuration link (as after a reinstall), keeps the link and puts the backup's copy beside it;
#   * remove keeps the data and the conffile; purge removes the conffile and still keeps the data.
# lib.sh helpers take optional arguments: calling them without any is intended.
# shellcheck disable=SC2119
set -euo pipefail
export E2E_PORT_MIN=${E2E_PORT_MIN:-26400} E2E_PORT_MAX=${E2E_PORT_MAX:-26599}
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
need dpkg dpkg-deb systemd-analyze setpriv strip python3
[ "$(id -u)" = 0 ] || skip "needs root (dpkg --root, setpriv to the package's user)"

chmod 0755 "$E2E_TMP" # the package's user must reach the fresh root below it
strip -o "$E2E_TMP/palisade" "$PALISADE_BIN" || fail "strip"
build() { "$REPO_ROOT/packaging/build-deb.sh" --binary "$E2E_TMP/palisade" --version "$1" --out "$E2E_TMP/debs" --fast; }
t0=$(date +%s%N)
deb1=$(build 0.1.0-1) || fail "build-deb.sh 0.1.0-1"
ok "built $(basename "$deb1") ($(($(stat -c %s "$deb1") / 1024)) KiB) in $((($(date +%s%N) - t0) / 1000000)) ms"

ROOT=$E2E_TMP/root
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates" "$ROOT/etc"
touch "$ROOT/var/lib/dpkg/status"
cp /etc/passwd /etc/group /etc/shadow /etc/gshadow "$ROOT/etc/"
[ -f /etc/login.defs ] && cp /etc/login.defs "$ROOT/etc/"
host_passwd=$(sha256sum </etc/passwd)
dpkg_root() { dpkg --root="$ROOT" --force-script-chrootless --force-depends --log=/dev/null "$@"; }
dpkg_root -i "$deb1" >"$E2E_TMP/install.log" 2>&1 || { show "$E2E_TMP/install.log"; fail "dpkg -i"; }
[ "$(sha256sum </etc/passwd)" = "$host_passwd" ] || fail "installing into the fresh root changed this machine's /etc/passwd"
entry=$(grep '^palisade:' "$ROOT/etc/passwd") || fail "no palisade user in the fresh root"
uid=$(echo "$entry" | cut -d: -f3)
gid=$(echo "$entry" | cut -d: -f4)
case $entry in *:/var/lib/palisade:/usr/sbin/nologin) ;; *) fail "palisade user: $entry" ;; esac
[ "$uid" -lt 1000 ] || fail "palisade is not a system user: uid $uid"
[ "$(stat -c '%a %u' "$ROOT/var/lib/palisade")" = "700 $uid" ] ||
  fail "/var/lib/palisade: $(stat -c '%a %u:%g' "$ROOT/var/lib/palisade")"
[ "$(readlink "$ROOT/var/lib/palisade/palisade.toml")" = ../../../etc/palisade/palisade.toml ] ||
  fail "DATA/palisade.toml is not the link to /etc/palisade/palisade.toml"
[ "$(stat -c '%a %U %g' "$ROOT/etc/palisade/palisade.toml")" = "640 root $gid" ] ||
  fail "/etc/palisade/palisade.toml: $(stat -c '%a %U:%g' "$ROOT/etc/palisade/palisade.toml")"
grep -qx /etc/palisade/palisade.toml "$ROOT/var/lib/dpkg/info/palisade.conffiles" || fail "palisade.toml is not a conffile"
ok "installed on a fresh root: user $entry; /var/lib/palisade 0700; /etc/palisade/palisade.toml conffile (0640 root:palisade)"

# systemd-analyze on the installed unit, with the stock units it refers to and /bin/kill (ExecReload) present.
cp -an /usr/lib/systemd/system/. "$ROOT/usr/lib/systemd/system/" 2>/dev/null || true
install -D -m 0755 /bin/kill "$ROOT/bin/kill"
verify=$(systemd-analyze verify --root="$ROOT" palisade.service 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
unit=$ROOT/usr/lib/systemd/system/palisade.service
for want in Type=notify AmbientCapabilities=CAP_NET_BIND_SERVICE CapabilityBoundingSet=CAP_NET_BIND_SERVICE \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes SystemCallFilter=@system-service \
  ReadWritePaths=/var/lib/palisade Restart=on-failure User=palisade; do
  grep -qx "$want" "$unit" || fail "the unit lacks $want"
done
security=$(systemd-analyze security --offline=yes --root="$ROOT" palisade.service 2>&1) || true
score=$(printf '%s\n' "$security" | sed -n 's/.*Overall exposure level for palisade.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
[ -n "$score" ] || fail "systemd-analyze security gave no score: $(printf '%s\n' "$security" | tail -3)"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)' "${score% *}" ||
  fail "systemd-analyze security exposure $score (expected <= 2.0)"
ok "systemd-analyze verify: clean; systemd-analyze security exposure: $score"

# Run the installed binary as systemd would: as palisade, no capabilities, NOTIFY_SOCKET set.
cat >"$E2E_TMP/as-palisade" <<SH
#!/bin/sh
exec setpriv --reuid=$uid --regid=$gid --clear-groups --inh-caps=-all --no-new-privs "$ROOT/usr/bin/palisade" "\$@"
SH
chmod 0755 "$E2E_TMP/as-palisade"
sock=$E2E_TMP/notify.sock
spawn "$E2E_TMP/notify.log" timeout -k 2 60 python3 -u -c '
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
print("listening", flush=True)
with open(sys.argv[2], "a") as out:
    while True:
        out.write(json.dumps(s.recv(4096).decode()) + "\n"); out.flush()
' "$sock" "$E2E_TMP/notify.jsonl"
for ((i = 0; i < 50; i++)); do grep -q listening "$E2E_TMP/notify.log" 2>/dev/null && break; sleep 0.1; done
notified() { grep -c "$1" "$E2E_TMP/notify.jsonl" 2>/dev/null || true; }
wait_notified() { # wait_notified PATTERN COUNT
  for ((i = 0; i < 50; i++)); do [ "$(notified "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  fail "systemd was not notified $1 (x$2): $(cat "$E2E_TMP/notify.jsonl" 2>/dev/null)"
}
data=$ROOT/var/lib/palisade
"$E2E_TMP/as-palisade" ext add 700 --data "$data" >/dev/null 2>&1 || fail "ext add 700 as palisade"
port=$(free_port)
NOTIFY_SOCKET=$sock PALISADE_BIN=$E2E_TMP/as-palisade pal_start "$data" --listen "udp:$HOST:$port"
wait_notified READY=1 1
[ "$(ps -o uid= -p "$PAL_PID" | tr -d ' ')" = "$uid" ] || fail "the server does not run as palisade"
kill -HUP "$PAL_PID"
wait_notified RELOADING=1 1
wait_notified READY=1 2
alive "$PAL_PID" || fail "SIGHUP (systemctl reload) stopped the server"
pal_stop
wait_notified STOPPING=1 1
# Everything the server wrote belongs to palisade and is private to it; the configuration link and the public
# certificate (made for the console's HTTPS listener) may be readable, the key may not.
bad=$(find "$data" -mindepth 1 \( ! -user "$uid" -o -type f -perm /077 \) ! -name palisade.toml ! -name cert.pem -print)
[ "$(stat -c %a "$data/tls/key.pem")" = 600 ] || fail "the TLS key is not 0600: $(stat -c %a "$data/tls/key.pem")"
[ -z "$bad" ] || fail "files not private to palisade: $bad"
ok "runs as palisade (uid $uid): READY=1, SIGHUP -> RELOADING=1 + READY=1 (still running), SIGTERM -> STOPPING=1; data files 0600 palisade"

# Upgrade over it with a second build; the administrator edited the conffile meanwhile.
echo '# local change by the administrator' >>"$ROOT/etc/palisade/palisade.toml"
db_before=$("$E2E_TMP/as-palisade" ext list --json --data "$data" | python3 -c 'import json,sys; print([e["number"] for e in json.load(sys.stdin)])')
deb2=$(build 0.1.0-2) || fail "build-deb.sh 0.1.0-2"
dpkg_root -i "$deb2" >"$E2E_TMP/upgrade.log" 2>&1 || { show "$E2E_TMP/upgrade.log"; fail "dpkg -i (upgrade)"; }
version=$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Version}' palisade)
[ "$version" = 0.1.0-2 ] || fail "after the upgrade dpkg says version $version"
grep -q 'local change by the administrator' "$ROOT/etc/palisade/palisade.toml" || fail "the upgrade replaced the edited conffile"
db_after=$("$E2E_TMP/as-palisade" ext list --json --data "$data" | python3 -c 'import json,sys; print([e["number"] for e in json.load(sys.stdin)])')
{ [ "$db_before" = "$db_after" ] && [ "$db_after" = "['700']" ]; } || fail "extensions before/after the upgrade: $db_before / $db_after"
NOTIFY_SOCKET=$sock PALISADE_BIN=$E2E_TMP/as-palisade pal_start "$data" --listen "udp:$HOST:$port"
wait_notified READY=1 3
pal_stop
ok "upgraded to $version: edited conffile kept, extensions $db_after kept, server ready again on the same data"

# Backup and restore the packaged way: as the service user, into a data directory holding only the config link.
install -d -m 0700 -o "$uid" -g "$gid" "$data/backups"
"$E2E_TMP/as-palisade" backup "$data/backups/manual.tar" --data "$data" >"$E2E_TMP/pkg-backup.out" 2>&1 ||
  fail "backup as palisade: $(cat "$E2E_TMP/pkg-backup.out")"
mv "$data" "$data.old"
install -d -m 0700 -o "$uid" -g "$gid" "$data"
ln -s ../../../etc/palisade/palisade.toml "$data/palisade.toml"
"$E2E_TMP/as-palisade" restore "$data.old/backups/manual.tar" --data "$data" >"$E2E_TMP/pkg-restore.out" 2>&1 ||
  fail "restore as palisade: $(cat "$E2E_TMP/pkg-restore.out")"
{ [ -L "$data/palisade.toml" ] && [ -f "$data/palisade.toml.from-backup" ]; } ||
  fail "restore did not keep the config link: $(ls -la "$data")"
restored=$("$E2E_TMP/as-palisade" ext list --json --data "$data" | python3 -c 'import json,sys; print([e["number"] for e in json.load(sys.stdin)])')
[ "$restored" = "['700']" ] || fail "restored extensions: $restored"
ok "as palisade: backup, then restore into a data directory holding only the config link (kept; the backup's copy beside it)"

dpkg_root -r palisade >"$E2E_TMP/remove.log" 2>&1 || { show "$E2E_TMP/remove.log"; fail "dpkg -r"; }
{ [ ! -e "$ROOT/usr/bin/palisade" ] && [ ! -e "$unit" ]; } || fail "dpkg -r left the binary or the unit"
{ [ -f "$data/palisade.db" ] && [ -f "$ROOT/etc/palisade/palisade.toml" ]; } || fail "dpkg -r removed data or the conffile"
dpkg_root -P palisade >"$E2E_TMP/purge.log" 2>&1 || { show "$E2E_TMP/purge.log"; fail "dpkg -P"; }
[ ! -e "$ROOT/etc/palisade/palisade.toml" ] || fail "purge kept the conffile"
[ -f "$data/palisade.db" ] || fail "purge removed the data"
grep -q 'data kept in /var/lib/palisade' "$E2E_TMP/purge.log" || fail "purge did not say the data is kept: $(cat "$E2E_TMP/purge.log")"
ok "remove: binary and unit gone, data and conffile kept; purge: conffile gone, data kept ($(du -sh "$data" | cut -f1))"
