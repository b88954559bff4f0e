// Crafts damaged qcow2 images for the mapper's tests, reading the structures' offsets straight from
// the file as docs/interop/qcow2.txt lays them out (independently of src/image).
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export type MetadataTarget = 'l1' | 'l2' | 'refcount-table' | 'refcount-block' | 'snapshot-table' | 'bitmap-directory';

function read(fd: number, at: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  readSync(fd, b, 0, n, at);
  return b;
}
const off = (b: Buffer, at = 0) => Number(b.readBigUInt64BE(at) & 0x00fffffffffffe00n);

/** Host offset of one of the image's metadata structures (version 3, one L1 entry in use). */
export function metadataOffset(file: string, target: MetadataTarget): number {
  const fd = openSync(file, 'r');
  try {
    const h = read(fd, 0, 112);
    switch (target) {
      case 'l1': return Number(h.readBigUInt64BE(40));
      case 'l2': return off(read(fd, Number(h.readBigUInt64BE(40)), 8));
      case 'refcount-table': return Number(h.readBigUInt64BE(48));
      case 'refcount-block': return off(read(fd, Number(h.readBigUInt64BE(48)), 8));
      case 'snapshot-table': return Number(h.readBigUInt64BE(64));
      case 'bitmap-directory': {
        const cs = 2 ** h.readUInt32BE(20);
        const head = read(fd, 0, cs);
        for (let at = h.readUInt32BE(100); at + 8 <= cs;) {
          const type = head.readUInt32BE(at), len = head.readUInt32BE(at + 4);
          if (type === 0) break;
          if (type === 0x23852875) return Number(head.readBigUInt64BE(at + 8 + 16));
          at += 8 + Math.ceil(len / 8) * 8;
        }
        throw new Error('no bitmaps extension');
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Points the L2 entry of guest cluster `cluster` (in the first L2 table) at `target`'s host
 * cluster, as a normal allocated data cluster. Returns that host offset.
 */
export function pointL2EntryAt(file: string, cluster: number, target: MetadataTarget): number {
  const host = metadataOffset(file, target);
  const fd = openSync(file, 'r+');
  try {
    const h = read(fd, 0, 112);
    const cs = 2 ** h.readUInt32BE(20);
    const l2 = off(read(fd, Number(h.readBigUInt64BE(40)), 8));
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 63n) | BigInt(Math.floor(host / cs) * cs));
    writeSync(fd, e, 0, 8, l2 + cluster * 8);
    return Math.floor(host / cs) * cs;
  } finally {
    closeSync(fd);
  }
}

/** Makes guest cluster `cluster` a compressed cluster stored at `host` (one 512-byte sector). */
export function compressedL2EntryAt(file: string, cluster: number, host: number): void {
  const fd = openSync(file, 'r+');
  try {
    const h = read(fd, 0, 112);
    const l2 = off(read(fd, Number(h.readBigUInt64BE(40)), 8));
    const e = Buffer.alloc(8);
    e.writeBigUInt64BE((1n << 62n) | BigInt(host)); // no additional sectors
    writeSync(fd, e, 0, 8, l2 + cluster * 8);
  } finally {
    closeSync(fd);
  }
}
