// Real enforcement of IOPS weights on this host: a loop device with direct I/O on a temp file, BFQ as
// its scheduler, two child cgroups written by LiveMR's cgroup actuator, and fio (4 KiB random reads,
// O_DIRECT, iodepth 32) in each. Needs root, fio, a block I/O cgroup controller and BFQ; otherwise each
// test is an explicit skip with the reason as its note (counted and printed by the summary reporter). Everything is removed in afterAll, also after a failure.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CgroupIo, cgroupActuator, detectCgroup, makePlan, runFio, scaleWeights, type CgroupHost } from '../../src/cache/index.js';

function why(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  try { execFileSync('fio', ['--version'], { stdio: 'ignore' }); } catch { return 'fio is not installed'; }
  try { detectCgroup(); } catch (e) { return (e as Error).message; }
  try { execFileSync('modprobe', ['bfq'], { stdio: 'ignore' }); } catch { /* built in, or absent: checked below */ }
  return null;
}
const skip = why();

describe('cgroup IOPS weights and caps on a real loop device', () => {
  const tag = `livemr-cache-${process.pid}`;
  const file = join('/var/tmp', `${tag}.img`);
  let loop = '';
  let dev = '';
  let host: CgroupHost;
  const groups: string[] = [];
  let noBfq: string | null = null;

  beforeAll(() => {
    if (skip) return;
    host = detectCgroup();
    // Real blocks (not a sparse file): reads of holes would never reach the disk.
    execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=256', 'oflag=direct', 'status=none']);
    loop = execFileSync('losetup', ['--find', '--show', '--direct-io=on', file]).toString().trim();
    const q = `/sys/block/${basename(loop)}/queue`;
    dev = readFileSync(`/sys/block/${basename(loop)}/dev`, 'utf8').trim();
    try {
      writeFileSync(`${q}/scheduler`, 'bfq');
      writeFileSync(`${q}/iosched/low_latency`, '0'); // weights, not interactivity heuristics
      // Without strict guarantees the 1:8 weights gave 1.9:1 to 5:1 here depending on the machine's load
      // (CPU-bound fio on shared cores); with them BFQ idles for the heavier queue and the weights hold.
      writeFileSync(`${q}/iosched/strict_guarantees`, '1');
    } catch (e) {
      noBfq = `BFQ not available on ${loop}: ${(e as Error).message}`;
    }
    if (host.version === 'v2') {
      // v2 children need the io controller enabled in the parent.
      writeFileSync(join(host.root, 'cgroup.subtree_control'), '+io');
    }
    for (const name of ['heavy', 'light']) {
      const dir = join(host.root, `${tag}-${name}`);
      mkdirSync(dir);
      groups.push(dir);
    }
    console.warn(`[cache-enforce] cgroup ${host.version} at ${host.root}, ${loop} (${dev})`);
  }, 60_000);

  afterAll(() => {
    for (const dir of groups) {
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try { rmdirSync(dir); } catch { execFileSync('sleep', ['0.1']); } // fio may still be exiting
      }
    }
    if (loop) { try { execFileSync('losetup', ['-d', loop]); } catch { /* already gone */ } }
    rmSync(file, { force: true });
  });

  beforeEach((ctx) => { if (skip) ctx.skip(skip); });

  const cg = (i: number) => new CgroupIo(host, basename(groups[i]!), dev);

  it('a 1:8 weight gives the heavier group clearly more IOPS (BFQ)', async (ctx) => {
    if (noBfq) return ctx.skip(noBfq);
    const [heavyW, lightW] = scaleWeights([8 / 9, 1 / 9], cg(0).weightFile()?.max ?? 1000);
    expect(heavyW! / lightW!).toBe(8);
    expect(cg(0).apply({ weight: heavyW, iopsCap: 0 }).weight).toBe(heavyW);
    expect(cg(1).apply({ weight: lightW, iopsCap: 0 }).weight).toBe(lightW);
    const job = { filename: loop, seconds: 5, iodepth: 32 };
    const [heavy, light] = await Promise.all([runFio({ ...job, cgroupDir: groups[0] }), runFio({ ...job, cgroupDir: groups[1] })]);
    const ratio = heavy.iops / light.iops;
    console.warn(`[cache-enforce] weights ${heavyW}:${lightW} → IOPS ${heavy.iops.toFixed(0)} : ${light.iops.toFixed(0)} (ratio ${ratio.toFixed(2)})`);
    expect(ratio).toBeGreaterThan(2);
  }, 60_000);

  it('IOPS caps from weights hold within ±10% (loop actuator: caps = wi × capacity)', async () => {
    // r ∝ IOPS/bandwidth = 3 : 7 and no traffic (d uniform) → wi = (r + d)/2 = 0.4 / 0.6 → caps 200 / 300
    const plan = makePlan({
      vms: [
        { name: 'heavy', app: 'x', ioTimeNs: 1, cpuTimeNs: 1, iops: 3, bandwidth: 1 },
        { name: 'light', app: 'x', ioTimeNs: 1, cpuTimeNs: 1, iops: 7, bandwidth: 1 },
      ],
      flows: [],
    });
    const act = cgroupActuator({
      host, dev, weights: false, caps: true, capacityIops: 500,
      vms: [{ name: 'heavy', cgroup: basename(groups[0]!) }, { name: 'light', cgroup: basename(groups[1]!) }],
    });
    const caps = [200, 300];
    const back = (await act.apply(plan)) as Record<string, { readIops: number; writeIops: number }>;
    expect([back.heavy, back.light].map((b) => [b!.readIops, b!.writeIops])).toEqual([[200, 200], [300, 300]]);
    const job = { filename: loop, seconds: 4, iodepth: 32 };
    const res = await Promise.all([runFio({ ...job, cgroupDir: groups[0] }), runFio({ ...job, cgroupDir: groups[1] })]);
    res.forEach((r, i) => {
      console.warn(`[cache-enforce] cap ${caps[i]} IOPS → measured ${r.iops.toFixed(1)}`);
      expect(Math.abs(r.iops - caps[i]!) / caps[i]!).toBeLessThanOrEqual(0.1);
    });
    for (let i = 0; i < 2; i++) {
      cg(i).clear();
      expect(cg(i).read().readIops).toBeNull();
    }
  }, 60_000);
});
