// Which virtio disk a file lives on, and where its filesystem starts on that disk. Everything comes
// from sysfs: /sys/dev/block/MAJ:MIN of the file's st_dev, its parent disk, `start` of a partition
// (512-byte sectors) and the disk's virtio `serial` — or, for a disk without one (OpenStack Nova's
// ephemeral disks), its PCI location: "pci:" and the slot.function of every hop from the root bus
// to the disk's PCI function ("pci:02.2/00.0"), which the host reads from libvirt's live XML (bus
// numbers differ between the two views, the topology does not; docs/libvirt.md). Stacked devices (LVM / device-mapper / md) are
// refused: their filesystem offsets are not disk offsets.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DiskInfo } from './protocol.js';

export interface FileDisk {
  /** virtio serial of the whole disk, or "pci:..." for a disk without one */
  serial: string;
  /** byte offset of the filesystem on that disk (partition start; 0 for a whole-disk filesystem) */
  fsOffset: number;
  /** /dev node of the whole disk (flushed before extents are reported) */
  devNode: string;
}

export class UnsupportedDeviceError extends Error {
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

export function resolveFileDisk(stDev: number, sysfs = '/sys'): FileDisk {
  const mm = devMajorMinor(stDev);
  const link = join(sysfs, 'dev/block', mm);
  if (!existsSync(link)) throw new UnsupportedDeviceError(`device ${mm} is not a block device (tmpfs, overlay, network filesystem?)`);
  const node = realpathSync(link);
  const name = basename(node);
  if (existsSync(join(node, 'dm')) || /^(dm-|md)/.test(name)) {
    throw new UnsupportedDeviceError(`${name} is a device-mapper/LVM/md device: its offsets are not disk offsets; put shared files on a plain disk or partition`);
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
