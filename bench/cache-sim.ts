// Evaluation of AC-SSD cache-space weights in the partitioned-cache simulator (src/cache/sim.ts) on
// synthetic Hadoop-shaped traces (src/cache/trace.ts). For each scenario: a profiling run on a shared
// cache yields the metrics the monitor would see; from them, AC-SSD weights (Algorithm 1, closed form)
// and VM-centric weights (cache share ∝ the VM's IO rate) are computed; then the job is replayed under
// a shared LRU, an equal per-VM split, VM-centric and AC-SSD partitions. Prints the job completion
// time (JCT) of each and its ratio to the shared cache. Run: npx tsx bench/cache-sim.ts

import { DEFAULT_TRACE, hadoopTrace, metricsOf, simulate, withNoisyNeighbor, type EpochMetrics, type Trace } from '../src/cache/index.js';
import { makePlan } from '../src/cache/plan.js';

const EPOCH_US = 2e6; // closed-loop interval in simulated time
const HYSTERESIS = 0.05;

/** A re-planner with the loop's hysteresis: keep the current weights unless one moved > 0.05. */
function adaptive(plan: (m: EpochMetrics) => number[], n: number) {
  let current = new Array<number>(n).fill(1 / n);
  return {
    kind: 'adaptive' as const,
    ws: current,
    epochUs: EPOCH_US,
    replan(m: EpochMetrics) {
      const next = plan(m);
      if (Math.max(...next.map((w, i) => Math.abs(w - current[i]!))) > HYSTERESIS) current = next;
      return current;
    },
  };
}
const byIoRate = (m: EpochMetrics) => {
  const total = m.vms.reduce((a, v) => a + v.iops, 0);
  return m.vms.map((v) => (total > 0 ? v.iops / total : 1 / m.vms.length));
};

const PARAMS = { hitUs: 100, missUs: 1500 };

/** The job's working set: distinct blocks of the critical VMs (a co-located scanner does not grow the cache). */
function distinctBlocks(t: Trace): number {
  let total = 0;
  for (let v = 0; v < t.vms.length; v++) {
    if (t.critical && !t.critical[v]) continue;
    const seen = new Set<number>();
    for (const ph of t.phases) for (const b of ph.accesses[v]!) seen.add(b);
    total += seen.size;
  }
  return total;
}

function evaluate(t: Trace, cacheFraction: number) {
  const cacheBlocks = Math.round(distinctBlocks(t) * cacheFraction);
  const p = { ...PARAMS, cacheBlocks };
  const shared = simulate(t, { kind: 'shared' }, p);
  const m = metricsOf(t, shared);
  const acssd = makePlan(m).weights.ws;
  const totalIops = m.vms.reduce((a, v) => a + v.iops, 0);
  const vmCentric = m.vms.map((v) => v.iops / totalIops);
  const equal = t.vms.map(() => 1 / t.vms.length);
  const run = (ws: number[]) => simulate(t, { kind: 'partitioned', ws }, p);
  const n = t.vms.length;
  return {
    shared,
    equal: run(equal),
    vmCentric: run(vmCentric),
    acssd: run(acssd),
    vmCentricLoop: simulate(t, adaptive(byIoRate, n), p),
    acssdLoop: simulate(t, adaptive((em) => makePlan(em).weights.ws, n), p),
    cacheBlocks,
  };
}

type Row = { scenario: string; shared: number; equal: number; vmCentric: number; acssd: number; vmCentricLoop: number; acssdLoop: number; hit: string };
const rows: Row[] = [];
const seeds = [1, 2, 3];
const scenarios: { name: string; make: (seed: number) => Trace; cache: number }[] = [
  { name: 'job alone, cache 15%', make: (seed) => hadoopTrace({ ...DEFAULT_TRACE, seed }), cache: 0.15 },
  { name: 'job alone, cache 30%', make: (seed) => hadoopTrace({ ...DEFAULT_TRACE, seed }), cache: 0.3 },
  { name: 'job + scanning VM, cache 15%', make: (seed) => withNoisyNeighbor(hadoopTrace({ ...DEFAULT_TRACE, seed }), 30_000), cache: 0.15 },
  { name: 'job + scanning VM, cache 30%', make: (seed) => withNoisyNeighbor(hadoopTrace({ ...DEFAULT_TRACE, seed }), 30_000), cache: 0.3 },
  { name: 'equal splits (skew 0), cache 15%', make: (seed) => hadoopTrace({ ...DEFAULT_TRACE, seed, skew: 0 }), cache: 0.15 },
];

const t0 = performance.now();
for (const sc of scenarios) {
  const acc = { shared: 0, equal: 0, vmCentric: 0, acssd: 0, vmCentricLoop: 0, acssdLoop: 0 };
  const hits = { shared: 0, acssd: 0 };
  for (const seed of seeds) {
    const r = evaluate(sc.make(seed), sc.cache);
    acc.shared += r.shared.jctUs / seeds.length;
    acc.equal += r.equal.jctUs / seeds.length;
    acc.vmCentric += r.vmCentric.jctUs / seeds.length;
    acc.acssd += r.acssd.jctUs / seeds.length;
    acc.vmCentricLoop += r.vmCentricLoop.jctUs / seeds.length;
    acc.acssdLoop += r.acssdLoop.jctUs / seeds.length;
    hits.shared += r.shared.hits / r.shared.accesses / seeds.length;
    hits.acssd += r.acssd.hits / r.acssd.accesses / seeds.length;
  }
  rows.push({ scenario: sc.name, ...acc, hit: `${(hits.shared * 100).toFixed(1)}% / ${(hits.acssd * 100).toFixed(1)}%` });
}

const s = (us: number) => (us / 1e6).toFixed(1).padStart(6);
const r = (x: number, base: number) => (x / base).toFixed(3).padStart(6);
const cols = ['shared', 'equal', 'VMcen', 'ACSSD', 'VMc-L', 'AC-L'];
console.log(`JCT in seconds (mean of seeds ${seeds.join(',')}); static weights from a profiling run; -L = closed loop every ${EPOCH_US / 1e6} s`);
console.log(`${'scenario'.padEnd(33)}${cols.map((c) => c.padStart(7)).join('')}   ratio to shared: ${cols.slice(1).join(' ')}   hit shared/ACSSD`);
for (const row of rows) {
  const v = [row.shared, row.equal, row.vmCentric, row.acssd, row.vmCentricLoop, row.acssdLoop];
  console.log(`${row.scenario.padEnd(33)}${v.map((x) => ` ${s(x)}`).join('')}   ${v.slice(1).map((x) => r(x, row.shared)).join('')}   ${row.hit}`);
}
console.log(`(simulated ${scenarios.length * seeds.length} scenarios × 6 policies in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
