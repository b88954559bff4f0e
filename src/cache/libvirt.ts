// The cache loop on libvirt-managed VMs (docs/cache.md#libvirt, docs/libvirt.md): libvirtd is the only
// client of such a VM's monitor, so the loop never dials QMP for them. Counters come from
// virConnectGetAllDomainStats (block and vCPU groups); the IOPS caps go through
// virDomainSetBlockIoTune (`virsh blkdeviotune`) and the weights through virDomainSetBlkioParameters
// (`virsh blkiotune --weight`), each read back from libvirt after it is set.
import {
  LibvirtSession, StatsTypes, typedNumber, typedString,
  type DomainRef, type LibvirtClient, type TypedParam,
} from '../libvirt/index.js';
import { scaleWeights } from './cgroup.js';
import { CacheInputError } from './errors.js';
import type { Actuator } from './loop.js';
import type { DiskCounters } from './monitor.js';
import type { Plan } from './plan.js';
import { iopsCaps } from './qemu-throttle.js';

/** libvirt's blkio weight range (virDomainSetBlkioParameters "weight"). */
export const LIBVIRT_BLKIO_WEIGHT = { min: 100, max: 1000 } as const;

/** Sums the block counters of the selected target devs ("vdb"; all when absent) of one stats record. */
export function sumDomainBlockStats(params: readonly TypedParam[], disks?: readonly string[]): DiskCounters {
  const sum: DiskCounters = { ops: 0, bytes: 0, timeNs: 0 };
  const n = (k: string) => typedNumber(params, k) ?? 0;
  const seen = new Set<string>();
  for (let i = 0; i < n('block.count'); i++) {
    const name = typedString(params, `block.${i}.name`);
    // with VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING a disk's backing layers follow its top under the
    // same name: count the first only. (backingIndex cannot tell: it is the layer's `index`, the top's too.)
    if (name === undefined || seen.has(name)) continue;
    seen.add(name);
    if (disks && !disks.includes(name)) continue;
    const p = `block.${i}.`;
    sum.ops += n(`${p}rd.reqs`) + n(`${p}wr.reqs`);
    sum.bytes += n(`${p}rd.bytes`) + n(`${p}wr.bytes`);
    sum.timeNs += n(`${p}rd.times`) + n(`${p}wr.times`);
  }
  return sum;
}

/** Run time of the domain's vCPU threads (ns): the sum of vcpu.N.time, as the QMP monitor sums schedstat. */
export function vcpuTimeNs(params: readonly TypedParam[]): number {
  let t = 0;
  const max = typedNumber(params, 'vcpu.maximum') ?? typedNumber(params, 'vcpu.current') ?? 0;
  for (let i = 0; i < max; i++) t += typedNumber(params, `vcpu.${i}.time`) ?? 0;
  return t;
}

/** One libvirt connection for the loop (reconnects across libvirtd restarts; no events). */
export class LibvirtVms {
  private readonly session: LibvirtSession;
  private started?: Promise<LibvirtClient>;

  constructor(readonly uri: string, socketPath?: string) {
    this.session = new LibvirtSession({ uri, events: [], ...(socketPath ? { socketPath } : {}) });
  }

  async start(): Promise<void> {
    this.started ??= this.session.start();
    await this.started;
  }

  /** The connection and the domain's current ref (looked up each time: a restarted domain has a new id). */
  async target(domain: string): Promise<{ client: LibvirtClient; dom: DomainRef }> {
    await this.start();
    const client = await this.session.client();
    return { client, dom: await client.lookupDomain(domain) };
  }

  /** Block and vCPU counters of one domain. */
  async sample(domain: string, disks?: readonly string[]): Promise<{ disk: DiskCounters; cpuNs: number }> {
    const { client, dom } = await this.target(domain);
    const [rec] = await client.allDomainStats([dom], StatsTypes.BLOCK | StatsTypes.VCPU);
    if (!rec) throw new CacheInputError(`libvirt returned no statistics for domain ${domain}`);
    return { disk: sumDomainBlockStats(rec.params, disks), cpuNs: vcpuTimeNs(rec.params) };
  }

  async stop(): Promise<void> {
    await this.session.stop();
  }
}

const indexOf = (plan: Plan, name: string): number => {
  const i = plan.features.names.indexOf(name);
  if (i < 0) throw new CacheInputError(`VM ${name} is not in the plan`);
  return i;
};

export interface LibvirtActuatedVm {
  name: string;
  domain: string;
  /** target devs to throttle ("vdb") */
  disks?: string[];
}

/** virDomainSetBlockIoTune total_iops_sec per disk: the VM's wi × capacity split over its disks; read back. */
export function libvirtThrottleActuator(o: { vms: LibvirtActuatedVm[]; libvirt: LibvirtVms; capacityIops: number }): Actuator {
  if (!(o.capacityIops > 0)) throw new CacheInputError('libvirt throttling needs capacityIops');
  for (const vm of o.vms) if (!vm.disks?.length) throw new CacheInputError(`VM ${vm.name}: throttling needs "disks" (target devs, e.g. "vdb")`);
  return {
    name: 'libvirt-blkdeviotune',
    async apply(plan) {
      const out: Record<string, unknown> = {};
      for (const vm of o.vms) {
        const [cap] = iopsCaps([plan.weights.wi[indexOf(plan, vm.name)]!], o.capacityIops);
        const perDisk = Math.max(1, Math.round(cap! / vm.disks!.length));
        const { client, dom } = await o.libvirt.target(vm.domain);
        for (const disk of vm.disks!) {
          await client.setBlockIoTune(dom, disk, [{ field: 'total_iops_sec', type: 'ullong', value: BigInt(perDisk) }]);
          const back = await client.blockIoTune(dom, disk);
          out[`${vm.name}/${disk}`] = { iops: typedNumber(back, 'total_iops_sec') ?? null };
        }
      }
      return out;
    },
  };
}

/** virDomainSetBlkioParameters weight per domain: the weights scaled so the largest gets 1000; read back. */
export function libvirtBlkioWeightActuator(o: { vms: LibvirtActuatedVm[]; libvirt: LibvirtVms }): Actuator {
  return {
    name: 'libvirt-blkiotune',
    async apply(plan) {
      const wi = o.vms.map((vm) => plan.weights.wi[indexOf(plan, vm.name)]!);
      const weights = scaleWeights(wi, LIBVIRT_BLKIO_WEIGHT.max).map((w) => Math.max(LIBVIRT_BLKIO_WEIGHT.min, w));
      const out: Record<string, unknown> = {};
      for (const [k, vm] of o.vms.entries()) {
        const { client, dom } = await o.libvirt.target(vm.domain);
        await client.setBlkioParameters(dom, [{ field: 'weight', type: 'uint', value: weights[k]! }]);
        out[vm.name] = { weight: typedNumber(await client.blkioParameters(dom), 'weight') ?? null };
      }
      return out;
    },
  };
}
