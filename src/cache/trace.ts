// Synthetic traces shaped like the phases of a Hadoop job on VMs of one host (docs/cache.md, "Traces"):
// - map: every VM reads its input split `passes` times (iterative jobs such as K-Means re-read their
//   input), split sizes skewed (lognormal), and writes map output (a fraction of its input);
// - shuffle: each VM serves its map output to the reducers, reading it back from its own disk; the bytes
//   go over the network from mapper to reducer (the IO dependency);
// - reduce: the reducer VMs write the shuffled data (merge), read it back, and write the job output.
// Blocks are per-VM disk block numbers; region offsets keep input, map output and reduce data apart.
// Reads within a split are sequential runs from random starting points, so there is reuse at all.

import { Rng } from './rng.js';
import type { Trace } from './sim.js';

export interface TraceOptions {
  seed: number;
  vms: number;
  reducers: number;
  /** mean input split per VM, in blocks */
  splitBlocks: number;
  /** lognormal σ of split sizes (0 = equal splits) */
  skew: number;
  /** how many times the map phase reads its input */
  passes: number;
  /** map output / input */
  mapOutput: number;
  /** reduce output / reduce input */
  reduceOutput: number;
  /** compute time per block processed (µs) */
  computeUsPerBlock: number;
  blockBytes: number;
  app?: string;
}

export const DEFAULT_TRACE: TraceOptions = {
  seed: 1,
  vms: 8,
  reducers: 2,
  splitBlocks: 4000,
  skew: 0.6,
  passes: 3,
  mapOutput: 0.4,
  reduceOutput: 0.3,
  computeUsPerBlock: 150,
  blockBytes: 64 * 1024,
};

const INPUT = 0;
const MAP_OUT = 1 << 28;
const REDUCE = 2 << 28;

export function hadoopTrace(o: TraceOptions): Trace {
  const rng = new Rng(o.seed);
  const n = o.vms;
  const app = o.app ?? 'job';
  const split = Array.from({ length: n }, () => Math.max(16, Math.round(o.splitBlocks * Math.exp(o.skew * rng.normal() - (o.skew * o.skew) / 2))));
  const mapOut = split.map((s) => Math.max(1, Math.round(s * o.mapOutput)));
  const reducers = Array.from({ length: Math.min(n, o.reducers) }, (_, i) => Math.floor((i * n) / Math.min(n, o.reducers)));
  const vms = Array.from({ length: n }, (_, i) => ({ name: `${app}-vm${i}`, app }));

  // map: `passes` reads of the split in shuffled runs of 64 blocks, then the map output writes
  const map = split.map((s, v) => {
    const out: number[] = [];
    const runs = Math.ceil(s / 64);
    for (let pass = 0; pass < o.passes; pass++) {
      const order = Array.from({ length: runs }, (_, i) => i);
      for (let i = runs - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const r of order) for (let b = r * 64; b < Math.min(s, r * 64 + 64); b++) out.push(INPUT + b);
    }
    for (let b = 0; b < mapOut[v]!; b++) out.push(MAP_OUT + b);
    return out;
  });

  // shuffle: each mapper reads back its map output (served to the reducers, partitioned evenly)
  const flows: Trace['flows'] = [];
  const shuffle = mapOut.map((m, v) => {
    const out: number[] = [];
    for (let b = 0; b < m; b++) out.push(MAP_OUT + b);
    for (const r of reducers) {
      if (r !== v) flows.push({ from: vms[v]!.name, to: vms[r]!.name, bytes: Math.round((m / reducers.length) * o.blockBytes) });
    }
    return out;
  });

  // reduce: reducers write the fetched data, merge-read it twice, write the output
  const fetched = new Array<number>(n).fill(0);
  mapOut.forEach((m) => reducers.forEach((r) => (fetched[r]! += Math.round(m / reducers.length))));
  const reduce = fetched.map((f) => {
    const out: number[] = [];
    for (let b = 0; b < f; b++) out.push(REDUCE + b);
    for (let pass = 0; pass < 2; pass++) for (let b = 0; b < f; b++) out.push(REDUCE + b);
    const w = Math.round(f * o.reduceOutput);
    for (let b = 0; b < w; b++) out.push(REDUCE + f + b);
    return out;
  });

  const c = o.computeUsPerBlock;
  return {
    vms,
    blockBytes: o.blockBytes,
    flows,
    phases: [
      { name: 'map', accesses: map.map((a) => Uint32Array.from(a)), computeUs: split.map((s) => s * o.passes * c) },
      {
        name: 'shuffle',
        accesses: shuffle.map((a) => Uint32Array.from(a)),
        computeUs: mapOut.map((m) => m * c * 0.1),
        sendsTo: vms.map((_, v) => reducers.filter((r) => r !== v)),
      },
      { name: 'reduce', accesses: reduce.map((a) => Uint32Array.from(a)), computeUs: fetched.map((f) => f * 2 * c) },
    ],
  };
}

/**
 * Add a co-located VM of another application that streams through its disk (a scan: every block read
 * once, high IO rate, no reuse and no network peers). It competes for the cache but is not on the job's
 * critical path — the case where a VM-centric policy (cache by IO rate) is expected to go wrong.
 */
export function withNoisyNeighbor(t: Trace, blocksPerPhase: number, name = 'scan-vm0'): Trace {
  let next = 0;
  const phases = t.phases.map((ph) => {
    const a = new Uint32Array(blocksPerPhase);
    for (let i = 0; i < blocksPerPhase; i++) a[i] = next++;
    const sendsTo = ph.sendsTo ? [...ph.sendsTo, []] : undefined;
    return { ...ph, accesses: [...ph.accesses, a], computeUs: [...ph.computeUs, blocksPerPhase * 20], sendsTo };
  });
  return {
    ...t,
    vms: [...t.vms, { name, app: 'scan' }],
    phases,
    critical: [...(t.critical ?? t.vms.map(() => true)), false],
  };
}
