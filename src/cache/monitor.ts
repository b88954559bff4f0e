// Monitor: cumulative counters per VM, sampled each interval; deltas between two samples are the
// metrics Algorithm 1 consumes.
// - disks: query-blockstats per guest device — rd/wr_operations (IOPS), rd/wr_bytes (bandwidth),
//   rd/wr_total_time_ns (IO time: summed request latency as QEMU measures it);
// - CPU: query-cpus-fast gives each vCPU's host thread id; /proc/<pid>/task/<tid>/schedstat field 1 is
//   the time that thread ran (ns); the QEMU pid is the thread's Tgid (/proc/<tid>/status);
// - network: bytes per ordered pair of guests from nftables counters (./netcounters.ts).
// A libvirt VM (`domain` instead of `qmp`) is never dialled over QMP: its block and vCPU counters come
// from libvirt's bulk stats (./libvirt.ts).

import { readFileSync } from 'node:fs';
import { QmpClient, queryBlockstats, queryCpusFast, type BlockStats } from '../qmp/index.js';
import { CacheInputError } from './errors.js';
import type { LibvirtVms } from './libvirt.js';
import type { Flow, VmMetrics } from './model.js';
import type { NftPairCounters, PairBytes } from './netcounters.js';

export interface MonitoredVm {
  name: string;
  app: string;
  /** QMP socket (exactly one of qmp / domain) */
  qmp?: string;
  /** libvirt domain name: counters through libvirt, never its monitor */
  domain?: string;
  /** qdev ids (or QOM paths; target devs such as "vdb" for a domain) of the disks to count; all disks if absent */
  disks?: string[];
}

export interface DiskCounters {
  ops: number;
  bytes: number;
  timeNs: number;
}

export interface VmSample {
  disk: DiskCounters;
  cpuNs: number;
}

export interface Sample {
  /** monotonic milliseconds */
  atMs: number;
  vms: Record<string, VmSample>;
  pairs: PairBytes[];
}

/**
 * Sum the counters of the selected devices of one query-blockstats reply. The request latency totals
 * (rd/wr_total_time_ns) are not in the typed BlockStats, so they are read from its raw stats.
 */
export function sumBlockstats(reply: BlockStats[], disks?: string[]): DiskCounters {
  const sum: DiskCounters = { ops: 0, bytes: 0, timeNs: 0 };
  for (const e of reply) {
    const qdev = e.qdev ?? '';
    if (disks && !disks.some((d) => d === qdev || (e.device !== '' && d === e.device) || qdev.startsWith(`/machine/peripheral/${d}/`))) continue;
    const raw = (e.raw.stats ?? {}) as Record<string, unknown>;
    const n = (k: string) => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : 0);
    sum.ops += e.rdOperations + e.wrOperations;
    sum.bytes += e.rdBytes + e.wrBytes;
    sum.timeNs += n('rd_total_time_ns') + n('wr_total_time_ns');
  }
  return sum;
}

/** Run time (ns) of one thread: field 1 of /proc/<pid>/task/<tid>/schedstat. */
export function threadCpuNs(pid: number, tid: number): number {
  const text = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
  const v = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(v)) throw new CacheInputError(`unreadable schedstat for thread ${tid}`);
  return v;
}

/** The process a thread belongs to (Tgid in /proc/<tid>/status). */
export function threadGroupOf(tid: number): number {
  const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'utf8'));
  if (!m) throw new CacheInputError(`no Tgid for thread ${tid}`);
  return Number(m[1]);
}

export class Monitor {
  private readonly clients = new Map<string, QmpClient>();

  constructor(
    readonly vms: MonitoredVm[],
    private readonly net?: NftPairCounters,
    private readonly libvirt?: LibvirtVms,
  ) {
    const names = new Set<string>();
    for (const vm of vms) {
      if (names.has(vm.name)) throw new CacheInputError(`duplicate VM name '${vm.name}'`);
      if (!vm.qmp === !vm.domain) throw new CacheInputError(`VM ${vm.name}: give exactly one of qmp / domain`);
      if (vm.domain && !libvirt) throw new CacheInputError(`VM ${vm.name}: a libvirt domain needs a libvirt connection`);
      names.add(vm.name);
    }
  }

  async start(): Promise<void> {
    if (this.vms.some((vm) => vm.domain)) await this.libvirt!.start();
    for (const vm of this.vms) {
      if (vm.qmp && !this.clients.has(vm.name)) this.clients.set(vm.name, await QmpClient.connect(vm.qmp));
    }
    await this.net?.install();
  }

  client(name: string): QmpClient {
    const c = this.clients.get(name);
    if (!c) throw new CacheInputError(`VM ${name} is not connected`);
    return c;
  }

  async sample(): Promise<Sample> {
    const vms: Record<string, VmSample> = {};
    await Promise.all(
      this.vms.map(async (vm) => {
        if (vm.domain) {
          vms[vm.name] = await this.libvirt!.sample(vm.domain, vm.disks);
          return;
        }
        const c = this.client(vm.name);
        const [stats, cpus] = await Promise.all([queryBlockstats(c), queryCpusFast(c)]);
        let cpuNs = 0;
        for (const cpu of cpus) cpuNs += threadCpuNs(threadGroupOf(cpu.threadId), cpu.threadId);
        vms[vm.name] = { disk: sumBlockstats(stats, vm.disks), cpuNs };
      }),
    );
    const pairs = this.net ? await this.net.read() : [];
    return { atMs: performance.now(), vms, pairs };
  }

  async stop(): Promise<void> {
    await this.net?.remove();
    for (const c of this.clients.values()) await c.close();
    this.clients.clear();
    await this.libvirt?.stop();
  }
}

/** Metrics over the interval between two samples (counters that went backwards count as 0). */
export function deltaMetrics(vms: { name: string; app: string }[], a: Sample, b: Sample): { vms: VmMetrics[]; flows: Flow[] } {
  const seconds = Math.max(1e-3, (b.atMs - a.atMs) / 1000);
  const d = (x: number, y: number) => Math.max(0, y - x);
  const metrics = vms.map((vm) => {
    const p = a.vms[vm.name];
    const q = b.vms[vm.name];
    if (!p || !q) throw new CacheInputError(`no sample for VM ${vm.name}`);
    return {
      name: vm.name,
      app: vm.app,
      ioTimeNs: d(p.disk.timeNs, q.disk.timeNs),
      cpuTimeNs: d(p.cpuNs, q.cpuNs),
      iops: d(p.disk.ops, q.disk.ops) / seconds,
      bandwidth: d(p.disk.bytes, q.disk.bytes) / seconds,
    };
  });
  const before = new Map(a.pairs.map((x) => [`${x.from}>${x.to}`, x.bytes]));
  const known = new Set(vms.map((v) => v.name));
  const flows = b.pairs
    .filter((x) => known.has(x.from) && known.has(x.to))
    .map((x) => ({ from: x.from, to: x.to, bytesPerSec: d(before.get(`${x.from}>${x.to}`) ?? 0, x.bytes) / seconds }));
  return { vms: metrics, flows };
}
