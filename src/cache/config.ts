// Input files of `livemr cache`: a metrics file (what `plan --metrics` reads) and a VM config (what
// the loop monitors and actuates). Both JSON, validated field by field; docs/cache.md has the schemas.

import { readFileSync, statSync } from 'node:fs';
import type { Constraints } from './constraints.js';
import { CacheInputError } from './errors.js';
import type { Flow, ModelInput, VmMetrics } from './model.js';
import { SOLVERS, type SolverName } from './plan.js';

export const MAX_CONFIG_BYTES = 16 << 20;

export interface VmEntry {
  name: string;
  app: string;
  /** QMP socket; exactly one of qmp / domain */
  qmp?: string;
  /** libvirt domain name: monitored and actuated through libvirtd (see LoopConfig.libvirt) */
  domain?: string;
  /** guest IP on the host bridge, for the nftables pair counters */
  address?: string;
  /** qdev ids (target devs such as "vdb" for a domain) of the disks to count and throttle (default: all) */
  disks?: string[];
  /** the VM's cgroup relative to the block controller root */
  cgroup?: string;
  /** Open CAS core id of the VM's disk */
  casCoreId?: number;
  casCoreDevice?: string;
  min?: number;
  max?: number;
}

export interface LoopConfig {
  vms: VmEntry[];
  /** the libvirt connection of the VMs given by domain (uri default qemu:///system) */
  libvirt?: { uri: string; socketPath?: string };
  priorities?: Record<string, number>;
  units?: number;
  solver?: SolverName;
  /** apply when any weight moved more than this (default 0.05) */
  hysteresis?: number;
  intervalSeconds?: number;
  /** measured IOPS capacity of the disk behind the VMs (caps = wi × capacity) */
  capacityIops?: number;
  /** the host block device (path or MAJ:MIN) that cgroup settings address */
  device?: string;
  actuators?: {
    cgroupWeight?: boolean;
    cgroupCaps?: boolean;
    qemuThrottle?: boolean;
    opencas?: { cacheId: number; cacheDevice: string; ioclassFile: string };
  };
  network?: { netns?: string; table?: string };
  /** append every decision as one JSON line here */
  logFile?: string;
}

export function readJsonFile(path: string): unknown {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new CacheInputError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > MAX_CONFIG_BYTES) throw new CacheInputError(`${path} is larger than ${MAX_CONFIG_BYTES} bytes`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CacheInputError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, k: string, where: string, optional = false): string | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v === '') throw new CacheInputError(`${where}.${k} must be a non-empty string`);
  return v;
}

function num(o: Record<string, unknown>, k: string, where: string, optional = false): number | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new CacheInputError(`${where}.${k} must be a number ≥ 0`);
  return v;
}

function priorities(v: unknown): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v)) throw new CacheInputError('priorities must be an object {app: number}');
  const out: Record<string, number> = {};
  for (const [k, p] of Object.entries(v)) {
    if (typeof p !== 'number' || !(p > 0) || !Number.isFinite(p)) throw new CacheInputError(`priority of '${k}' must be > 0`);
    out[k] = p;
  }
  return out;
}

export interface MetricsFile extends ModelInput {
  constraints?: Constraints;
}

/** A metrics file: {vms: [VmMetrics], flows?: [Flow], priorities?, min?, max?, units?}. */
export function parseMetrics(doc: unknown): MetricsFile {
  if (!isObj(doc) || !Array.isArray(doc.vms)) throw new CacheInputError('metrics: expected {"vms": [...]}');
  const min: Record<string, number> = {};
  const max: Record<string, number> = {};
  const vms: VmMetrics[] = doc.vms.map((v, i) => {
    const w = `vms[${i}]`;
    if (!isObj(v)) throw new CacheInputError(`${w} must be an object`);
    const m = num(v, 'min', w, true);
    const x = num(v, 'max', w, true);
    const name = str(v, 'name', w)!;
    if (m !== undefined) min[name] = m;
    if (x !== undefined) max[name] = x;
    return {
      name,
      app: str(v, 'app', w)!,
      ioTimeNs: num(v, 'ioTimeNs', w)!,
      cpuTimeNs: num(v, 'cpuTimeNs', w)!,
      iops: num(v, 'iops', w)!,
      bandwidth: num(v, 'bandwidth', w)!,
    };
  });
  const flowsDoc = doc.flows ?? [];
  if (!Array.isArray(flowsDoc)) throw new CacheInputError('metrics: flows must be an array');
  const flows: Flow[] = flowsDoc.map((f, i) => {
    const w = `flows[${i}]`;
    if (!isObj(f)) throw new CacheInputError(`${w} must be an object`);
    return { from: str(f, 'from', w)!, to: str(f, 'to', w)!, bytesPerSec: num(f, 'bytesPerSec', w)! };
  });
  const units = num(doc, 'units', 'metrics', true);
  return {
    vms,
    flows,
    priorities: priorities(doc.priorities),
    constraints: constraintsFor(vms.map((v) => v.name), min, max, units),
  };
}

/** Per-VM min/max maps + units → solver constraints (undefined when there are none). */
export function constraintsFor(names: string[], min: Record<string, number>, max: Record<string, number>, units?: number): Constraints | undefined {
  const c: Constraints = {};
  if (Object.keys(min).length) c.min = names.map((n) => min[n] ?? 0);
  if (Object.keys(max).length) c.max = names.map((n) => max[n] ?? 1);
  if (units !== undefined) c.units = units;
  return Object.keys(c).length ? c : undefined;
}

export function parseLoopConfig(doc: unknown): LoopConfig {
  if (!isObj(doc) || !Array.isArray(doc.vms) || doc.vms.length === 0) throw new CacheInputError('config: expected {"vms": [...]} with at least one VM');
  const vms: VmEntry[] = doc.vms.map((v, i) => {
    const w = `vms[${i}]`;
    if (!isObj(v)) throw new CacheInputError(`${w} must be an object`);
    const disks = v.disks;
    if (disks !== undefined && (!Array.isArray(disks) || !disks.every((d) => typeof d === 'string' && d !== ''))) {
      throw new CacheInputError(`${w}.disks must be a list of qdev ids`);
    }
    const qmp = str(v, 'qmp', w, true);
    const domain = str(v, 'domain', w, true);
    if (!qmp === !domain) throw new CacheInputError(`${w}: give exactly one of qmp / domain`);
    const e: VmEntry = { name: str(v, 'name', w)!, app: str(v, 'app', w)!, ...(qmp ? { qmp } : { domain }) };
    if (disks) e.disks = disks as string[];
    const address = str(v, 'address', w, true);
    if (address) e.address = address;
    const cgroup = str(v, 'cgroup', w, true);
    if (cgroup) e.cgroup = cgroup;
    const core = num(v, 'casCoreId', w, true);
    if (core !== undefined) e.casCoreId = core;
    const coreDev = str(v, 'casCoreDevice', w, true);
    if (coreDev) e.casCoreDevice = coreDev;
    const mn = num(v, 'min', w, true);
    const mx = num(v, 'max', w, true);
    if (mn !== undefined) e.min = mn;
    if (mx !== undefined) e.max = mx;
    return e;
  });
  const cfg: LoopConfig = { vms };
  if (doc.libvirt !== undefined) {
    if (!isObj(doc.libvirt)) throw new CacheInputError('config.libvirt must be an object');
    const socketPath = str(doc.libvirt, 'socketPath', 'libvirt', true);
    cfg.libvirt = { uri: str(doc.libvirt, 'uri', 'libvirt', true) ?? 'qemu:///system', ...(socketPath ? { socketPath } : {}) };
  }
  cfg.priorities = priorities(doc.priorities);
  cfg.units = num(doc, 'units', 'config', true);
  if (doc.solver !== undefined) {
    if (!SOLVERS.includes(doc.solver as SolverName)) throw new CacheInputError(`config.solver must be one of ${SOLVERS.join(', ')}`);
    cfg.solver = doc.solver as SolverName;
  }
  cfg.hysteresis = num(doc, 'hysteresis', 'config', true);
  cfg.intervalSeconds = num(doc, 'intervalSeconds', 'config', true);
  cfg.capacityIops = num(doc, 'capacityIops', 'config', true);
  cfg.device = str(doc, 'device', 'config', true);
  cfg.logFile = str(doc, 'logFile', 'config', true);
  if (doc.actuators !== undefined) {
    if (!isObj(doc.actuators)) throw new CacheInputError('config.actuators must be an object');
    const a = doc.actuators;
    const bool = (k: string) => {
      if (a[k] !== undefined && typeof a[k] !== 'boolean') throw new CacheInputError(`config.actuators.${k} must be true or false`);
      return a[k] as boolean | undefined;
    };
    cfg.actuators = { cgroupWeight: bool('cgroupWeight'), cgroupCaps: bool('cgroupCaps'), qemuThrottle: bool('qemuThrottle') };
    if (a.opencas !== undefined) {
      if (!isObj(a.opencas)) throw new CacheInputError('config.actuators.opencas must be an object');
      const o = a.opencas;
      cfg.actuators.opencas = {
        cacheId: num(o, 'cacheId', 'opencas')!,
        cacheDevice: str(o, 'cacheDevice', 'opencas')!,
        ioclassFile: str(o, 'ioclassFile', 'opencas')!,
      };
    }
  }
  if (doc.network !== undefined) {
    if (!isObj(doc.network)) throw new CacheInputError('config.network must be an object');
    cfg.network = { netns: str(doc.network, 'netns', 'network', true), table: str(doc.network, 'table', 'network', true) };
  }
  return cfg;
}
