// Contract test of the image mapper over a corpus generated with the real qemu-img / qemu-io:
// for every image, map() must equal `qemu-img map --output=json` (after merging adjacent equal
// extents on both sides) and read() must equal `qemu-img convert -O raw` byte for byte.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { buildCorpus, sh, type CorpusImage } from '../unit/image/corpus.js';
import { ImageFile } from '../../src/image/file.js';
import {
  CorruptImageError, UnsupportedImageError, openImage, mergeQemuMap, readQcow2Header, toQemuMap, type QemuMapEntry,
} from '../../src/image/index.js';

const execFileP = promisify(execFile);

let dir: string;
let corpus: CorpusImage[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemr-image-corpus-'));
  corpus = await buildCorpus(dir);
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Differences that are not about guest data, removed on both sides before comparing:
 * - QEMU prints an offset for unallocated subclusters at the bottom of the chain;
 * - QEMU also asks the host file system (SEEK_HOLE) and reports holes inside raw layers and some
 *   qcow2 data clusters as zero; LiveMR reports those bytes as data (reading a hole gives zeros).
 */
function normalise(entries: QemuMapEntry[], formats: string[]): QemuMapEntry[] {
  return mergeQemuMap(entries.map(({ file: _file, ...e }) => {
    if (!e.present) delete e.offset;
    if (e.data && e.zero) e.zero = false;
    if (e.present && formats[e.depth] === 'raw') Object.assign(e, { zero: false, data: true });
    return e;
  }));
}

async function qemuMap(img: CorpusImage): Promise<QemuMapEntry[]> {
  return JSON.parse(await sh('qemu-img', ['map', '-U', '--output=json', img.path])) as QemuMapEntry[];
}

describe('image mapper against qemu-img on a generated corpus', () => {
  it('builds a corpus covering every variant', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(30);
  });

  it('map equals qemu-img map and read equals qemu-img convert, for every image', async () => {
    const failures: string[] = [];
    const seen = new Set<string>();
    for (const img of corpus) {
      const mapper = await openImage(img.path, img.open);
      try {
        if (!img.readOnly) {
          const extents = await mapper.map(0, mapper.size);
          for (const e of extents) {
            seen.add(`${e.kind}${e.kind === 'zero' ? (e.fileOffset === undefined ? '-plain' : '-prealloc') : ''}`);
            seen.add(`depth-${e.depth}`);
            if (e.kind === 'compressed') seen.add(`compressed-${img.name.includes('zstd') ? 'zstd' : 'deflate'}`);
          }
          const ours = toQemuMap(extents);
          // `file` names the file `offset` is in: the layer at `depth`, or its external data file.
          for (const e of ours) {
            if (e.offset !== undefined && e.file !== img.files[e.depth]) failures.push(`${img.name}: entry at ${e.start} names ${e.file}, expected ${img.files[e.depth]}`);
          }
          const formats = mapper.chain.map((c) => c.format);
          const expected = normalise(await qemuMap(img), formats);
          const got = normalise(ours, formats);
          try {
            expect(got).toEqual(expected);
          } catch {
            failures.push(`${img.name}: map differs\n ours: ${JSON.stringify(got).slice(0, 1500)}\n qemu: ${JSON.stringify(expected).slice(0, 1500)}`);
          }
        }
        const rawOut = join(dir, 'convert.out');
        await sh('qemu-img', ['convert', '-U', ...(img.convertArgs ?? []), '-O', 'raw', img.path, rawOut]);
        const want = await readFile(rawOut);
        const got = await mapper.read(0, mapper.size);
        if (got.length !== want.length || !got.equals(want)) {
          let at = 0;
          while (at < Math.min(got.length, want.length) && got[at] === want[at]) at++;
          failures.push(`${img.name}: read differs from qemu-img convert at byte ${at} (lengths ${got.length}/${want.length})`);
        }
        // Unaligned, chunked reads give the same bytes as one large read.
        const a = 4097, b = Math.min(mapper.size - a, 3 * 65536 + 123);
        if (!(await mapper.read(a, b)).equals(want.subarray(a, a + b))) failures.push(`${img.name}: unaligned read differs`);
      } finally {
        await mapper.close();
      }
    }
    expect(failures).toEqual([]);
    // The corpus really exercises every extent kind and chain depth.
    expect([...seen].sort()).toEqual(expect.arrayContaining([
      'compressed-deflate', 'compressed-zstd', 'data', 'depth-0', 'depth-1', 'depth-2', 'unallocated', 'zero-plain', 'zero-prealloc',
    ]));
  }, 120_000);

  it('really contains a dirty image (lazy refcounts, not cleaned up)', async () => {
    const dirty = corpus.find((c) => c.name.startsWith('dirty'))!;
    const f = await ImageFile.open(dirty.path);
    try {
      expect((await readQcow2Header(f)).dirty).toBe(true);
    } finally {
      await f.close();
    }
  });

  it('CLI: `livemr image map --json` and `livemr image read` agree with qemu-img', async () => {
    const img = corpus.find((c) => c.name === '3-deep chain over a raw base')!;
    const cli = fileURLToPath(new URL('../../bin/livemr.mjs', import.meta.url));
    const ours = JSON.parse(await sh(process.execPath, [cli, 'image', 'map', '--json', img.path])) as QemuMapEntry[];
    const formats = ['qcow2', 'qcow2', 'raw'];
    expect(normalise(ours, formats)).toEqual(normalise(await qemuMap(img), formats));
    expect(ours.filter((e) => e.offset !== undefined).every((e) => e.file === img.files[e.depth])).toBe(true);
    const { stdout } = await execFileP(process.execPath, [cli, 'image', 'read', img.path, '1000000', '300000'], { encoding: 'buffer', maxBuffer: 1 << 24 });
    const out = join(dir, 'cli.raw');
    await sh('qemu-img', ['convert', '-O', 'raw', img.path, out]);
    expect(Buffer.compare(stdout, (await readFile(out)).subarray(1000000, 1300000))).toBe(0);
    // Bad usage exits 2 with a message; a missing image exits 1 with a typed error.
    await expect(execFileP(process.execPath, [cli, 'image', 'read', img.path, 'x', '1'])).rejects.toMatchObject({ code: 2 });
    await expect(execFileP(process.execPath, [cli, 'image', 'map', join(dir, 'missing.qcow2')])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/ImageError/) });
  });

  it('follows the backing chain given by the caller over the one in the header', async () => {
    const base1 = join(dir, 'graph-base1.qcow2'), base2 = join(dir, 'graph-base2.qcow2'), top = join(dir, 'graph-top.qcow2');
    for (const [b, pat] of [[base1, 1], [base2, 2]] as const) {
      await sh('qemu-img', ['create', '-q', '-f', 'qcow2', b, '1M']);
      await sh('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pat} 0 1M`, b]);
    }
    await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base1, '-F', 'qcow2', top]);
    await sh('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 64k 64k', top]);
    const out = join(dir, 'graph.raw');
    // What QEMU reads when its block graph puts base2 under the top image.
    await sh('qemu-img', ['convert', '-O', 'raw', '--image-opts',
      `driver=qcow2,file.filename=${top},backing.driver=qcow2,backing.file.filename=${base2}`, out]);
    const img = await openImage(top, { backingChain: [{ file: base2, format: 'qcow2' }] });
    try {
      expect(img.chain.map((c) => c.file)).toEqual([top, base2]);
      expect((await img.read(0, img.size)).equals(await readFile(out))).toBe(true);
      expect((await img.read(0, 1))[0]).toBe(2);
    } finally {
      await img.close();
    }
  });

  it('refuses encrypted images, unknown incompatible bits and the corrupt bit with typed errors', async () => {
    const enc = join(dir, 'enc.qcow2');
    await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=abc', '-o', 'encrypt.format=aes,encrypt.key-secret=s0', enc, '1M']);
    await expect(openImage(enc)).rejects.toThrow(UnsupportedImageError);
    await expect(openImage(enc)).rejects.toThrow(/encrypt/);

    const plain = join(dir, 'bits.qcow2');
    await sh('qemu-img', ['create', '-q', '-f', 'qcow2', plain, '1M']);
    const orig = await readFile(plain);
    const withBit = (bit: number) => {
      const b = Buffer.from(orig);
      b.writeBigUInt64BE(b.readBigUInt64BE(72) | (1n << BigInt(bit)), 72);
      return b;
    };
    await writeFile(plain, withBit(1));
    await expect(openImage(plain)).rejects.toThrow(CorruptImageError);
    await expect(sh('qemu-img', ['info', plain])).resolves.toMatch(/corrupt: true/);
    await writeFile(plain, withBit(9));
    await expect(openImage(plain)).rejects.toThrow(/unknown incompatible feature bits: 9/);
    await expect(sh('qemu-img', ['info', plain])).rejects.toThrow(/Unsupported|feature/);
  });
});
