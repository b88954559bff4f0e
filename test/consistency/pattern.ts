// The byte format of the consistency workload (docs/consistency.md, "Bytes"): every byte a guest
// file holds is a function of (file key, generation, offset) alone, so any read can be checked
// without the final file and bytes of another file or generation are recognised.
//   word(k, g, w) = fmix32(k·0x9E3779B1 ⊕ g·0x85EBCA77 ⊕ w·0xC2B2AE3D ⊕ fmix32(w)) | 0x01010101
//   byte(k, g, o) = byte (o mod 4) of word(k, g, ⌊o/4⌋), little-endian
// The `| 0x01010101` makes every byte odd, hence never NUL: a NUL is only valid in a hole.
// Plain JS operations only: this file is bundled into the guest workload too.

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function word(key: number, gen: number, w: number): number {
  return (fmix32(Math.imul(key, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca77) ^ Math.imul(w, 0xc2b2ae3d) ^ fmix32(w)) | 0x01010101) >>> 0;
}

export function patternByte(key: number, gen: number, offset: number): number {
  return (word(key, gen, Math.floor(offset / 4)) >>> (8 * (offset % 4))) & 0xff;
}

/** The `length` bytes of (key, gen) starting at file offset `offset`. Offsets stay below 2^34. */
export function pattern(key: number, gen: number, offset: number, length: number): Buffer {
  const first = Math.floor(offset / 4);
  const words = Math.ceil((offset + length) / 4) - first;
  const u = new Uint32Array(words);
  for (let i = 0; i < words; i++) u[i] = word(key, gen, first + i);
  const b = Buffer.from(u.buffer, 0, words * 4);
  if (!isLittleEndian) for (let i = 0; i < words; i++) b.writeUInt32LE(u[i]!, i * 4);
  return b.subarray(offset % 4, offset % 4 + length);
}

const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
