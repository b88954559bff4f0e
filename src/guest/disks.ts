// Which virtio disk a file lives on, and where its filesystem starts on that disk. Everything comes
// from sysfs: /sys/dev/block/MAJ:MIN of the file's st_dev, its parent disk, `start` of a partition
// (512-byte sectors) and the disk's virtio `serial`. Stacked devices (LVM / device-mapper / md) are
// refused: their filesystem offsets are not disk offsets.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DiskInfo } from './protocol.js';

export interface FileDisk {
  /** virtio serial of the whole disk */
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
  const serialFile = join(diskDir, 'serial');
  const serial = existsSync(serialFile) ? read(serialFile) : '';
  if (!serial) throw new UnsupportedDeviceError(`disk ${basename(diskDir)} has no serial: the host cannot tell which image it is (set serial= on the virtio-blk device)`);
  return { serial, fsOffset, devNode: `/dev/${basename(diskDir)}` };
}

/** Every disk with a serial, for the hello. */
export function listDisks(sysfs = '/sys'): DiskInfo[] {
  const out: DiskInfo[] = [];
  let names: string[];
  try { names = readdirSync(join(sysfs, 'block')).sort(); } catch { return out; }
  for (const name of names) {
    const dir = join(sysfs, 'block', name);
    let serial: string;
    try { serial = read(join(dir, 'serial')); } catch { continue; }
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
