// Algorithm 1 of AC-SSD (IO dependency based requirement model), exactly: per VM the IO sensitivity
// s = IOTime/CPUTime, the random-access intensity r = TotalIOPS/TotalBandwidth and the IO dependency
// d = Σ(network throughput to peers of the same application)/TotalBandwidth, each normalized to sum 1
// over all VMs; match degree m = (ws−s)² + (wi−r)² + (ws−d)² + (wi−d)²; fitness = 4·nVM − Σm.
//
// Edge cases (docs/cache.md, "Model"):
// - x/0 with x = 0 is 0 (an idle VM has no sensitivity); x/0 with x > 0 is +∞ (zero CPU time with IO
//   time, zero bandwidth with traffic). When a feature has +∞ entries, normalization gives them equal
//   shares and every finite entry 0 — the limit of the ratios as the denominators go to 0 together.
// - A feature that is 0 for every VM (an application with no traffic, no IO at all) normalizes to the
//   uniform 1/n: no information, equal shares, and the sums stay 1.
// - One VM: s = r = d = 1, weights 1, fitness 4.
// - Application priorities (an extension, default 1): each VM's raw features are multiplied by its
//   application's priority before normalization, and its match degree is charged ×priority in the
//   fitness. With equal priorities both cancel and the model is the paper's.

import { CacheInputError } from './errors.js';

/** What the monitor measured for one VM over one interval (any consistent time base). */
export interface VmMetrics {
  name: string;
  app: string;
  /** summed request latency of the VM's disks (query-blockstats *_total_time_ns deltas) */
  ioTimeNs: number;
  /** CPU time of the VM's vCPU threads */
  cpuTimeNs: number;
  /** disk operations per second (reads + writes) */
  iops: number;
  /** disk bytes per second (read + written) */
  bandwidth: number;
}

/** Bytes per second sent from one VM to another (direction is summed when pairing). */
export interface Flow {
  from: string;
  to: string;
  bytesPerSec: number;
}

export interface ModelInput {
  vms: VmMetrics[];
  flows: Flow[];
  /** application → priority (> 0); missing applications have priority 1 */
  priorities?: Record<string, number>;
}

/** Per-VM normalized features plus the application priority that weighs its match degree. */
export interface Features {
  names: string[];
  apps: string[];
  s: number[];
  r: number[];
  d: number[];
  priority: number[];
}

export interface Weights {
  /** cache-space weights, sum 1 */
  ws: number[];
  /** IOPS-capacity weights, sum 1 */
  wi: number[];
}

export const MAX_VMS = 100_000;

/** x / y with the model's conventions for y = 0 (see the header). */
export function ratio(x: number, y: number): number {
  if (y > 0) return x / y;
  return x > 0 ? Infinity : 0;
}

/** Normalize to sum 1: +∞ entries share 1 equally; all-zero → uniform. */
export function normalize(values: readonly number[]): number[] {
  const n = values.length;
  const inf = values.filter((v) => v === Infinity).length;
  if (inf > 0) return values.map((v) => (v === Infinity ? 1 / inf : 0));
  const total = values.reduce((a, b) => a + b, 0);
  if (total === 0) return values.map(() => 1 / n);
  return values.map((v) => v / total);
}

function checkNumber(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new CacheInputError(`${what} must be a finite number ≥ 0, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Validate the input and compute the normalized features of Algorithm 1. */
export function computeFeatures(input: ModelInput): Features {
  const { vms, flows } = input;
  if (!Array.isArray(vms) || vms.length === 0) throw new CacheInputError('no VMs in the metrics');
  if (vms.length > MAX_VMS) throw new CacheInputError(`too many VMs (${vms.length} > ${MAX_VMS})`);
  const index = new Map<string, number>();
  vms.forEach((vm, i) => {
    if (typeof vm.name !== 'string' || vm.name === '') throw new CacheInputError(`VM #${i} has no name`);
    if (typeof vm.app !== 'string' || vm.app === '') throw new CacheInputError(`VM ${vm.name} has no application`);
    if (index.has(vm.name)) throw new CacheInputError(`duplicate VM name '${vm.name}'`);
    index.set(vm.name, i);
    for (const k of ['ioTimeNs', 'cpuTimeNs', 'iops', 'bandwidth'] as const) checkNumber(`${vm.name}.${k}`, vm[k]);
  });
  const priority = vms.map((vm) => {
    const p = input.priorities?.[vm.app] ?? 1;
    if (typeof p !== 'number' || !Number.isFinite(p) || p <= 0) {
      throw new CacheInputError(`priority of application '${vm.app}' must be > 0, got ${JSON.stringify(p)}`);
    }
    return p;
  });

  // Throughput between c and each peer of its application, both directions summed.
  const traffic = new Array<number>(vms.length).fill(0);
  for (const f of flows ?? []) {
    const a = index.get(f.from);
    const b = index.get(f.to);
    if (a === undefined || b === undefined) throw new CacheInputError(`flow ${f.from} → ${f.to} names an unknown VM`);
    checkNumber(`flow ${f.from} → ${f.to}`, f.bytesPerSec);
    if (a === b || vms[a]!.app !== vms[b]!.app) continue; // only peers inside the application count
    traffic[a]! += f.bytesPerSec;
    traffic[b]! += f.bytesPerSec;
  }

  const s = normalize(vms.map((vm, i) => priority[i]! * ratio(vm.ioTimeNs, vm.cpuTimeNs)));
  const r = normalize(vms.map((vm, i) => priority[i]! * ratio(vm.iops, vm.bandwidth)));
  const d = normalize(vms.map((vm, i) => priority[i]! * ratio(traffic[i]!, vm.bandwidth)));
  return { names: vms.map((v) => v.name), apps: vms.map((v) => v.app), s, r, d, priority };
}

/** Match degree of one VM. */
export function matchDegree(ws: number, wi: number, s: number, r: number, d: number): number {
  return (ws - s) ** 2 + (wi - r) ** 2 + (ws - d) ** 2 + (wi - d) ** 2;
}

/** Fitness of a genome: 4·nVM − Σm (Σ priority·(4 − m) with priorities). */
export function fitness(f: Features, w: Weights): number {
  let total = 0;
  for (let i = 0; i < f.s.length; i++) {
    total += f.priority[i]! * (4 - matchDegree(w.ws[i]!, w.wi[i]!, f.s[i]!, f.r[i]!, f.d[i]!));
  }
  return total;
}

/** Best possible fitness (every m at its unconstrained minimum), for gap computations. */
export function idealFitness(f: Features): number {
  let total = 0;
  for (let i = 0; i < f.s.length; i++) {
    const p = f.priority[i]!;
    total += p * (4 - ((f.s[i]! - f.d[i]!) ** 2 + (f.r[i]! - f.d[i]!) ** 2) / 2);
  }
  return total;
}
