// Benchmark: map every allocated cluster of a large sparse qcow2 image (>= 10^5 allocated
// clusters) with LiveMR's mapper vs `qemu-img map --output=json` on the same image, in one run.
// Prints the ratio qemu-img time / LiveMR time (>= 1: LiveMR is not slower). Best of N runs each,
// after one untimed warm-up round (page cache, JIT).
//   node --import tsx bench/image-map.ts [ALLOCATED_CLUSTERS] [RUNS]
import { execFile, spawn } from 'node:child_process';
import { open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { formatQemuMapJson, openImage, toQemuMap } from '../src/image/index.js';
import { prng } from '../test/unit/image/corpus.js';

const run = promisify(execFile);
const CLUSTER = 4096;

async function buildImage(dir: string, allocated: number): Promise<{ path: string; clusters: number }> {
  // A sparse raw file with one non-zero byte in `allocated` random clusters of a disk 8x larger,
  // converted to qcow2 (qemu-img allocates exactly the non-zero clusters).
  const total = allocated * 8;
  const raw = join(dir, 'sparse.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(total * CLUSTER);
  const r = prng(42);
  const chosen = new Set<number>();
  while (chosen.size < allocated) chosen.add(Math.floor(r() * total));
  const one = Buffer.from([0xa5]);
  for (const c of chosen) await fh.write(one, 0, 1, c * CLUSTER + Math.floor(r() * CLUSTER));
  await fh.close();
  const path = join(dir, 'sparse.qcow2');
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${CLUSTER}`, raw, path]);
  await rm(raw);
  return { path, clusters: chosen.size };
}

interface Timing { wall: number; cpu: number }

/** Wall and CPU (user+sys) time of a command, measured by bash's `time` (stdout discarded). */
async function timeProcess(cmd: string, args: string[]): Promise<Timing> {
  const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('bash', ['-c', `TIMEFORMAT='%3R %3U %3S'; time ${quoted} >/dev/null`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(err) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
  const [real, user, sys] = out.trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number];
  return { wall: real * 1000, cpu: (user + sys) * 1000 };
}

/** The mapper's API: open, map the whole disk, merge into qemu-img's entries (the same information). */
async function timeInProcess(path: string): Promise<{ ms: number; cpu: number; entries: number; dataClusters: number; jsonMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const img = await openImage(path);
  const extents = await img.map(0, img.size);
  const entries = toQemuMap(extents);
  await img.close();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const t1 = performance.now();
  formatQemuMapJson(entries);
  const jsonMs = performance.now() - t1;
  const dataClusters = extents.reduce((n, e) => n + (e.kind === 'data' ? e.length / CLUSTER : 0), 0);
  return { ms, cpu: (c.user + c.system) / 1000, entries: entries.length, dataClusters, jsonMs };
}

const best = (xs: number[]) => Math.min(...xs);

const allocated = Number(process.argv[2] ?? 120_000);
const runs = Number(process.argv[3] ?? 5);
const dir = await mkdtemp(join(tmpdir(), 'livemr-image-bench-'));
try {
  const t0 = performance.now();
  const { path, clusters } = await buildImage(dir, allocated);
  console.log(`image map bench: ${clusters} allocated ${CLUSTER}-byte clusters in a ${(clusters * 8 * CLUSTER / 2 ** 30).toFixed(2)} GiB disk (built in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const cli = fileURLToPath(new URL('../bin/livemr.mjs', import.meta.url));
  const qemu: Timing[] = [], ours: Timing[] = [], oursCli: Timing[] = [], json: number[] = [];
  let check = { entries: 0, dataClusters: 0 };
  // One untimed round first: page cache for both, JIT for LiveMR.
  await timeProcess('qemu-img', ['map', '--output=json', '-f', 'qcow2', path]);
  await timeInProcess(path);
  for (let i = 0; i < runs; i++) {
    qemu.push(await timeProcess('qemu-img', ['map', '--output=json', '-f', 'qcow2', path]));
    const r = await timeInProcess(path);
    ours.push({ wall: r.ms, cpu: r.cpu });
    json.push(r.jsonMs);
    check = r;
    oursCli.push(await timeProcess(process.execPath, [cli, 'image', 'map', '--json', path]));
  }
  if (check.dataClusters !== clusters) throw new Error(`mapped ${check.dataClusters} data clusters, expected ${clusters}`);
  const wall = (xs: Timing[]) => best(xs.map((x) => x.wall));
  const cpu = (xs: Timing[]) => best(xs.map((x) => x.cpu));
  const q = wall(qemu), o = wall(ours), c = wall(oursCli), j = best(json);
  const ms = (x: number) => `${x.toFixed(0)} ms`.padStart(8);
  console.log(`  qemu-img map --output=json   wall ${ms(q)}  cpu ${ms(cpu(qemu))}`);
  console.log(`  livemr openImage+map+merge   wall ${ms(o)}  cpu ${ms(cpu(ours))}  (${check.entries} entries, ${check.dataClusters} data clusters; + ${j.toFixed(0)} ms to format JSON)`);
  console.log(`  livemr image map --json      wall ${ms(c)}  cpu ${ms(cpu(oursCli))}  (CLI process, incl. node+tsx start-up)`);
  console.log(`ratio qemu-img/livemr (>= 1: not slower): API wall ${(q / o).toFixed(2)}x cpu ${(cpu(qemu) / cpu(ours)).toFixed(2)}x; ` +
    `API+JSON wall ${(q / (o + j)).toFixed(2)}x; CLI wall ${(q / c).toFixed(2)}x cpu ${(cpu(qemu) / cpu(oursCli)).toFixed(2)}x`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
