// Trace-driven simulator of a partitioned SSD cache in front of slower VM disks, for evaluation only.
// Each VM's accesses run in order; one access costs hitUs (block in the SSD cache) or missUs (not),
// and every block read or written is then cached (write-allocate) with LRU replacement — either in
// one LRU shared by all VMs, or in per-VM LRU partitions whose sizes are ws × capacity (whole blocks).
// A job runs in phases separated by barriers (a phase ends when its slowest VM ends), so the job
// completion time (JCT) is the sum of the phase times. Within a phase the VMs run concurrently: the
// next access simulated is always that of the VM with the earliest clock, so in the shared cache the
// VMs interleave as they would in time.

import { toUnits } from './cache-config.js';
import { CacheInputError } from './errors.js';

export interface PhaseTrace {
  name: string;
  /** per VM: the blocks it touches in order (block ids are per-VM: each VM has its own disk) */
  accesses: Uint32Array[];
  /** per VM: compute time of the phase (µs), spread evenly over its accesses */
  computeUs: number[];
  /** per VM: the VMs each accessed block is sent to over the network, split evenly (shuffle) */
  sendsTo?: number[][];
}

export interface Trace {
  vms: { name: string; app: string }[];
  phases: PhaseTrace[];
  /** bytes per block (for bandwidth metrics) */
  blockBytes: number;
  /** bytes sent between VMs during the job (shuffle), for the IO dependency */
  flows: { from: string; to: string; bytes: number }[];
  /** VMs whose end of phase is the job's barrier (default all); others only compete for the cache */
  critical?: boolean[];
}

export interface SimParams {
  cacheBlocks: number;
  hitUs: number;
  missUs: number;
}

/** Metrics of one VM over one epoch of an adaptive run, in the shape Algorithm 1 takes. */
export type EpochMetrics = { vms: import('./model.js').VmMetrics[]; flows: import('./model.js').Flow[] };

export type CachePolicy =
  | { kind: 'shared' }
  | { kind: 'partitioned'; ws: number[] }
  /** the closed loop: start from `ws`, re-plan from the last epoch's metrics every `epochUs` */
  | { kind: 'adaptive'; ws: number[]; epochUs: number; replan: (m: EpochMetrics) => number[] };

export interface SimResult {
  jctUs: number;
  phaseUs: number[];
  hits: number;
  accesses: number;
  /** per VM: summed IO time (µs), accesses, hits */
  perVm: { ioUs: number; accesses: number; hits: number; computeUs: number }[];
}

/** An LRU set of block keys with a fixed capacity (Map keeps insertion order). */
class Lru {
  private readonly map = new Map<number, true>();
  constructor(private capacity: number) {}
  /** change the size; shrinking evicts the least recently used blocks */
  resize(capacity: number): void {
    this.capacity = capacity;
    while (this.map.size > capacity) this.map.delete(this.map.keys().next().value as number);
  }
  /** true on a hit; the block is cached (most recent) either way */
  touch(key: number): boolean {
    if (this.capacity <= 0) return false;
    const hit = this.map.delete(key);
    this.map.set(key, true);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as number);
    return hit;
  }
}

export function simulate(trace: Trace, policy: CachePolicy, p: SimParams): SimResult {
  const n = trace.vms.length;
  if (!(p.cacheBlocks >= 0 && p.hitUs >= 0 && p.missUs >= 0)) throw new CacheInputError('bad simulation parameters');
  let caches: Lru[];
  if (policy.kind === 'shared') {
    const shared = new Lru(p.cacheBlocks);
    caches = Array.from({ length: n }, () => shared);
  } else {
    if (policy.ws.length !== n) throw new CacheInputError(`need ${n} cache weights`);
    caches = toUnits(policy.ws, p.cacheBlocks).map((size) => new Lru(size));
  }
  const perVm = Array.from({ length: n }, () => ({ ioUs: 0, accesses: 0, hits: 0, computeUs: 0 }));
  const phaseUs: number[] = [];
  // adaptive runs: per-epoch counters and the time of the next re-plan
  const adaptive = policy.kind === 'adaptive' ? policy : null;
  if (adaptive && !(adaptive.epochUs > 0)) throw new CacheInputError('epochUs must be > 0');
  const epoch = () => ({ ioUs: new Float64Array(n), cpuUs: new Float64Array(n), ops: new Float64Array(n), sent: new Map<string, number>() });
  let ep = epoch();
  let epochStart = 0;
  let nextReplan = adaptive ? adaptive.epochUs : Infinity;
  let elapsed = 0; // job time before the current phase
  const replan = (now: number) => {
    const seconds = (now - epochStart) / 1e6;
    const metrics: EpochMetrics = {
      vms: trace.vms.map((vm, i) => ({
        name: vm.name, app: vm.app,
        ioTimeNs: ep.ioUs[i]! * 1000, cpuTimeNs: ep.cpuUs[i]! * 1000,
        iops: ep.ops[i]! / seconds, bandwidth: (ep.ops[i]! * trace.blockBytes) / seconds,
      })),
      flows: [...ep.sent].map(([k, bytes]) => {
        const [a, b] = k.split('>').map(Number);
        return { from: trace.vms[a!]!.name, to: trace.vms[b!]!.name, bytesPerSec: bytes / seconds };
      }),
    };
    toUnits(adaptive!.replan(metrics), p.cacheBlocks).forEach((size, i) => caches[i]!.resize(size));
    ep = epoch();
    epochStart = now;
  };

  for (const phase of trace.phases) {
    const clock = new Array<number>(n).fill(0);
    const pos = new Array<number>(n).fill(0);
    const step = phase.accesses.map((a, v) => (a.length ? (phase.computeUs[v] ?? 0) / a.length : 0));
    for (let v = 0; v < n; v++) {
      if (phase.accesses[v]!.length === 0) clock[v] = phase.computeUs[v] ?? 0;
      perVm[v]!.computeUs += phase.computeUs[v] ?? 0;
    }
    for (;;) {
      let v = -1;
      for (let i = 0; i < n; i++) if (pos[i]! < phase.accesses[i]!.length && (v < 0 || clock[i]! < clock[v]!)) v = i;
      if (v < 0) break;
      if (adaptive && elapsed + clock[v]! >= nextReplan) {
        replan(elapsed + clock[v]!);
        while (nextReplan <= elapsed + clock[v]!) nextReplan += adaptive.epochUs;
      }
      const block = phase.accesses[v]![pos[v]!++]!;
      const hit = caches[v]!.touch(v * 2 ** 32 + block);
      const cost = hit ? p.hitUs : p.missUs;
      clock[v]! += cost + step[v]!;
      const s = perVm[v]!;
      s.ioUs += cost;
      s.accesses++;
      if (hit) s.hits++;
      if (adaptive) {
        ep.ioUs[v]! += cost;
        ep.cpuUs[v]! += step[v]!;
        ep.ops[v]! += 1;
        const to = phase.sendsTo?.[v];
        if (to?.length) for (const r of to) ep.sent.set(`${v}>${r}`, (ep.sent.get(`${v}>${r}`) ?? 0) + trace.blockBytes / to.length);
      }
    }
    const t = Math.max(0, ...clock.filter((_, i) => trace.critical?.[i] ?? true));
    phaseUs.push(t);
    elapsed += t;
  }
  const hits = perVm.reduce((a, s) => a + s.hits, 0);
  const accesses = perVm.reduce((a, s) => a + s.accesses, 0);
  return { jctUs: phaseUs.reduce((a, b) => a + b, 0), phaseUs, hits, accesses, perVm };
}

/** What the monitor would have measured during a simulated run (input to Algorithm 1). */
export function metricsOf(trace: Trace, r: SimResult): { vms: import('./model.js').VmMetrics[]; flows: import('./model.js').Flow[] } {
  const seconds = r.jctUs / 1e6;
  return {
    vms: trace.vms.map((vm, i) => {
      const s = r.perVm[i]!;
      return {
        name: vm.name,
        app: vm.app,
        ioTimeNs: s.ioUs * 1000,
        cpuTimeNs: s.computeUs * 1000,
        iops: s.accesses / seconds,
        bandwidth: (s.accesses * trace.blockBytes) / seconds,
      };
    }),
    flows: trace.flows.map((f) => ({ from: f.from, to: f.to, bytesPerSec: f.bytes / seconds })),
  };
}
