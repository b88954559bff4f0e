// Which virtio disk a file lives on, and where its filesystem starts on that disk. Everything comes
// from sysfs: /sys/dev/block/MAJ:MIN of the file's st_dev, its parent disk, `start` of a partition
// (512-byte sectors) and the disk's virtio `serial` — or, for a disk without one (OpenStack Nova's
// ephemeral disks), its PCI location: "pci:" and the slot.function of every hop from the root bus
// to the disk's PCI function ("pci:02.2/00.0"), which the host reads from libvirt's live XML (bus
// numbers differ between the two views, the topology does not; docs/libvirt.md). An LVM linear LV
// of one segment is a constant shift of its PV: its offset comes from the device-mapper table
// (`dmsetup table`). Every other stacked device (striped, thin, snapshot, raid, crypt, md, several
// segments) and btrfs are refused with a message saying why: their offsets are not disk offsets.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DiskInfo } from './protocol.js';
import { LiveMrError } from '../errors/index.js';

export interface FileDisk {
  /** virtio serial of the whole disk, or "pci:..." for a disk without one */
  serial: string;
  /** byte offset of the filesystem on that disk (partition start; 0 for a whole-disk filesystem) */
  fsOffset: number;
  /** /dev node of the whole disk (flushed before extents are reported) */
  devNode: string;
}

export class UnsupportedDeviceError extends LiveMrError {
  readonly code = 'GUEST_UNSUPPORTED_DEVICE';
  override name = 'UnsupportedDeviceError';
}

const read = (p: string) => readFileSync(p, 'utf8').trim();
const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** "pci:SS.F/SS.F..." from a disk's resolved sysfs path, or null when it is not on PCI. */
export function pciIdentity(diskDir: string): string | null {
  let real: string;
  try { real = realpathSync(diskDir); } catch { return null; }
  const hops = real.split('/').filter((c) => BDF.test(c)).map((c) => c.slice(8));
  return hops.length ? `pci:${hops.join('/')}` : null;
}

/** How the host knows this disk: its serial, else its PCI location, else nothing. */
function diskIdentity(diskDir: string): string {
  const serialFile = join(diskDir, 'serial');
  const serial = existsSync(serialFile) ? read(serialFile) : '';
  return serial || pciIdentity(diskDir) || '';
}

export function devMajorMinor(dev: number): string {
  // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor)
  const d = BigInt(dev);
  const major = ((d & 0xfff00n) >> 8n) | ((d & 0xfffff00000000000n) >> 32n);
  const minor = (d & 0xffn) | ((d & 0xffffff00000n) >> 12n);
  return `${major}:${minor}`;
}

/** Where the helper reads what sysfs does not tell; injectable for tests. */
export interface DiskEnv {
  /** `dmsetup table` of the device-mapper device MAJ:MIN */
  dmTable?: (mm: string) => string;
  /** contents of /proc/self/mountinfo */
  mountinfo?: () => string;
  /** st_dev of a path (a mount point) */
  devOf?: (path: string) => number;
}

const defaultDmTable = (mm: string): string => {
  const [major, minor] = mm.split(':');
  try {
    return execFileSync('dmsetup', ['table', '-j', major!, '-m', minor!], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    throw new UnsupportedDeviceError(err.code === 'ENOENT'
      ? `device-mapper device ${mm}: dmsetup is not installed, its table cannot be read`
      : `device-mapper device ${mm}: dmsetup table failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
};
const defaultMountinfo = () => readFileSync('/proc/self/mountinfo', 'utf8');

/** mountinfo escapes space, tab, newline and backslash in paths as \ooo */
const unescapeMount = (p: string) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * The filesystem type of device MAJ:MIN, from mountinfo (`id parent MAJ:MIN root mnt opts ... - TYPE
 * src opts`). btrfs gives each subvolume its own anonymous device, which mountinfo need not list, so
 * a btrfs mount whose mount point has that device also counts (`devOf` stats a mount point).
 */
export function fsTypeOf(mm: string, mountinfo: string, dev?: number, devOf: (path: string) => number = (p) => statSync(p).dev): string | undefined {
  let viaMountpoint: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (dash < 0) continue;
    const type = f[dash + 1];
    if (f[2] === mm) return type;
    if (dev !== undefined && type === 'btrfs' && !viaMountpoint) {
      try { if (devOf(unescapeMount(f[4] ?? '')) === dev) viaMountpoint = type; } catch { /* mount point gone */ }
    }
  }
  return viaMountpoint;
}

/** One line of a device-mapper table: `start length target args...` (sectors). */
export interface DmSegment { start: number; length: number; target: string; args: string[] }

export function parseDmTable(text: string): DmSegment[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [start, length, target, ...args] = l.split(/\s+/);
    return { start: Number(start), length: Number(length), target: target ?? '', args };
  });
}

const DM_REFUSALS: Record<string, string> = {
  striped: 'a striped LV: consecutive chunks live on different PVs',
  'thin': 'a thin LV: its blocks are allocated from a pool on demand, the mapping lives in the pool\'s metadata',
  'thin-pool': 'a thin pool',
  snapshot: 'an LVM snapshot: changed blocks live in the COW store',
  'snapshot-origin': 'the origin of an LVM snapshot: writes are copied to the COW store first',
  'snapshot-merge': 'an LVM snapshot being merged',
  raid: 'a RAID LV', mirror: 'a mirrored LV', crypt: 'an encrypted (dm-crypt) device: the disk holds ciphertext',
  cache: 'a cached LV', writecache: 'a write-cached LV', integrity: 'a dm-integrity device', vdo: 'a VDO device',
};

/**
 * A device-mapper device that is a single linear segment onto a PV: the PV's MAJ:MIN and the byte
 * offset of sector 0 of the LV on the PV. Anything else throws UnsupportedDeviceError saying why.
 */
export function linearTarget(name: string, table: DmSegment[]): { pv: string; offset: number } {
  if (table.length === 0) throw new UnsupportedDeviceError(`${name}: device-mapper device without a table (suspended or being set up?)`);
  const odd = table.find((s) => s.target !== 'linear');
  if (odd) {
    const why = DM_REFUSALS[odd.target] ?? `a device-mapper '${odd.target}' target`;
    throw new UnsupportedDeviceError(`${name} is ${why}; only linear LVs are supported`);
  }
  if (table.length > 1) {
    throw new UnsupportedDeviceError(`${name} is a linear LV of ${table.length} segments (extended?): offsets are not one shift of a disk; only single-segment linear LVs are supported`);
  }
  const [pv, sector] = table[0]!.args;
  if (table[0]!.start !== 0 || !pv || !/^\d+:\d+$/.test(pv) || !/^\d+$/.test(sector ?? '')) {
    throw new UnsupportedDeviceError(`${name}: unexpected linear table line '${table[0]!.start} ${table[0]!.length} linear ${table[0]!.args.join(' ')}'`);
  }
  return { pv, offset: Number(sector) * 512 };
}

export function resolveFileDisk(stDev: number, sysfs = '/sys', env: DiskEnv = {}): FileDisk {
  const mm = devMajorMinor(stDev);
  const link = join(sysfs, 'dev/block', mm);
  if (!existsSync(link)) {
    let type: string | undefined;
    try { type = fsTypeOf(mm, (env.mountinfo ?? defaultMountinfo)(), stDev, env.devOf); } catch { /* no mountinfo: generic message */ }
    if (type === 'btrfs') {
      throw new UnsupportedDeviceError(`btrfs is not supported: its FIEMAP addresses are btrfs logical addresses (mapped to one or more disks by its chunk tree), not disk offsets`);
    }
    throw new UnsupportedDeviceError(`device ${mm} is not a block device (${type ? `${type}` : 'tmpfs, overlay, network filesystem?'})`);
  }
  const node = realpathSync(link);
  const name = basename(node);
  if (existsSync(join(node, 'dm'))) {
    let dmName = name;
    try { dmName = `${name} (${read(join(node, 'dm/name'))})`; } catch { /* name is enough */ }
    const { pv, offset } = linearTarget(dmName, parseDmTable((env.dmTable ?? defaultDmTable)(mm)));
    // the PV itself must be a plain disk or partition (one level of stacking only)
    const under = resolvePlain(join(sysfs, 'dev/block', pv), `${dmName}'s PV ${pv}`);
    return { ...under, fsOffset: under.fsOffset + offset };
  }
  if (/^(dm-|md)/.test(name)) {
    throw new UnsupportedDeviceError(`${name} is an md/RAID device: its offsets are not disk offsets; put shared files on a plain disk, partition or linear LV`);
  }
  return resolvePlain(link, name);
}

function resolvePlain(link: string, what: string): FileDisk {
  if (!existsSync(link)) throw new UnsupportedDeviceError(`${what} is not a block device`);
  const node = realpathSync(link);
  const name = basename(node);
  if (existsSync(join(node, 'dm')) || /^(dm-|md)/.test(name)) {
    throw new UnsupportedDeviceError(`${what} is itself a device-mapper/md device (${name}): only one level of stacking (LV on a disk or partition) is supported`);
  }
  if (existsSync(join(node, 'slaves')) && readdirSync(join(node, 'slaves')).length > 0) {
    throw new UnsupportedDeviceError(`${name} is stacked on other devices (${readdirSync(join(node, 'slaves')).join(', ')})`);
  }
  const isPart = existsSync(join(node, 'partition'));
  const diskDir = isPart ? dirname(node) : node;
  const fsOffset = isPart ? Number(read(join(node, 'start'))) * 512 : 0;
  const serial = diskIdentity(diskDir);
  if (!serial) throw new UnsupportedDeviceError(`disk ${basename(diskDir)} has no serial and no PCI address: the host cannot tell which image it is (set serial= on the virtio-blk device)`);
  return { serial, fsOffset, devNode: `/dev/${basename(diskDir)}` };
}

/** Every disk the host can identify (serial or PCI location), for the hello. */
export function listDisks(sysfs = '/sys'): DiskInfo[] {
  const out: DiskInfo[] = [];
  let names: string[];
  try { names = readdirSync(join(sysfs, 'block')).sort(); } catch { return out; }
  for (const name of names) {
    const dir = join(sysfs, 'block', name);
    const serial = diskIdentity(dir);
    if (!serial) continue;
    const partitions = readdirSync(dir)
      .filter((p) => p.startsWith(name) && existsSync(join(dir, p, 'partition')))
      .map((p) => ({
        index: Number(read(join(dir, p, 'partition'))),
        start: Number(read(join(dir, p, 'start'))) * 512,
        size: Number(read(join(dir, p, 'size'))) * 512,
      }))
      .sort((a, b) => a.index - b.index);
    out.push({ serial, size: Number(read(join(dir, 'size'))) * 512, partitions });
  }
  return out;
}
