// Header parsing and layer decoding on hand-built qcow2 files: every refusal is a typed error
// naming the offending offset, and allocations never follow a hostile field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CorruptImageError, ImageError, ImageRangeError, UnsupportedImageError, openImage, readQcow2Header,
} from '../../../src/image/index.js';
import { ImageFile } from '../../../src/image/file.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemr-image-unit-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const CS = 512; // cluster_bits 9 keeps hand-built images tiny

/** A v3 image, 512-byte clusters: header @0, L1 @512 (1 entry), L2 @1024, data @1536.. */
function image(opts: { version?: 2 | 3; l2?: bigint[]; l1?: bigint; size?: bigint; incompat?: bigint; crypt?: number;
  headerLength?: number; extensions?: Buffer; l1Size?: number; clusterBits?: number } = {}): Buffer {
  const b = Buffer.alloc(CS * 8);
  const version = opts.version ?? 3;
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(version, 4);
  b.writeUInt32BE(opts.clusterBits ?? 9, 20);
  b.writeBigUInt64BE(opts.size ?? 64n * 512n, 24);
  b.writeUInt32BE(opts.crypt ?? 0, 32);
  b.writeUInt32BE(opts.l1Size ?? 1, 36);
  b.writeBigUInt64BE(512n, 40);
  if (version === 3) {
    b.writeBigUInt64BE(opts.incompat ?? 0n, 72);
    b.writeUInt32BE(4, 96);
    b.writeUInt32BE(opts.headerLength ?? 112, 100);
    opts.extensions?.copy(b, opts.headerLength ?? 112);
  }
  b.writeBigUInt64BE(opts.l1 ?? 1024n, 512);
  (opts.l2 ?? []).forEach((e, i) => b.writeBigUInt64BE(e, 1024 + 8 * i));
  for (let i = 1536; i < b.length; i++) b[i] = (i >> 9) & 0xff; // data cluster k holds byte k
  return b;
}

async function put(name: string, b: Buffer): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, b);
  return p;
}

async function header(b: Buffer) {
  const f = await ImageFile.open(await put('h.qcow2', b));
  try {
    return await readQcow2Header(f);
  } finally {
    await f.close();
  }
}

describe('qcow2 header', () => {
  it('parses a v3 header and its extensions', async () => {
    const ext = Buffer.alloc(64);
    ext.writeUInt32BE(0xe2792aca, 0); ext.writeUInt32BE(3, 4); ext.write('raw', 8);
    ext.writeUInt32BE(0x12345678, 16); ext.writeUInt32BE(5, 20); // unknown extension: ignored
    ext.writeUInt32BE(0, 32);
    const h = await header(image({ extensions: ext }));
    expect(h).toMatchObject({ version: 3, clusterSize: 512, size: 32768, l1Size: 1, l1TableOffset: 512, backingFormat: 'raw', compression: 'deflate' });
  });

  it('parses a v2 header (72 bytes, no feature fields)', async () => {
    expect(await header(image({ version: 2 }))).toMatchObject({ version: 2, headerLength: 72, incompatible: 0n });
  });

  it('refuses what it must, with typed errors', async () => {
    await expect(header(image({ crypt: 2 }))).rejects.toThrow(UnsupportedImageError);
    await expect(header(image({ incompat: 1n << 1n }))).rejects.toThrow(CorruptImageError);
    await expect(header(image({ incompat: 1n << 7n }))).rejects.toThrow(/unknown incompatible feature bits: 7/);
    await expect(header(image({ headerLength: 100 }))).rejects.toThrow(/header_length/);
    await expect(header(image({ clusterBits: 8 }))).rejects.toThrow(CorruptImageError);
    await expect(header(image({ clusterBits: 22 }))).rejects.toThrow(UnsupportedImageError);
    await expect(header(image({ incompat: 1n << 4n }))).rejects.toThrow(/extended L2/); // needs cluster_bits >= 14
    await expect(header(image({ l1Size: 0x7fffffff }))).rejects.toThrow(/32 MiB/);
    await expect(header(image({ size: 1n << 60n }))).rejects.toThrow(UnsupportedImageError);
    await expect(header(image({ size: 1n << 20n }))).rejects.toThrow(/L1 table has 1 entries/);
    const bad = image();
    bad.writeUInt32BE(0x6803f857, 112); bad.writeUInt32BE(100000, 116); // overruns the cluster
    await expect(header(bad)).rejects.toThrow(/overruns/);
  });

  it('names unknown incompatible features from the feature name table', async () => {
    const ext = Buffer.alloc(64);
    ext.writeUInt32BE(0x6803f857, 0); ext.writeUInt32BE(48, 4);
    ext[8] = 0; ext[9] = 9; ext.write('future-thing', 10);
    await expect(header(image({ incompat: 1n << 9n, extensions: ext }))).rejects.toThrow(/9 \(future-thing\)/);
  });
});

describe('qcow2 cluster mapping', () => {
  const COPIED = 1n << 63n;
  it('maps data, zero (plain/preallocated) and unallocated clusters and merges contiguous ones', async () => {
    const p = await put('m.qcow2', image({ l2: [1536n | COPIED, 2048n | COPIED, 0n, 1n, 2560n | 1n, 3072n] }));
    const img = await openImage(p);
    try {
      expect(await img.map(0, 8 * CS)).toEqual([
        { kind: 'data', start: 0, length: 1024, depth: 0, file: p, fileOffset: 1536 },
        { kind: 'unallocated', start: 1024, length: 512, depth: 0 },
        { kind: 'zero', start: 1536, length: 512, depth: 0 },
        { kind: 'zero', start: 2048, length: 512, depth: 0, file: p, fileOffset: 2560 },
        { kind: 'data', start: 2560, length: 512, depth: 0, file: p, fileOffset: 3072 },
        { kind: 'unallocated', start: 3072, length: 1024, depth: 0 },
      ]);
      const bytes = await img.read(500, 600);
      expect(bytes.subarray(0, 12).every((x) => x === 3)).toBe(true); // cluster at 1536 = byte 3
      expect(bytes.subarray(12, 524).every((x) => x === 4)).toBe(true);
      expect(bytes.subarray(524).every((x) => x === 0)).toBe(true);
      expect((await img.read(2560, 512)).every((x) => x === 6)).toBe(true);
      await expect(img.map(0, img.size + 1)).rejects.toThrow(ImageRangeError);
      await expect(img.read(-1, 1)).rejects.toThrow(ImageRangeError);
    } finally {
      await img.close();
    }
  });

  it('reports corrupt tables with the offset of the bad entry', async () => {
    const cases: [bigint[], RegExp, number][] = [
      [[1536n | 2n], /reserved bits/, 1024],
      [[0n, 1536n | 0x100n], /reserved bits/, 1032],
      [[0n, 0n, 1600n], /reserved bits/, 1040], // with 512-byte clusters, bits 1-8 are the reserved ones
      [[1n << 60n], /reserved bits/, 1024],
    ];
    for (const [l2, msg, offset] of cases) {
      const img = await openImage(await put('c.qcow2', image({ l2 })));
      try {
        const err = await img.map(0, img.size).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CorruptImageError);
        expect((err as Error).message).toMatch(msg);
        expect((err as CorruptImageError).offset).toBe(offset);
      } finally {
        await img.close();
      }
    }
    const badL1 = await openImage(await put('l1.qcow2', image({ l1: 1024n | 1n })));
    await expect(badL1.map(0, 512)).rejects.toThrow(/L1 entry 0 has reserved bits/);
    await badL1.close();
    const farL2 = await openImage(await put('l2far.qcow2', image({ l1: 1n << 40n })));
    await expect(farL2.map(0, 512)).rejects.toThrow(/beyond the end of the file/);
    await farL2.close();
  });

  it('refuses the zero flag in v2 images', async () => {
    const img = await openImage(await put('v2z.qcow2', image({ version: 2, l2: [1n] })));
    await expect(img.map(0, 512)).rejects.toThrow(/zero flag/);
    await img.close();
  });

  it('bounds the number of extents of one map call', async () => {
    const l2 = Array.from({ length: 64 }, (_, i) => (i % 2 ? 0n : BigInt(1536 + 512 * (i % 4))));
    const img = await openImage(await put('many.qcow2', image({ l2 })), { maxExtents: 10 });
    await expect(img.map(0, img.size)).rejects.toThrow(ImageRangeError);
    expect(await img.map(0, 4 * 512)).toHaveLength(4);
    await img.close();
    const small = await openImage(join(dir, 'many.qcow2'), { maxReadBytes: 1000 });
    await expect(small.read(0, 1001)).rejects.toThrow(/exceeds the bound/);
    await small.close();
  });

  it('refuses a missing file, a directory and a cyclic backing chain with ImageError', async () => {
    await expect(openImage(join(dir, 'nope.qcow2'))).rejects.toThrow(ImageError);
    await expect(openImage(dir)).rejects.toThrow(ImageError);
    // a.qcow2 -> b.qcow2 -> a.qcow2
    for (const [name, backing] of [['a.qcow2', 'b.qcow2'], ['b.qcow2', 'a.qcow2']] as const) {
      const b = image();
      b.writeBigUInt64BE(400n, 8); b.writeUInt32BE(backing.length, 16); b.write(backing, 400);
      await put(name, b);
    }
    await expect(openImage(join(dir, 'a.qcow2'))).rejects.toThrow(/loops back/);
  });
});
