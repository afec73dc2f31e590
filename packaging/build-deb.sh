#!/usr/bin/env bash
# Builds the Palisade Debian package with dpkg-deb (no cargo-deb, no network).
#
#   packaging/build-deb.sh [--binary PATH] [--version VERSION] [--out DIR] [--fast]
#
#   --binary   the palisade executable to package (default: target/release/palisade, built with
#              `cargo build --release -p palisade` when missing). Tests pass the debug binary.
#   --version  the package version (default: the crate version with Debian revision -1, e.g. 0.1.0-1)
#   --out      where the .deb goes (default: target/debian)
#   --fast     light compression (tests), instead of gzip -9
#
# Prints the path of the .deb. The package installs /usr/bin/palisade, the hardened systemd unit, the
# configuration /etc/palisade/palisade.toml (a conffile), docs and the Grafana dashboard; its maintainer scripts
# create the `palisade` system user and /var/lib/palisade (0700) and keep the data on removal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
binary=""
version=""
out="$repo/target/debian"
level=9

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --fast) level=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "build-deb.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done

if [ -z "$binary" ]; then
  binary=$repo/target/release/palisade
  [ -x "$binary" ] || (cd "$repo" && cargo build --release -p palisade)
fi
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable (build it, or pass --binary)" >&2; exit 1; }
if [ -z "$version" ]; then
  crate=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
  version="${crate:?no version in Cargo.toml}-1"
fi
case $version in
  [0-9]*) ;;
  *) echo "build-deb.sh: version '$version' must start with a digit (Debian policy)" >&2; exit 1 ;;
esac
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/palisade
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/etc/palisade" \
  "$root/usr/share/doc/palisade" "$root/usr/share/palisade/grafana"
install -m 0755 "$binary" "$root/usr/bin/palisade"
install -m 0644 "$here/debian/palisade.service" "$root/usr/lib/systemd/system/palisade.service"
install -m 0640 "$here/palisade.toml" "$root/etc/palisade/palisade.toml"
install -m 0644 "$repo/README.md" "$root/usr/share/doc/palisade/README.md"
install -m 0644 "$repo/docs/operations.md" "$root/usr/share/doc/palisade/operations.md"
install -m 0644 "$here/grafana/palisade-dashboard.json" "$root/usr/share/palisade/grafana/palisade-dashboard.json"
cat >"$root/usr/share/doc/palisade/copyright" <<'TXT'
Palisade SIP PBX
License: AGPL-3.0-or-later
TXT
for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/palisade/palisade.toml >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<TXT
Package: palisade
Version: $version
Architecture: $arch
Maintainer: Palisade developers <palisade@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), passwd
Section: net
Priority: optional
Description: secure-by-default SIP PBX
 Palisade registers desk phones and softphones, connects calls between them and
 to SIP trunks, takes voicemail, and defends itself against the attacks every
 internet-facing PBX sees: extension scans, password guessing, floods and toll
 fraud. Runs as the unprivileged system user "palisade" under a hardened
 systemd unit; data in /var/lib/palisade.
TXT
mkdir -p "$out"
deb=$out/palisade_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip -z"$level" --build "$root" "$deb" >/dev/null
echo "$deb"
