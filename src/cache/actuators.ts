// The loop's actuators, built from a LoopConfig: cgroup weights/caps, QEMU drive throttles, and the
// Open CAS IO class allocation (rendered always, loaded only where casadm runs).

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { QmpClient } from '../qmp/index.js';
import { detectCacheCapability, renderCasCommands, renderCasIoClasses, type CasPlan } from './cache-config.js';
import { CgroupIo, detectCgroup, scaleWeights, type CgroupHost } from './cgroup.js';
import { CacheInputError } from './errors.js';
import type { Actuator } from './loop.js';
import type { Plan } from './plan.js';
import { applyDriveIops, iopsCaps } from './qemu-throttle.js';

const indexOf = (plan: Plan, name: string): number => {
  const i = plan.features.names.indexOf(name);
  if (i < 0) throw new CacheInputError(`VM ${name} is not in the plan`);
  return i;
};

/** cgroup blkio/io: relative weights and/or IOPS caps (wi × capacity) per VM cgroup. */
export function cgroupActuator(o: {
  vms: { name: string; cgroup: string }[];
  dev: string;
  weights: boolean;
  caps: boolean;
  capacityIops?: number;
  host?: CgroupHost;
}): Actuator {
  const host = o.host ?? detectCgroup();
  const groups = o.vms.map((vm) => ({ name: vm.name, io: new CgroupIo(host, vm.cgroup, o.dev) }));
  if (o.caps && !(o.capacityIops && o.capacityIops > 0)) throw new CacheInputError('IOPS caps need capacityIops');
  return {
    name: `cgroup-${host.version}`,
    async apply(plan) {
      const wi = groups.map((g) => plan.weights.wi[indexOf(plan, g.name)]!);
      const max = groups[0]?.io.weightFile()?.max ?? 1000;
      const weights = scaleWeights(wi, max);
      const caps = o.caps ? iopsCaps(wi, o.capacityIops!) : [];
      const out: Record<string, unknown> = {};
      groups.forEach((g, k) => {
        out[g.name] = g.io.apply({ weight: o.weights ? weights[k] : undefined, iopsCap: o.caps ? caps[k] : undefined });
      });
      return out;
    },
  };
}

/** QEMU block_set_io_throttle per drive: the VM's wi × capacity, split over its throttled disks. */
export function qemuThrottleActuator(o: {
  vms: { name: string; disks: string[] }[];
  client: (vm: string) => QmpClient;
  capacityIops: number;
}): Actuator {
  if (!(o.capacityIops > 0)) throw new CacheInputError('QEMU throttling needs capacityIops');
  return {
    name: 'qemu-throttle',
    async apply(plan) {
      const out: Record<string, unknown> = {};
      for (const vm of o.vms) {
        const [cap] = iopsCaps([plan.weights.wi[indexOf(plan, vm.name)]!], o.capacityIops);
        const perDisk = Math.max(1, Math.round(cap! / Math.max(1, vm.disks.length)));
        for (const disk of vm.disks) out[`${vm.name}/${disk}`] = await applyDriveIops(o.client(vm.name), disk, perDisk);
      }
      return out;
    },
  };
}

/** Open CAS: write the IO class file; load it with casadm where Open CAS runs, else report why not. */
export function openCasActuator(o: Omit<CasPlan, 'cores'> & { cores: { vm: string; coreId: number; coreDevice: string }[] }): Actuator {
  return {
    name: 'opencas',
    async apply(plan) {
      const p: CasPlan = { ...o, cores: o.cores.map((c) => ({ ...c, ws: plan.weights.ws[indexOf(plan, c.vm)]! })) };
      const csv = renderCasIoClasses(p);
      writeFileSync(o.ioclassFile, csv);
      const cap = detectCacheCapability().opencas;
      if (!cap.ok) return { file: o.ioclassFile, loaded: false, why: cap.why };
      for (const cmd of renderCasCommands(p).reload) execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'pipe', timeout: 30_000 });
      return { file: o.ioclassFile, loaded: true };
    },
  };
}
