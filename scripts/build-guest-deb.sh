#!/usr/bin/env bash
# Builds build/livemr-guest_VERSION_amd64.deb, the guest helper as a Debian package (docs/guest.md,
# "Package"), from build/guest/ (scripts/build-native-guest.sh, run first) and packaging/deb/:
#   /usr/lib/livemr-guest/{livemr-guest.mjs,livemr_guest.node}   the helper bundle and its addon
#   /usr/bin/livemr-guest                                        the consent CLI (and daemon)
#   /lib/systemd/system/livemr-guest.service                     started by the port device (udev)
#   /lib/udev/rules.d/60-livemr-guest.rules
# Runs on the guest's own nodejs (>= 18). VERSION is package.json's. Rebuilt only when an input
# changed; prints the .deb's path on stdout. Offline: dpkg-deb only.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[build-guest-deb] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb missing (dpkg)"
bash scripts/build-native-guest.sh >&2

version=$(node -p 'require("./package.json").version')
deb=build/livemr-guest_${version}_amd64.deb
stamp=build/livemr-guest-deb.stamp
key=$( { cat build/guest/livemr-guest.mjs build/guest/livemr_guest.node packaging/deb/* "$0"; dpkg-query -W -f='${Version}' dpkg; } | sha256sum | cut -d' ' -f1)
if [[ -f $deb && -f $stamp && "$(cat "$stamp")" == "$key" ]]; then echo "$deb"; exit 0; fi

# libc6 floor from the addon's symbol versions (what dpkg-shlibdeps would compute)
glibc=$(objdump -T build/guest/livemr_guest.node | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
root=$(mktemp -d build/deb-root.XXXXXX)
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
install -d "$root/DEBIAN" "$root/usr/lib/livemr-guest" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/lib/udev/rules.d" "$root/usr/share/doc/livemr-guest" "$root/var/lib/livemr"
install -m 644 build/guest/livemr-guest.mjs "$root/usr/lib/livemr-guest/"
install -m 644 build/guest/livemr_guest.node "$root/usr/lib/livemr-guest/"
install -m 755 packaging/deb/livemr-guest.sh "$root/usr/bin/livemr-guest"
install -m 644 packaging/deb/livemr-guest.service "$root/lib/systemd/system/"
install -m 644 packaging/deb/60-livemr-guest.rules "$root/lib/udev/rules.d/"
install -m 644 packaging/deb/README "$root/usr/share/doc/livemr-guest/"
for s in postinst prerm postrm; do install -m 755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CTL
Package: livemr-guest
Version: $version
Architecture: amd64
Maintainer: LiveMR developers <livemr@localhost>
Depends: nodejs (>= 18), libc6 (>= $glibc), systemd, udev
Section: admin
Priority: optional
Installed-Size: $size
Description: LiveMR guest helper: shares consented files' extents with the host
 Reports where the blocks of files their owners consented to share are on the VM's virtio disks,
 over the virtio-serial port org.livemr.0, so the host can read them from the disk image without
 copying. Started by systemd when the port appears; includes the livemr-guest consent CLI.
CTL
tmp=$deb.tmp
dpkg-deb --root-owner-group -Zxz --build "$root" "$tmp" >/dev/null
mv -f "$tmp" "$deb"
echo "$key" > "$stamp"
log "built $deb"
echo "$deb"
