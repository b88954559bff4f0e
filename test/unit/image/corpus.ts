// Builds a corpus of real images with Debian's qemu-img and qemu-io: every qcow2 variant the mapper
// claims to support, with seeded random write patterns (write, write -z, discard, compressed
// writes), snapshots, chains. Shared by the contract test, the fuzz test and the benchmark.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OpenImageOptions } from '../../../src/image/index.js';

const run = promisify(execFile);

export async function sh(cmd: string, args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run(cmd, args, { cwd, maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' });
  return stdout;
}

import { prng } from '../../harness/prng.js';

export { prng };

export interface CorpusImage {
  name: string;
  path: string;
  /** options for openImage */
  open: OpenImageOptions;
  /** files by depth that `offset` may refer to (index = depth); external data files replace the image */
  files: string[];
  /** extra qemu-img arguments that select the same view (e.g. a snapshot for convert) */
  convertArgs?: string[];
  /** qemu-img map cannot show this view (internal snapshot): compare bytes only */
  readOnly?: boolean;
}

interface OpsOptions {
  size: number; count: number; seed: number; align: number; maxLen: number; ops?: string[];
  /** for 'compress': cluster size, and the start of a never-written area (QEMU compresses only into unallocated clusters) */
  compressCluster?: number; compressFrom?: number;
}

/** Random qemu-io commands: plain writes with patterns, write -z (with and without -u), discards. */
export function randomOps(o: OpsOptions): string[] {
  const r = prng(o.seed);
  const kinds = o.ops ?? ['write', 'write', 'write', 'zero', 'zero-u', 'discard'];
  const cmds: string[] = [];
  const used = new Set<number>();
  for (let i = 0; i < o.count; i++) {
    const kind = kinds[Math.floor(r() * kinds.length)]!;
    if (kind === 'compress' && o.compressCluster) {
      const first = Math.ceil((o.compressFrom ?? 0) / o.compressCluster);
      const n = Math.floor(o.size / o.compressCluster) - first;
      const c = first + Math.floor(r() * n);
      if (n <= 0 || used.has(c)) continue;
      used.add(c);
      cmds.push(`write -c -P ${1 + Math.floor(r() * 250)} ${c * o.compressCluster} ${o.compressCluster}`);
      continue;
    }
    const len = Math.max(o.align, Math.floor((r() * o.maxLen) / o.align) * o.align);
    const off = Math.min(o.size - len, Math.floor((r() * o.size) / o.align) * o.align);
    if (kind === 'write') cmds.push(`write -P ${1 + Math.floor(r() * 250)} ${off} ${len}`);
    else if (kind === 'zero') cmds.push(`write -z ${off} ${len}`);
    else if (kind === 'zero-u') cmds.push(`write -z -u ${off} ${len}`);
    else if (kind === 'discard') cmds.push(`discard ${off} ${len}`);
  }
  return cmds;
}

export async function qemuIo(path: string, format: string, cmds: string[]): Promise<void> {
  // qemu-io takes one -c per command; keep argv short by batching.
  for (let i = 0; i < cmds.length; i += 200) {
    const args = ['-f', format];
    for (const c of cmds.slice(i, i + 200)) args.push('-c', c);
    await sh('qemu-io', [...args, path]);
  }
}

/** Raw bytes of mixed compressibility: text-like runs, random runs and zeros. */
export function mixedContent(size: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const len = Math.min(size - at, 512 * (1 + Math.floor(r() * 300)));
    const kind = r();
    if (kind < 0.4) for (let i = 0; i < len; i++) b[at + i] = 97 + ((i * 7 + Math.floor(r() * 3)) % 26);
    else if (kind < 0.75) for (let i = 0; i < len; i++) b[at + i] = Math.floor(r() * 256);
    at += len;
  }
  return b;
}

async function qcow2(dir: string, name: string, size: number, o: string[] = [], backing?: { file: string; format: string }): Promise<string> {
  const path = join(dir, name);
  const args = ['create', '-q', '-f', 'qcow2'];
  if (o.length) args.push('-o', o.join(','));
  if (backing) args.push('-b', backing.file, '-F', backing.format);
  await sh('qemu-img', [...args, path, String(size)], dir);
  return path;
}

async function rawFull(dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, name);
  // Fully allocated so that qemu-img map reports it as data (it reports host holes as zeros).
  await sh('qemu-img', ['create', '-q', '-f', 'raw', '-o', 'preallocation=full', path, String(size)]);
  return path;
}

const M = 1024 * 1024;

/** Build the corpus in `dir` (several dozen images, a few seconds). */
export async function buildCorpus(dir: string, opts: { quick?: boolean } = {}): Promise<CorpusImage[]> {
  const out: CorpusImage[] = [];
  const n = opts.quick ? 12 : 40;
  let seed = 1;

  // Raw top image.
  {
    const p = await rawFull(dir, 'raw.img', 3 * M);
    await qemuIo(p, 'raw', randomOps({ size: 3 * M, count: n, seed: seed++, align: 512, maxLen: 200_000, ops: ['write', 'zero'] }));
    out.push({ name: 'raw', path: p, open: { format: 'raw' }, files: [p] });
  }

  // v3 and v2 at several cluster sizes, random writes / zero writes / discards.
  for (const cs of [512, 4096, 65536, 2 * M]) {
    for (const compat of ['1.1', '0.10']) {
      if (compat === '0.10' && cs !== 65536 && cs !== 512) continue;
      const size = cs === 2 * M ? 24 * M : cs === 512 ? 2 * M : 8 * M;
      const p = await qcow2(dir, `v${compat === '1.1' ? 3 : 2}-${cs}.qcow2`, size, [`cluster_size=${cs}`, `compat=${compat}`]);
      await qemuIo(p, 'qcow2', randomOps({ size, count: n, seed: seed++, align: 512, maxLen: Math.max(4 * cs, 300_000) }));
      out.push({ name: `v${compat === '1.1' ? 3 : 2} cluster ${cs}`, path: p, open: {}, files: [p] });
    }
  }

  // Zero clusters, plain and preallocated, explicitly.
  {
    const p = await qcow2(dir, 'zeros.qcow2', 4 * M, ['cluster_size=65536']);
    await qemuIo(p, 'qcow2', ['write -P 1 0 1M', 'write -z 0 256k', 'write -z -u 512k 128k', 'write -z 2M 256k', 'write -P 2 3M 64k', 'write -z 3M 64k']);
    out.push({ name: 'zero plain and preallocated', path: p, open: {}, files: [p] });
  }

  // Compressed clusters: deflate and zstd, several cluster sizes, unaligned offsets (convert -c).
  const mixedRaw = join(dir, 'mixed.raw');
  await writeFile(mixedRaw, mixedContent(6 * M, seed++));
  for (const [ctype, cs] of [['zlib', 65536], ['zlib', 512], ['zlib', 2 * M], ['zstd', 65536], ['zstd', 4096], ['zstd', 2 * M]] as const) {
    const p = join(dir, `compressed-${ctype}-${cs}.qcow2`);
    await sh('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${cs},compression_type=${ctype}`, mixedRaw, p]);
    // Grow it, compress-write clusters of the new area (qemu-io write -c), then overwrite, zero and
    // discard anywhere (rewrites of compressed clusters allocate normal ones).
    await sh('qemu-img', ['resize', '-q', p, String(10 * M)]);
    await qemuIo(p, 'qcow2', randomOps({ size: 10 * M, count: n, seed: seed++, align: 512, maxLen: 0, compressCluster: cs, compressFrom: 6 * M, ops: ['compress'] }));
    await qemuIo(p, 'qcow2', randomOps({ size: 10 * M, count: n, seed: seed++, align: 512, maxLen: 100_000, ops: ['write', 'zero', 'discard'] }));
    out.push({ name: `compressed ${ctype} cluster ${cs}`, path: p, open: {}, files: [p] });
  }

  // Extended L2 (subclusters), alone and over a backing file (unallocated subclusters fall through).
  {
    const base = await qcow2(dir, 'extl2-base.qcow2', 8 * M, ['cluster_size=4096']);
    await qemuIo(base, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 4096, maxLen: 400_000, ops: ['write'] }));
    for (const cs of [16384, 65536, 2 * M]) {
      const solo = await qcow2(dir, `extl2-${cs}.qcow2`, 8 * M, [`cluster_size=${cs}`, 'extended_l2=on']);
      await qemuIo(solo, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: cs * 2 }));
      out.push({ name: `extended L2 cluster ${cs}`, path: solo, open: {}, files: [solo] });
      const over = await qcow2(dir, `extl2-over-${cs}.qcow2`, 8 * M, [`cluster_size=${cs}`, 'extended_l2=on'], { file: 'extl2-base.qcow2', format: 'qcow2' });
      await qemuIo(over, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: cs * 2 }));
      out.push({ name: `extended L2 cluster ${cs} over a backing file`, path: over, open: {}, files: [over, base] });
    }
  }

  // 3-deep chains: raw base ← qcow2 ← qcow2, and qcow2 ← qcow2 ← qcow2 with mixed cluster sizes,
  // relative backing names; then the same chain given explicitly by the caller.
  {
    const rawBase = await rawFull(dir, 'chain-raw-base.img', 8 * M);
    await qemuIo(rawBase, 'raw', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000, ops: ['write'] }));
    const mid = await qcow2(dir, 'chain-raw-mid.qcow2', 8 * M, ['cluster_size=4096'], { file: 'chain-raw-base.img', format: 'raw' });
    await qemuIo(mid, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 200_000 }));
    const top = await qcow2(dir, 'chain-raw-top.qcow2', 8 * M, ['cluster_size=65536'], { file: 'chain-raw-mid.qcow2', format: 'qcow2' });
    await qemuIo(top, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 200_000 }));
    out.push({ name: '3-deep chain over a raw base', path: top, open: {}, files: [top, mid, rawBase] });
    out.push({ name: '3-deep chain given by the caller', path: top, open: { backingChain: [{ file: mid, format: 'qcow2' }, { file: rawBase }] }, files: [top, mid, rawBase] });

    const b = await qcow2(dir, 'chain-q-base.qcow2', 8 * M, ['cluster_size=65536']);
    await qemuIo(b, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000 }));
    const m = await qcow2(dir, 'chain-q-mid.qcow2', 8 * M, ['cluster_size=512'], { file: 'chain-q-base.qcow2', format: 'qcow2' });
    await qemuIo(m, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 100_000 }));
    const t = await qcow2(dir, 'chain-q-top.qcow2', 8 * M, ['cluster_size=16384', 'extended_l2=on'], { file: 'chain-q-mid.qcow2', format: 'qcow2' });
    await qemuIo(t, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 100_000 }));
    out.push({ name: '3-deep qcow2 chain, mixed cluster sizes', path: t, open: {}, files: [t, m, b] });
  }

  // Backing files shorter than the overlay (qcow2 and odd-sized raw).
  {
    const b = await qcow2(dir, 'short-base.qcow2', 1 * M, ['cluster_size=65536']);
    await qemuIo(b, 'qcow2', ['write -P 5 0 1M']);
    const o = await qcow2(dir, 'short-over.qcow2', 4 * M, ['cluster_size=65536'], { file: 'short-base.qcow2', format: 'qcow2' });
    await qemuIo(o, 'qcow2', ['write -P 6 512k 64k', 'write -P 7 3M 64k']);
    out.push({ name: 'backing shorter than the overlay (qcow2)', path: o, open: {}, files: [o, b] });
    const rb = await rawFull(dir, 'short-base.img', 1536 * 1024);
    await qemuIo(rb, 'raw', ['write -P 8 0 1536k']);
    const ro = await qcow2(dir, 'short-over-raw.qcow2', 4 * M, ['cluster_size=4096'], { file: 'short-base.img', format: 'raw' });
    await qemuIo(ro, 'qcow2', ['write -P 9 1M 8k']);
    out.push({ name: 'backing shorter than the overlay (raw)', path: ro, open: {}, files: [ro, rb] });
  }

  // External data files, plain and data_file_raw.
  for (const rawFlag of [false, true]) {
    const data = join(dir, `ext-data-${rawFlag}.raw`);
    const p = await qcow2(dir, `ext-${rawFlag}.qcow2`, 8 * M, ['cluster_size=65536', `data_file=${data}`, ...(rawFlag ? ['data_file_raw=on'] : [])]);
    await qemuIo(p, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000 }));
    out.push({ name: `external data file${rawFlag ? ' (data_file_raw)' : ''}`, path: p, open: {}, files: [data] });
  }

  // Internal snapshots: snapshot, then overwrite (COW moves host offsets), zero, discard.
  {
    const p = await qcow2(dir, 'snap.qcow2', 8 * M, ['cluster_size=65536']);
    await qemuIo(p, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000, ops: ['write'] }));
    await sh('qemu-img', ['snapshot', '-c', 'before', p]);
    await qemuIo(p, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000 }));
    await sh('qemu-img', ['snapshot', '-c', 'second', p]);
    await qemuIo(p, 'qcow2', randomOps({ size: 8 * M, count: n, seed: seed++, align: 512, maxLen: 300_000 }));
    out.push({ name: 'snapshots: active L1 after snapshot-then-overwrite', path: p, open: {}, files: [p] });
    out.push({ name: 'snapshots: named snapshot', path: p, open: { snapshot: 'before' }, files: [p], convertArgs: ['-l', 'snapshot.name=before'], readOnly: true });
  }

  // Dirty bit (lazy refcounts, qemu-io aborts without cleaning up).
  {
    const p = await qcow2(dir, 'dirty.qcow2', 4 * M, ['cluster_size=65536', 'lazy_refcounts=on']);
    await qemuIo(p, 'qcow2', [...randomOps({ size: 4 * M, count: n, seed, align: 512, maxLen: 200_000 }), 'abort']).catch(() => undefined);
    out.push({ name: 'dirty bit (lazy refcounts)', path: p, open: {}, files: [p] });
  }
  return out;
}
