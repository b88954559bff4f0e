// The cost of re-verifying a disk after a discard (docs/host.md, "Discards"): every file on the disk
// is laid out again on the image as it is now and published (FileSync.reverifyDisk does exactly this
// per file, after one invalidate). N files of 4 extents each on a real qcow2 image and a real
// composition store (journal on disk, no mount). Baseline, same run: publishing the N files the
// first time (what a guest's full resync costs the agent).
//   node --import tsx bench/disk-reverify.ts [FILES]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompositionStore } from '../src/fs/index.js';
import type { Extent } from '../src/guest/index.js';
import { layoutFile } from '../src/host/layout.js';
import { publish } from '../src/host/publish.js';
import { openImage } from '../src/image/index.js';

const files = Number(process.argv[2] ?? 1000);
const C = 65536;
const PER_FILE = 4; // extents per file, one cluster each, scattered over the disk
const dir = mkdtempSync(join(tmpdir(), 'livemr-bench-reverify-'));
try {
  const img = join(dir, 'disk.qcow2');
  const clusters = files * PER_FILE;
  const size = Math.max(64 << 20, clusters * 2 * C);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, String(size)]);
  // every other cluster written, so that the files' extents do not merge
  const cmds = [];
  for (let k = 0; k < clusters; k++) cmds.push('-c', `write -P ${k % 250} ${2 * k * C} ${C}`);
  for (let i = 0; i < cmds.length; i += 2000) execFileSync('qemu-io', ['-f', 'qcow2', ...cmds.slice(i, i + 2000), img]);
  const mapper = await openImage(img);
  const store = CompositionStore.open(join(dir, 'state'));
  const extentsOf = (f: number): Extent[] => Array.from({ length: PER_FILE }, (_, j) => ({ logical: j * C, physical: 2 * (f * PER_FILE + j) * C, length: C, flags: 0 }));
  const round = async (what: string) => {
    const t0 = process.hrtime.bigint();
    await mapper.invalidate();
    const results = new Map<string, number>();
    for (let f = 0; f < files; f++) {
      const r = publish(store, `f${f}`, PER_FILE * C, await layoutFile(PER_FILE * C, extentsOf(f), mapper));
      results.set(r, (results.get(r) ?? 0) + 1);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { what, ms, results: [...results].map(([r, n]) => `${r} ${n}`).join(', ') };
  };
  const rows = [await round('first publish (baseline)'), await round('re-verify, nothing changed')];
  // one cluster of every 10th file discarded (QEMU makes it a zero cluster): those files are remapped
  const discards = [];
  for (let f = 0; f < files; f += 10) discards.push('-c', `discard ${2 * (f * PER_FILE + 1) * C} ${C}`);
  for (let i = 0; i < discards.length; i += 2000) execFileSync('qemu-io', ['-f', 'qcow2', '-d', 'unmap', ...discards.slice(i, i + 2000), img]);
  rows.push(await round('re-verify after discards in 10% of the files'));
  const base = rows[0]!.ms;
  process.stdout.write(`${files} files × ${PER_FILE} extents on a ${(size / 2 ** 20).toFixed(0)} MiB qcow2\n`);
  for (const r of rows) {
    process.stdout.write(`${r.what.padEnd(46)} ${r.ms.toFixed(1).padStart(8)} ms  ${(r.ms * 1000 / files).toFixed(0).padStart(6)} µs/file  ratio ${(r.ms / base).toFixed(2)}  (${r.results})\n`);
  }
  store.close();
  await mapper.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
