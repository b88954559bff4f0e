#!/usr/bin/env bash
# Builds the composed-files FUSE addon (src/fs/native/*.c) into build/livemr_fuse.node.
# Also the package's install script (npm install -g livemr-VERSION.tgz), so every error names the
# apt package to install. Offline: uses the system libfuse3 (pkg-config fuse3) and the Node headers already on the machine.
# Rebuilds only when the sources, this script or the compiler flags change (stamp = their hash).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[build-native-fuse] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

out=build/livemr_fuse.node
stamp=build/livemr_fuse.stamp
srcs=(src/fs/native/*.c)

command -v cc >/dev/null || die "no C compiler (cc): apt-get install build-essential"
command -v pkg-config >/dev/null || die "pkg-config missing: apt-get install pkg-config"
pkg-config --exists fuse3 || die "libfuse3 development files missing: apt-get install libfuse3-dev"

source scripts/lib/node-headers.sh
[[ -f $(pkg-config --variable=includedir fuse3)/fuse3/fuse_lowlevel.h ]] || die "fuse3/fuse_lowlevel.h missing: apt-get install libfuse3-dev"

cflags=(-O2 -g -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -I"$node_inc" $(pkg-config --cflags fuse3))
libs=($(pkg-config --libs fuse3) -lpthread)
key=$( { cat "${srcs[@]}" "$0"; echo "${cflags[*]} ${libs[*]}"; cc --version | head -1; } | sha256sum | cut -d' ' -f1)
if [[ -f $out && -f $stamp && "$(cat "$stamp")" == "$key" ]]; then exit 0; fi

mkdir -p build
log "compiling ${srcs[*]} -> $out"
cc "${cflags[@]}" "${srcs[@]}" -o "$out.tmp" "${libs[@]}" || die "compilation failed"
mv -f "$out.tmp" "$out"
echo "$key" > "$stamp"
