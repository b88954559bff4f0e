// Cache space weights → configurations of real partitionable SSD caches. No cgroup knob exists for
// cache space, so LiveMR renders what an administrator (or the loop, where the tool exists) applies:
// - Open CAS: one cache device, each VM's disk a core; one IO class per core (`core_id:eq:N&done`)
//   whose Allocation (0.00–1.00, two decimals) is the VM's ws, reloaded live with
//   `casadm --io-class --load-config`. Shares are rounded in whole hundredths that sum to 1.00.
// - lvmcache (dm-cache): one cache pool per origin LV, sized ws × the SSD's extents; a size change needs
//   `lvconvert --splitcache` and a new pool, so the loop only renders the plan.
// Both are golden-file tested (test/fixtures/cache/).

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolveBounds } from './constraints.js';
import { CacheInputError } from './errors.js';
import { roundUnits } from './ga.js';

const NAME_RE = /^[A-Za-z0-9_.+-]{1,64}$/;
const DEV_RE = /^\/dev\/[A-Za-z0-9_./-]{1,200}$/;

/** Split `units` whole units by weights (largest remainder), exactly summing to `units`. */
export function toUnits(ws: readonly number[], units: number): number[] {
  const b = resolveBounds(ws.length, { units });
  const total = ws.reduce((a, x) => a + x, 0);
  if (!(total > 0)) throw new CacheInputError('cache weights sum to 0');
  return roundUnits(ws.map((x) => x / total), b).map((x) => Math.round(x * units));
}

export interface CasCore {
  vm: string;
  /** Open CAS core id of the VM's disk (casadm --add-core ... --core-id) */
  coreId: number;
  /** the VM's disk (core device), for the setup commands */
  coreDevice: string;
  ws: number;
}

export interface CasPlan {
  cacheId: number;
  cacheDevice: string;
  cores: CasCore[];
  /** where the IO class file is written on the host */
  ioclassFile: string;
}

function checkCas(p: CasPlan): void {
  if (!Number.isInteger(p.cacheId) || p.cacheId < 1 || p.cacheId > 16384) throw new CacheInputError('Open CAS cache id must be 1..16384');
  if (!DEV_RE.test(p.cacheDevice)) throw new CacheInputError(`bad cache device '${p.cacheDevice}'`);
  if (!/^\/[A-Za-z0-9_./-]{1,250}$/.test(p.ioclassFile)) throw new CacheInputError(`bad IO class file path '${p.ioclassFile}'`);
  const ids = new Set<number>();
  for (const c of p.cores) {
    if (!NAME_RE.test(c.vm)) throw new CacheInputError(`bad VM name '${c.vm}'`);
    if (!Number.isInteger(c.coreId) || c.coreId < 0 || c.coreId > 4095) throw new CacheInputError(`VM ${c.vm}: core id must be 0..4095`);
    if (ids.has(c.coreId)) throw new CacheInputError(`core id ${c.coreId} used twice`);
    ids.add(c.coreId);
    if (!DEV_RE.test(c.coreDevice)) throw new CacheInputError(`VM ${c.vm}: bad core device '${c.coreDevice}'`);
  }
  if (p.cores.length === 0 || p.cores.length > 32) throw new CacheInputError('Open CAS allows 1..32 IO classes besides class 0');
}

/** The IO class configuration (CSV) for the weights. */
export function renderCasIoClasses(p: CasPlan): string {
  checkCas(p);
  const hundredths = toUnits(p.cores.map((c) => c.ws), 100);
  const lines = ['IO class id,IO class name,Eviction priority,Allocation', '0,unclassified,255,0.00'];
  p.cores.forEach((c, i) => {
    lines.push(`${i + 1},core_id:eq:${c.coreId}&done,1,${(hundredths[i]! / 100).toFixed(2)}`);
  });
  return `${lines.join('\n')}\n`;
}

/** casadm commands: one-time setup, then the live reload the loop repeats. */
export function renderCasCommands(p: CasPlan): { setup: string[][]; reload: string[][] } {
  checkCas(p);
  const id = String(p.cacheId);
  return {
    setup: [
      ['casadm', '--start-cache', '--cache-device', p.cacheDevice, '--cache-id', id, '--cache-mode', 'wt'],
      ...p.cores.map((c) => ['casadm', '--add-core', '--cache-id', id, '--core-id', String(c.coreId), '--core-device', c.coreDevice]),
    ],
    reload: [['casadm', '--io-class', '--load-config', '--cache-id', id, '--file', p.ioclassFile]],
  };
}

export interface LvmPlan {
  vg: string;
  /** the SSD physical volume the pools are allocated on */
  ssdPv: string;
  /** SSD extents available for caching */
  extents: number;
  origins: { vm: string; lv: string; ws: number }[];
}

/**
 * lvmcache: per-VM cache pools sized by ws (whole extents), as commands: `setup` attaches a pool to each
 * origin; `resize` detaches the current pool first (dm-cache cannot resize a pool in place).
 */
export function renderLvmCommands(p: LvmPlan): { extents: number[]; setup: string[][]; resize: string[][] } {
  if (!NAME_RE.test(p.vg)) throw new CacheInputError(`bad VG name '${p.vg}'`);
  if (!DEV_RE.test(p.ssdPv)) throw new CacheInputError(`bad PV '${p.ssdPv}'`);
  if (!Number.isInteger(p.extents) || p.extents < p.origins.length || p.extents > 1 << 30) throw new CacheInputError('bad extent count');
  for (const o of p.origins) {
    if (!NAME_RE.test(o.vm) || !NAME_RE.test(o.lv)) throw new CacheInputError(`bad VM or LV name '${o.vm}'/'${o.lv}'`);
  }
  const ext = toUnits(p.origins.map((o) => o.ws), p.extents);
  const setup: string[][] = [];
  const resize: string[][] = [];
  p.origins.forEach((o, i) => {
    const pool = `${o.lv}_cpool`;
    const attach = [
      ['lvcreate', '-y', '--type', 'cache-pool', '-l', String(ext[i]), '-n', pool, p.vg, p.ssdPv],
      ['lvconvert', '-y', '--type', 'cache', '--cachepool', `${p.vg}/${pool}`, `${p.vg}/${o.lv}`],
    ];
    resize.push(['lvconvert', '-y', '--splitcache', `${p.vg}/${o.lv}`], ['lvremove', '-y', `${p.vg}/${pool}`]);
    if (ext[i] === 0) return; // no cache for this VM
    setup.push(...attach);
    resize.push(...attach);
  });
  return { extents: ext, setup, resize };
}

export interface CacheCapability {
  opencas: { ok: boolean; why: string };
  lvmcache: { ok: boolean; why: string };
}

/** Can this host apply the rendered configurations? */
export function detectCacheCapability(): CacheCapability {
  const has = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).toString();
    } catch {
      return null;
    }
  };
  const cas = has('casadm', ['--version']);
  const casMod = existsSync('/sys/module/cas_cache');
  const targets = has('dmsetup', ['targets']);
  return {
    opencas: {
      ok: cas !== null && casMod,
      why: cas === null ? 'casadm not installed' : casMod ? 'casadm and cas_cache present' : 'cas_cache module not loaded',
    },
    lvmcache: {
      ok: targets !== null && /^cache\b/m.test(targets),
      why: targets === null ? 'dmsetup/device-mapper not available' : /^cache\b/m.test(targets) ? 'dm-cache target present' : 'no dm-cache target in the kernel',
    },
  };
}
