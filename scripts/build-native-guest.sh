#!/usr/bin/env bash
# Builds the guest helper's artifacts into build/guest/ (copied into the guest image's /opt/livemr/):
#   livemr_guest.node   tiny N-API addon (FIEMAP ioctl, xattrs) from src/guest/native/*.c
#   livemr-guest.mjs    the helper daemon + `livemr-guest` CLI, one esbuild bundle for stock Node
# The guest runs the host's node binary and glibc, so the host-built addon loads there.
# Rebuilds only when a source, this script or the flags change (stamp = their hash). Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[build-native-guest] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

out=build/guest
stamp=build/guest.stamp
csrcs=(src/guest/native/*.c)
entry=src/guest/cli.ts

command -v cc >/dev/null || die "no C compiler (cc): install build-essential (scripts/apt-packages.txt)"
[[ -x node_modules/.bin/esbuild ]] || die "esbuild missing: run npm ci"
source scripts/lib/node-headers.sh
for h in linux/fiemap.h sys/xattr.h; do
  [[ -f /usr/include/$h || -f /usr/include/x86_64-linux-gnu/$h ]] || die "header <$h> missing: install linux-libc-dev / libc6-dev"
done

cflags=(-O2 -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -I"$node_inc")
key=$( { find src/guest -type f \( -name '*.ts' -o -name '*.c' \) ! -name '*.test.ts' | sort | xargs cat; cat "$0";
         echo "${cflags[*]}"; cc --version | head -1; node_modules/.bin/esbuild --version; } | sha256sum | cut -d' ' -f1)
if [[ -f $out/livemr_guest.node && -f $out/livemr-guest.mjs && -f $stamp && "$(cat "$stamp")" == "$key" ]]; then exit 0; fi

mkdir -p "$out"
log "compiling ${csrcs[*]} -> $out/livemr_guest.node"
cc "${cflags[@]}" "${csrcs[@]}" -o "$out/livemr_guest.node.tmp" || die "compilation failed"
mv -f "$out/livemr_guest.node.tmp" "$out/livemr_guest.node"
log "bundling $entry -> $out/livemr-guest.mjs"
node_modules/.bin/esbuild "$entry" --bundle --platform=node --format=esm --target=node20 \
  --external:'*.node' --banner:js='#!/usr/bin/env node' --log-level=warning \
  --outfile="$out/livemr-guest.mjs.tmp" || die "bundling failed"
mv -f "$out/livemr-guest.mjs.tmp" "$out/livemr-guest.mjs"
chmod 755 "$out/livemr-guest.mjs"
echo "$key" > "$stamp"
