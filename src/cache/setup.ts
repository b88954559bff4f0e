// Wiring a LoopConfig into a running loop: monitor (QMP + nftables), planner and actuators.

import { appendFileSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { openCasActuator, cgroupActuator, qemuThrottleActuator } from './actuators.js';
import { deviceNumber } from './cgroup.js';
import { constraintsFor, type LoopConfig } from './config.js';
import { CacheInputError } from './errors.js';
import { LibvirtVms, libvirtBlkioWeightActuator, libvirtThrottleActuator } from './libvirt.js';
import { CacheLoop, type Actuator, type Decision } from './loop.js';
import { Monitor } from './monitor.js';
import { NftPairCounters } from './netcounters.js';

export interface Session {
  loop: CacheLoop;
  monitor: Monitor;
  close(): Promise<void>;
}

/** MAJ:MIN of a device given as a path or as MAJ:MIN (sysfs first: it needs no stat decoding). */
export function resolveDevice(dev: string): string {
  if (/^\d+:\d+$/.test(dev)) return dev;
  try {
    return readFileSync(`/sys/class/block/${basename(dev)}/dev`, 'utf8').trim();
  } catch {
    return deviceNumber(dev);
  }
}

export async function startSession(cfg: LoopConfig, o: { dryRun?: boolean; log?: (d: Decision) => void } = {}): Promise<Session> {
  const addresses: Record<string, string> = {};
  for (const vm of cfg.vms) if (vm.address) addresses[vm.name] = vm.address;
  const net = Object.keys(addresses).length >= 2 ? new NftPairCounters(addresses, cfg.network ?? {}) : undefined;
  // VMs given by libvirt domain are monitored and actuated through libvirtd, never over QMP
  const qmpVms = cfg.vms.filter((v) => v.qmp);
  const domainVms = cfg.vms.filter((v) => v.domain).map((v) => ({ name: v.name, domain: v.domain!, ...(v.disks ? { disks: v.disks } : {}) }));
  const libvirt = domainVms.length ? new LibvirtVms(cfg.libvirt?.uri ?? 'qemu:///system', cfg.libvirt?.socketPath) : undefined;
  const monitor = new Monitor(cfg.vms, net, libvirt);
  try {
    await monitor.start();
    const actuators: Actuator[] = [];
    const a = cfg.actuators ?? {};
    if ((a.cgroupWeight || a.cgroupCaps) && qmpVms.length) {
      if (!cfg.device) throw new CacheInputError('cgroup actuators need "device"');
      const vms = qmpVms.map((v) => {
        if (!v.cgroup) throw new CacheInputError(`VM ${v.name} has no "cgroup"`);
        return { name: v.name, cgroup: v.cgroup };
      });
      actuators.push(cgroupActuator({ vms, dev: resolveDevice(cfg.device), weights: !!a.cgroupWeight, caps: !!a.cgroupCaps, capacityIops: cfg.capacityIops }));
    }
    if (a.cgroupCaps && domainVms.length) {
      throw new CacheInputError(`VM ${domainVms[0]!.name}: IOPS caps on a libvirt domain go through "qemuThrottle" (virsh blkdeviotune), not "cgroupCaps"`);
    }
    if (a.cgroupWeight && libvirt) actuators.push(libvirtBlkioWeightActuator({ vms: domainVms, libvirt }));
    if (a.qemuThrottle && qmpVms.length) {
      const vms = qmpVms.map((v) => {
        if (!v.disks?.length) throw new CacheInputError(`VM ${v.name}: QEMU throttling needs "disks"`);
        return { name: v.name, disks: v.disks };
      });
      actuators.push(qemuThrottleActuator({ vms, client: (n) => monitor.client(n), capacityIops: cfg.capacityIops ?? 0 }));
    }
    if (a.qemuThrottle && libvirt) actuators.push(libvirtThrottleActuator({ vms: domainVms, libvirt, capacityIops: cfg.capacityIops ?? 0 }));
    if (a.opencas) {
      const cores = cfg.vms.map((v) => {
        if (v.casCoreId === undefined || !v.casCoreDevice) throw new CacheInputError(`VM ${v.name}: Open CAS needs casCoreId and casCoreDevice`);
        return { vm: v.name, coreId: v.casCoreId, coreDevice: v.casCoreDevice };
      });
      actuators.push(openCasActuator({ ...a.opencas, cores }));
    }
    const names = cfg.vms.map((v) => v.name);
    const min: Record<string, number> = {};
    const max: Record<string, number> = {};
    for (const v of cfg.vms) {
      if (v.min !== undefined) min[v.name] = v.min;
      if (v.max !== undefined) max[v.name] = v.max;
    }
    const log = (d: Decision) => {
      if (cfg.logFile) appendFileSync(cfg.logFile, `${JSON.stringify(d)}\n`);
      o.log?.(d);
    };
    const loop = new CacheLoop({
      vms: cfg.vms,
      sample: () => monitor.sample(),
      actuators,
      priorities: cfg.priorities,
      plan: { solver: cfg.solver, constraints: constraintsFor(names, min, max, cfg.units) },
      hysteresis: cfg.hysteresis,
      dryRun: o.dryRun,
      log,
    });
    return { loop, monitor, close: () => monitor.stop() };
  } catch (e) {
    await monitor.stop();
    throw e;
  }
}
