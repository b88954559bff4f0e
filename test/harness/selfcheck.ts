// The testbed self-check, shared by the integration test and the demo: the guest writes recognisable
// data, reports the file's physical extents (filefrag), and the host finds exactly those bytes in the
// qcow2 chain using `qemu-img map` — independent of LiveMR's own image mapper.
import { execFileSync } from 'node:child_process';
import { openSync, readSync, closeSync } from 'node:fs';
import type { GuestDisk, GuestVm } from './vm.js';

export const BLOCK = 4096;

/** Block i of the pattern: a line naming disk and block, repeated to fill 4 KiB. Same on both sides. */
export const PATTERN_JS = `(d,i)=>{const s=\`LIVEMR disk=\${d} block=\${i} \`;return Buffer.alloc(4096,s)}`;
const pattern = eval(PATTERN_JS) as (disk: string, i: number) => Buffer;

export function expectedBytes(disk: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i * BLOCK < size; i++) pattern(disk, i).copy(out, i * BLOCK);
  return out;
}

export interface Extent { logical: number; physical: number; length: number } // bytes, fs-relative

/** Parses `filefrag -v -b4096` output into byte extents. */
export function parseFilefrag(out: string): Extent[] {
  const ext: Extent[] = [];
  for (const m of out.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):\s+(\d+):/gm)) {
    ext.push({ logical: Number(m[1]) * BLOCK, physical: Number(m[3]) * BLOCK, length: Number(m[5]) * BLOCK });
  }
  return ext;
}

/** Writes `bytes` of pattern to `path` in the guest, syncs, returns its extents. */
export async function writeInGuest(vm: GuestVm, disk: GuestDisk, name: string, bytes: number): Promise<{ path: string; extents: Extent[] }> {
  const path = `/mnt/${disk.serial}/${name}`;
  const script = `const p=${PATTERN_JS};const fs=require('fs');const fd=fs.openSync(${JSON.stringify(path)},'w');` +
    `for(let i=0;i<${bytes / BLOCK};i++)fs.writeSync(fd,p(${JSON.stringify(disk.serial)},i));fs.closeSync(fd)`;
  await vm.sh(`node -e "${script.replace(/[`"$\\]/g, (c) => '\\' + c)}" && sync`);
  const extents = parseFilefrag(await vm.sh(`filefrag -v -b${BLOCK} ${path}`));
  return { path, extents };
}

interface MapEntry { start: number; length: number; depth: number; present: boolean; zero: boolean; data: boolean; offset?: number }

/** Reads guest-disk bytes from the image chain through `qemu-img map` (the reference translator). */
export function readViaQemuImgMap(image: string, diskOffset: number, length: number): Buffer {
  const chain = (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', image], { encoding: 'utf8' })) as { filename: string }[])
    .map((i) => i.filename);
  const map = JSON.parse(execFileSync('qemu-img', ['map', '-U', '--output=json', image], { encoding: 'utf8', maxBuffer: 64 << 20 })) as MapEntry[];
  const out = Buffer.alloc(length);
  for (const e of map) {
    const from = Math.max(e.start, diskOffset);
    const to = Math.min(e.start + e.length, diskOffset + length);
    if (from >= to || !e.data || e.offset === undefined) continue; // zero / unallocated read as zeros
    const fd = openSync(chain[e.depth]!, 'r');
    try {
      readSync(fd, out, from - diskOffset, to - from, e.offset + (from - e.start));
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

export interface SelfCheckResult { disk: string; path: string; extents: number; bytes: number; equal: boolean; firstDiff: number }

export async function selfCheck(vm: GuestVm, disk: GuestDisk, bytes = 8 << 20): Promise<SelfCheckResult> {
  const { path, extents } = await writeInGuest(vm, disk, 'selfcheck.bin', bytes);
  const want = expectedBytes(disk.serial, bytes);
  const got = Buffer.alloc(bytes);
  let covered = 0;
  for (const x of extents) {
    const len = Math.min(x.length, bytes - x.logical);
    readViaQemuImgMap(disk.overlay, disk.fsOffset + x.physical, len).copy(got, x.logical);
    covered += len;
  }
  const equal = covered === bytes && got.equals(want);
  let firstDiff = -1;
  if (!equal) for (let i = 0; i < bytes; i++) if (got[i] !== want[i]) { firstDiff = i; break; }
  return { disk: disk.serial, path, extents: extents.length, bytes: covered, equal, firstDiff };
}
