// CRC-32 (IEEE 802.3, the zlib/PNG one) for frame checksums. node:zlib exports crc32 only from
// Node 20.15 / 22.2, and distribution guests run older Nodes (Debian 12: 18.20): a named import of
// it makes the whole helper fail to load there. So: zlib's when the running Node has it (native,
// faster), else this table-driven one (8 KiB table built once, ~byte per step; frames are ≤ 1 MiB).
import * as zlib from 'node:zlib';

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Portable CRC-32 of `data`, continuing from `value` (the CRC of the bytes before), like zlib.crc32. */
export function crc32Portable(data: Uint8Array, value = 0): number {
  let c = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type Crc32 = (data: Uint8Array, value?: number) => number;
const builtin = (zlib as unknown as { crc32?: Crc32 }).crc32;

/** CRC-32 of `data` continuing from `value`; unsigned. */
export const crc32: Crc32 = typeof builtin === 'function' ? (d, v = 0) => builtin(d, v) >>> 0 : crc32Portable;
