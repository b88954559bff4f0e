#!/usr/bin/env bash
# Builds the guest helper's artifacts into build/guest/ (copied into the guest image's /opt/livemr/):
#   livemr_guest.node   tiny N-API addon (FIEMAP ioctl, xattrs) from src/guest/native/*.c
#   livemr-guest.mjs    the helper daemon + `livemr-guest` CLI, one esbuild bundle for stock Node
# Both must run on distribution guests, not just on the host's Node and glibc: the bundle targets
# Node 18 (the floor, docs/guest.md), the addon uses N-API 8 and no glibc symbol newer than
# GLIBC_2.28 (checked below with objdump, so a new libc call cannot silently raise the floor).
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

# N-API 8: Node >= 12.22 / 14.17 / 16; the bundle needs more (NODE_TARGET)
cflags=(-O2 -Wall -Wextra -Werror -std=gnu11 -shared -fPIC -DNAPI_VERSION=8 -I"$node_inc")
NODE_TARGET=node18
GLIBC_FLOOR=2.28
command -v objdump >/dev/null || die "objdump missing: install binutils (build-essential)"
key=$( { find src/guest -type f \( -name '*.ts' -o -name '*.c' \) ! -name '*.test.ts' | sort | xargs cat; cat "$0";
         echo "${cflags[*]} $NODE_TARGET $GLIBC_FLOOR"; cc --version | head -1; node_modules/.bin/esbuild --version; } | sha256sum | cut -d' ' -f1)
if [[ -f $out/livemr_guest.node && -f $out/livemr-guest.mjs && -f $stamp && "$(cat "$stamp")" == "$key" ]]; then exit 0; fi

mkdir -p "$out"
log "compiling ${csrcs[*]} -> $out/livemr_guest.node"
cc "${cflags[@]}" "${csrcs[@]}" -o "$out/livemr_guest.node.tmp" || die "compilation failed"
# Highest GLIBC_x.y symbol version the addon needs must stay <= GLIBC_FLOOR (RHEL 8, Debian 10).
need=$(objdump -T "$out/livemr_guest.node.tmp" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
if [[ -n $need && "$(printf '%s\n%s\n' "$need" "$GLIBC_FLOOR" | sort -V | tail -1)" != "$GLIBC_FLOOR" ]]; then
  objdump -T "$out/livemr_guest.node.tmp" | grep -E "GLIBC_$need" >&2
  rm -f "$out/livemr_guest.node.tmp"
  die "the addon needs GLIBC_$need, newer than the supported floor GLIBC_$GLIBC_FLOOR (symbols above)"
fi
mv -f "$out/livemr_guest.node.tmp" "$out/livemr_guest.node"
log "bundling $entry -> $out/livemr-guest.mjs"
node_modules/.bin/esbuild "$entry" --bundle --platform=node --format=esm --target="$NODE_TARGET" \
  --external:'*.node' --banner:js='#!/usr/bin/env node' --log-level=warning \
  --outfile="$out/livemr-guest.mjs.tmp" || die "bundling failed"
mv -f "$out/livemr-guest.mjs.tmp" "$out/livemr-guest.mjs"
chmod 755 "$out/livemr-guest.mjs"
echo "$key" > "$stamp"
