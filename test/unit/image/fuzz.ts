// Fuzzing the mapper: mutate headers, L1 and L2 tables (and anything else) of real seed images and
// check that opening, mapping and reading either work or fail with a typed ImageError — never
// another exception, never a hang, never unbounded memory. Used by the unit test (a quick sample)
// and by bench/image-fuzz.ts (>= 10^4 cases).
import { readFile, writeFile } from 'node:fs/promises';
import { ImageError, openImage } from '../../../src/image/index.js';
import { prng } from './corpus.js';

export interface FuzzReport {
  cases: number;
  opened: number;
  typedErrors: number;
  /** untyped exceptions: each one a bug */
  crashes: string[];
  /** cases slower than the hang threshold */
  hangs: string[];
  maxMs: number;
}

type Region = 'header' | 'extensions' | 'l1' | 'l2' | 'anywhere' | 'truncate';
const REGIONS: Region[] = ['header', 'header', 'extensions', 'l1', 'l1', 'l2', 'l2', 'l2', 'anywhere', 'truncate'];

/** Offsets of the structures worth mutating in a qcow2 file (best effort on the pristine seed). */
function layout(b: Buffer): { l1: [number, number]; l2: number[]; cluster: number } {
  if (b.length < 104 || b.readUInt32BE(0) !== 0x514649fb) return { l1: [0, 0], l2: [], cluster: 512 };
  const cluster = 2 ** b.readUInt32BE(20);
  const l1Off = Number(b.readBigUInt64BE(40));
  const l1Len = Math.min(b.readUInt32BE(36) * 8, Math.max(0, b.length - l1Off));
  const l2: number[] = [];
  for (let i = 0; i + 8 <= l1Len; i += 8) {
    const e = Number(b.readBigUInt64BE(l1Off + i) & 0x00fffffffffffe00n);
    if (e && e + cluster <= b.length) l2.push(e);
  }
  return { l1: [l1Off, l1Len], l2, cluster };
}

function mutate(seed: Buffer, r: () => number): { data: Buffer; what: string } {
  const b = Buffer.from(seed);
  const lay = layout(seed);
  const region = REGIONS[Math.floor(r() * REGIONS.length)]!;
  if (region === 'truncate') {
    const at = Math.floor(r() * b.length);
    return { data: b.subarray(0, at), what: `truncate at ${at}` };
  }
  let [start, len] = [0, b.length];
  if (region === 'header') [start, len] = [0, 112];
  else if (region === 'extensions') [start, len] = [104, Math.min(1024, lay.cluster) - 104];
  else if (region === 'l1' && lay.l1[1] > 0) [start, len] = lay.l1;
  else if (region === 'l2' && lay.l2.length > 0) [start, len] = [lay.l2[Math.floor(r() * lay.l2.length)]!, lay.cluster];
  len = Math.max(1, Math.min(len, b.length - start));
  const edits = 1 + Math.floor(r() * 4);
  const what: string[] = [region];
  for (let i = 0; i < edits; i++) {
    const at = start + Math.floor(r() * len);
    const kind = r();
    if (kind < 0.4) {
      b[at] = b[at]! ^ (1 << Math.floor(r() * 8));
      what.push(`flip@${at}`);
    } else if (kind < 0.7) {
      b[at] = Math.floor(r() * 256);
      what.push(`byte@${at}`);
    } else {
      // An interesting 64-bit value at an 8-aligned spot: 0, all ones, huge, just past the end.
      const at8 = Math.min(b.length - 8, at - (at % 8));
      if (at8 < 0) continue;
      const vals = [0n, 0xffffffffffffffffn, 1n << 62n, BigInt(b.length), BigInt(b.length) | (1n << 63n), BigInt(Math.floor(r() * 2 ** 32)) << 9n];
      b.writeBigUInt64BE(vals[Math.floor(r() * vals.length)]!, at8);
      what.push(`u64@${at8}`);
    }
  }
  return { data: b, what: what.join(' ') };
}

/** Exercise one image: open, map (bounded window), read a few ranges. */
async function exercise(path: string, r: () => number): Promise<boolean> {
  const img = await openImage(path, { maxExtents: 1 << 16, l2CacheBytes: 1 << 20 });
  try {
    const window = Math.min(img.size, 64 * 1024 * 1024);
    const extents = await img.map(0, window);
    for (let i = 0; i < 3 && img.size > 0; i++) {
      const at = Math.floor(r() * Math.max(1, window - 65536));
      await img.read(at, Math.min(65536 + 1000, img.size - at));
    }
    for (const e of extents.slice(0, 8)) await img.read(e.start, Math.min(e.length, 4096));
    await img.invalidate();
    return true;
  } finally {
    await img.close();
  }
}

export async function fuzz(seeds: string[], scratch: string, cases: number, seed = 1, hangMs = 2000,
  onCase?: (i: number) => void): Promise<FuzzReport> {
  const r = prng(seed);
  const pristine = await Promise.all(seeds.map((s) => readFile(s)));
  const report: FuzzReport = { cases: 0, opened: 0, typedErrors: 0, crashes: [], hangs: [], maxMs: 0 };
  for (let i = 0; i < cases; i++) {
    const k = Math.floor(r() * seeds.length);
    const { data, what } = mutate(pristine[k]!, r);
    // Same name and directory as the seed so relative backing / data file names still resolve.
    await writeFile(scratch, data);
    const t0 = performance.now();
    try {
      await exercise(scratch, r);
      report.opened++;
    } catch (err) {
      if (err instanceof ImageError) report.typedErrors++;
      else report.crashes.push(`${seeds[k]} ${what}: ${(err as Error)?.stack ?? String(err)}`);
    }
    const ms = performance.now() - t0;
    report.maxMs = Math.max(report.maxMs, ms);
    if (ms > hangMs) report.hangs.push(`${seeds[k]} ${what}: ${ms.toFixed(0)} ms`);
    report.cases++;
    onCase?.(i);
  }
  return report;
}
