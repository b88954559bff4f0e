// Benchmarks of the composed-files mount (issue 5). Needs root (FUSE) and the native addon.
//   node --import tsx bench/fs.ts          LIVEMR_BENCH_MIB=512 sets the composed file's size
//
// P1  sequential read of a composed file (16 unaligned segments of a backing file twice its size)
//     vs raw pread of the same byte ranges of the backing file, backing file warm in the page cache;
//     1 and 4 concurrent readers, 1 MiB reads. Cases: the composed file's own page cache dropped
//     before each pass (every byte through the FUSE daemon), splice replies, direct_io, and the
//     composed file already in the page cache (a re-read).
// P5  one file of 10^6 segments: the read path's lookup (C, binary search) and memory per segment;
//     random 4 KiB reads through FUSE on it vs on a 16-segment file.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ComposedMount } from '../src/fs/mount.js';
import { loadNative } from '../src/fs/native.js';
import { CompositionStore, type SegmentSpec } from '../src/fs/store.js';

const MiB = 2 ** 20;
const COMPOSED = Number(process.env.LIVEMR_BENCH_MIB ?? 512) * MiB;
const PASSES = Number(process.env.LIVEMR_BENCH_PASSES ?? 5);

type Range = [offset: number, length: number];

// Plain-JS worker: waits for 'go', reads its ranges with pread in `chunk` pieces, reports bytes.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { file, ranges, chunk } = workerData;
const fd = fs.openSync(file, 'r');
const buf = Buffer.allocUnsafeSlow(chunk);
parentPort.on('message', (m) => {
  if (m !== 'go') return;
  let total = 0;
  for (const [off, len] of ranges) {
    for (let p = 0; p < len; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(chunk, len - p), off + p);
      if (n <= 0) throw new Error('short read at ' + (off + p));
      p += n; total += n;
    }
  }
  fs.closeSync(fd);
  parentPort.postMessage(total);
});
parentPort.postMessage('ready');
`;

/** Runs `readers` concurrent workers over the same ranges; returns aggregate MB/s. */
async function throughput(file: string, ranges: Range[], readers: number): Promise<number> {
  const workers = Array.from({ length: readers }, () => new Worker(WORKER, { eval: true, workerData: { file, ranges, chunk: MiB } }));
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
  const done = workers.map((w) => new Promise<number>((resolve, reject) => (w.once('message', resolve), w.once('error', reject))));
  const t0 = process.hrtime.bigint();
  for (const w of workers) w.postMessage('go');
  const bytes = (await Promise.all(done)).reduce((a, b) => a + b, 0);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(workers.map((w) => w.terminate()));
  return bytes / 1e6 / s;
}

/** Drops a file's clean pages from the page cache (POSIX_FADV_DONTNEED through dd). */
function dropCache(file: string): void {
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * Alternates baseline and composed passes (the machine is shared: load drifts) and reports the
 * median of each and the median of the per-pair ratios.
 */
async function paired(
  base: () => Promise<number>,
  composed: () => Promise<number>,
  before?: () => void,
): Promise<{ base: number; composed: number; ratio: number }> {
  const b: number[] = [];
  const c: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < PASSES; i++) {
    b.push(await base());
    before?.();
    c.push(await composed());
    r.push(c[i]! / b[i]!);
  }
  return { base: median(b), composed: median(c), ratio: median(r) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  if (process.getuid!() !== 0) throw new Error('run as root (mounts FUSE)');
  const native = loadNative();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-bench-'));
  const mnt = path.join(tmp, 'mnt');
  const mntSplice = path.join(tmp, 'mnt-splice');
  fs.mkdirSync(mnt);
  fs.mkdirSync(mntSplice);
  const store = CompositionStore.open(path.join(tmp, 'state'));
  const mounts: ComposedMount[] = [];
  const rows: string[][] = [];
  try {
    // backing file: 2 x COMPOSED of random bytes
    const backing = path.join(tmp, 'backing.img');
    const chunk = Buffer.alloc(16 * MiB);
    const fd = fs.openSync(backing, 'w');
    for (let off = 0; off < 2 * COMPOSED; off += chunk.length) fs.writeSync(fd, randomFillSync(chunk), 0, chunk.length, off);
    fs.closeSync(fd);
    // 16 unaligned segments, in shuffled order, covering COMPOSED bytes
    const n = 16;
    const segs: SegmentSpec[] = [];
    const raw: Range[] = [];
    let left = COMPOSED;
    for (let i = 0; i < n; i++) {
      const length = i === n - 1 ? left : Math.floor(COMPOSED / n) - 1234 * (i % 3) + 7;
      const offset = ((i * 7) % n) * Math.floor((2 * COMPOSED) / n) + 4099 * i + 1;
      segs.push({ file: backing, offset, length });
      raw.push([offset, length]);
      left -= length;
    }
    store.compose('p1', segs);
    store.compose('p1direct', segs, { directIo: true });
    mounts.push(await ComposedMount.mount(store, mnt));
    mounts.push(await ComposedMount.mount(store, mntSplice, { splice: true }));
    const file = path.join(mnt, 'livemr_p1');
    const whole: Range[] = [[0, COMPOSED]];
    await throughput(backing, [[0, 2 * COMPOSED]], 1); // warm the backing file
    const row = (c: string, readers: number, p: { base: number; composed: number; ratio: number }, goal: string) =>
      rows.push(['P1', c, String(readers), p.composed.toFixed(0), p.base.toFixed(0), p.ratio.toFixed(2), goal]);
    for (const readers of [1, 4]) {
      const goal = readers === 1 ? '>= 0.6' : '>= 0.9';
      const rawPass = () => throughput(backing, raw, readers);
      const spliced = path.join(mntSplice, 'livemr_p1');
      row('pread path, FUSE page cache dropped', readers, await paired(rawPass, () => throughput(file, whole, readers), () => dropCache(file)), goal);
      row('splice path, FUSE page cache dropped', readers, await paired(rawPass, () => throughput(spliced, whole, readers), () => dropCache(spliced)), goal);
      row('direct_io file (no page cache)', readers, await paired(rawPass, () => throughput(path.join(mnt, 'livemr_p1direct'), whole, readers)), goal);
      await throughput(file, whole, 1);
      row('composed file warm in page cache', readers, await paired(rawPass, () => throughput(file, whole, readers)), goal);
    }

    // P5: 10^6 segments
    const N = 1_000_000;
    const big: SegmentSpec[] = Array.from({ length: N }, (_, i) => ({ file: backing, offset: (i * 8192) % (2 * COMPOSED - 8192), length: 4096 }));
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    store.compose('p5', big, { directIo: true }); // journaled, and installed on both mounts
    const composeMs = performance.now() - t0;
    const c = store.get('p5')!;
    const table = c.nativeTable();
    const positions = new Float64Array(N);
    for (let i = 0; i < N; i++) positions[i] = Math.floor(Math.random() * table.size);
    const single = native.benchLookup(table, positions, 1);
    const batched = native.benchLookup(table, positions, 64);
    const oneSeg = native.benchLookup({ ...table, n: 1, size: table.size, coff: new Float64Array([0]), foff: new Float64Array([0]), src: new Uint32Array([0]) }, positions, 64);
    const jsBytes = c.segments.bytes / N;
    const nativeBytes = single.tableBytes / N;
    const rssPerSeg = (process.memoryUsage().rss - rssBefore) / N;
    rows.push(['P5', 'lookup ns, median of batches of 64 vs 1-segment table', '1', batched.medianNs.toFixed(1), oneSeg.medianNs.toFixed(1), (batched.medianNs / 1000).toFixed(3), '<= 1 (x 1 us)']);
    rows.push(['P5', 'lookup ns, median of single timed lookups (incl. clock)', '1', single.medianNs.toFixed(0), '', (single.medianNs / 1000).toFixed(3), '<= 1 (x 1 us)']);
    rows.push(['P5', 'memory/segment: JS list + native table (B)', '', `${jsBytes.toFixed(1)} + ${nativeBytes.toFixed(1)}`, '', ((jsBytes + nativeBytes) / 64).toFixed(2), '<= 1 (x 64 B)']);
    rows.push(['P5', `RSS growth/segment incl. 2 mounts + compose garbage (B), compose ${composeMs.toFixed(0)} ms`, '', rssPerSeg.toFixed(1), '', '', 'info']);
    // random 4 KiB reads through FUSE: 10^6-segment file vs 16-segment file (both direct_io)
    const rnd = (size: number): Range[] => Array.from({ length: 20000 }, () => [Math.floor(Math.random() * (size / 4096 - 1)) * 4096, 4096]);
    const r4k = await paired(
      () => throughput(path.join(mnt, 'livemr_p1direct'), rnd(COMPOSED), 1),
      () => throughput(path.join(mnt, 'livemr_p5'), rnd(table.size), 1),
    );
    rows.push(['P5', 'random 4 KiB reads MB/s via FUSE: 10^6 vs 16 segments', '1', r4k.composed.toFixed(0), r4k.base.toFixed(0), r4k.ratio.toFixed(2), '~1']);
  } finally {
    for (const m of mounts) await m.unmount();
    store.close();
    for (const mp of [mnt, mntSplice])
      if (spawnSync('mountpoint', ['-q', mp]).status === 0) spawnSync('fusermount3', ['-u', '-z', mp]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const head = ['bench', 'case', 'readers', 'composed', 'baseline', 'ratio', 'goal'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  console.log(`composed file ${COMPOSED / MiB} MiB, 16 segments; MB/s = 10^6 B/s; median of ${PASSES} alternating baseline/composed passes; ${os.cpus().length} CPUs`);
  console.log([line(head), line(w.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
