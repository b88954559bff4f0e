// IOPS weights → cgroup block I/O control, cgroup v1 (blkio) or v2 (io), detected at run time.
//   v1: blkio.bfq.weight_device "MAJ:MIN w" (1..1000, BFQ on the disk); caps in
//       blkio.throttle.{read,write}_iops_device "MAJ:MIN n" (0 removes).
//   v2: io.bfq.weight "MAJ:MIN w" (BFQ) or io.weight "MAJ:MIN w" (1..10000, needs io.cost enabled at
//       the root: io.cost.qos "MAJ:MIN enable=1"); caps in io.max "MAJ:MIN riops=n wiops=n" (max clears).
// Weights are relative, so the largest share maps to the top of the range. Every write is read back.

import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ActuatorError, CacheInputError, CapabilityError } from './errors.js';

export type CgroupVersion = 'v1' | 'v2';

export interface CgroupHost {
  version: CgroupVersion;
  /** the hierarchy holding the block controller: /sys/fs/cgroup/blkio (v1) or /sys/fs/cgroup (v2) */
  root: string;
}

/** Which cgroup version controls block I/O on this host. */
export function detectCgroup(base = '/sys/fs/cgroup'): CgroupHost {
  const controllers = join(base, 'cgroup.controllers');
  if (existsSync(controllers) && /\bio\b/.test(readFileSync(controllers, 'utf8'))) return { version: 'v2', root: base };
  const v1 = join(base, 'blkio');
  if (existsSync(join(v1, 'blkio.throttle.read_iops_device'))) return { version: 'v1', root: v1 };
  throw new CapabilityError(`no block I/O cgroup controller under ${base} (neither v2 'io' nor v1 'blkio')`);
}

/** "MAJ:MIN" of a block device node (whole disks only: cgroups reject partitions). */
export function deviceNumber(devPath: string): string {
  const st = statSync(devPath);
  if (!st.isBlockDevice()) throw new CacheInputError(`${devPath} is not a block device`);
  const rdev = st.rdev;
  // Linux dev_t: major = bits 8..19 (+ high bits), minor = bits 0..7 and 20..31
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return `${major}:${minor}`;
}

const DEV_RE = /^\d+:\d+$/;

/** Integer cgroup weights for shares (largest share → max; every VM ≥ 1). */
export function scaleWeights(shares: readonly number[], max: number): number[] {
  const top = Math.max(...shares);
  if (!(top > 0)) return shares.map(() => max);
  return shares.map((w) => Math.max(1, Math.min(max, Math.round((w / top) * max))));
}

export interface CgroupSetting {
  /** relative weight in the version's range, undefined = leave alone */
  weight?: number;
  /** read and write IOPS cap, 0 = none, undefined = leave alone */
  iopsCap?: number;
}

export interface CgroupReadback {
  weight: number | null;
  readIops: number | null;
  writeIops: number | null;
}

/** One VM's cgroup for one disk (MAJ:MIN). */
export class CgroupIo {
  readonly dir: string;

  constructor(
    readonly host: CgroupHost,
    /** path of the VM's cgroup relative to the controller root, e.g. machine.slice/vm1 */
    readonly group: string,
    readonly dev: string,
  ) {
    if (!DEV_RE.test(dev)) throw new CacheInputError(`device must be MAJ:MIN, got '${dev}'`);
    if (group.split('/').includes('..')) throw new CacheInputError(`cgroup path may not contain '..': ${group}`);
    this.dir = join(host.root, group);
    if (!existsSync(this.dir)) throw new CapabilityError(`cgroup ${this.dir} does not exist`);
  }

  /** The weight file this host uses, or null when weights cannot be set here. */
  weightFile(): { file: string; max: number } | null {
    const candidates =
      this.host.version === 'v1'
        ? [{ file: 'blkio.bfq.weight_device', max: 1000 }]
        : [{ file: 'io.bfq.weight', max: 1000 }, { file: 'io.weight', max: 10000 }];
    for (const c of candidates) if (existsSync(join(this.dir, c.file))) return c;
    return null;
  }

  apply(s: CgroupSetting): CgroupReadback {
    if (s.weight !== undefined) {
      const wf = this.weightFile();
      if (!wf) throw new CapabilityError(`${this.dir}: no BFQ or io.cost weight file (is BFQ the disk's scheduler?)`);
      const w = Math.max(1, Math.min(wf.max, Math.round(s.weight)));
      this.write(wf.file, `${this.dev} ${w}`);
    }
    if (s.iopsCap !== undefined) {
      const n = Math.max(0, Math.round(s.iopsCap));
      if (this.host.version === 'v1') {
        this.write('blkio.throttle.read_iops_device', `${this.dev} ${n}`);
        this.write('blkio.throttle.write_iops_device', `${this.dev} ${n}`);
      } else {
        const v = n === 0 ? 'max' : String(n);
        this.write('io.max', `${this.dev} riops=${v} wiops=${v}`);
      }
    }
    return this.read();
  }

  read(): CgroupReadback {
    const wf = this.weightFile();
    const weight = wf ? devValue(this.readFile(wf.file), this.dev) : null;
    if (this.host.version === 'v1') {
      return {
        weight,
        readIops: devValue(this.readFile('blkio.throttle.read_iops_device'), this.dev),
        writeIops: devValue(this.readFile('blkio.throttle.write_iops_device'), this.dev),
      };
    }
    const max = parseIoMax(this.readFile('io.max'), this.dev);
    return { weight, readIops: max.riops, writeIops: max.wiops };
  }

  /** Remove this disk's caps and per-device weight (back to the defaults). */
  clear(): void {
    this.apply({ iopsCap: 0 });
    const wf = this.weightFile();
    if (wf && this.host.version === 'v2' && wf.file === 'io.weight') this.write(wf.file, `${this.dev} default`);
  }

  private write(file: string, line: string): void {
    try {
      writeFileSync(join(this.dir, file), `${line}\n`);
    } catch (e) {
      throw new ActuatorError(`writing '${line}' to ${join(this.dir, file)}: ${(e as Error).message}`, { cause: e });
    }
  }

  private readFile(file: string): string {
    return readFileSync(join(this.dir, file), 'utf8');
  }
}

/** Value of "MAJ:MIN value" lines for one device; null when the device has no line (defaults apply). */
export function devValue(text: string, dev: string): number | null {
  for (const line of text.split('\n')) {
    const [d, v] = line.trim().split(/\s+/);
    if (d === dev && v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return null;
}

/** riops/wiops of a cgroup v2 io.max for one device (null = max / absent). */
export function parseIoMax(text: string, dev: string): { riops: number | null; wiops: number | null } {
  for (const line of text.split('\n')) {
    const [d, ...kv] = line.trim().split(/\s+/);
    if (d !== dev) continue;
    const get = (k: string) => {
      const m = kv.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
      return m && /^\d+$/.test(m) ? Number(m) : null;
    };
    return { riops: get('riops'), wiops: get('wiops') };
  }
  return { riops: null, wiops: null };
}
