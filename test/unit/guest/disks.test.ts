// Disk resolution from sysfs, on sysfs-shaped trees: whole disks, partitions (offset = start * 512),
// and the refusals (device-mapper/LVM, md, stacked, no serial, not a block device).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devMajorMinor, listDisks, resolveFileDisk, UnsupportedDeviceError } from '../../../src/guest/disks.js';

let sys: string;
const dev = (major: number, minor: number) => major * 256 + minor; // small numbers: old-style encoding

function file(p: string, content: string) {
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content + '\n');
}

beforeAll(() => {
  sys = mkdtempSync(join(tmpdir(), 'livemr-sysfs-'));
  const blk = join(sys, 'devices/pci0000:00/virtio2/block');
  file(join(blk, 'vdb/serial'), 'data');
  file(join(blk, 'vdb/size'), '524288');
  file(join(blk, 'vdc/serial'), 'pdata');
  file(join(blk, 'vdc/size'), '524288');
  file(join(blk, 'vdc/vdc1/partition'), '1');
  file(join(blk, 'vdc/vdc1/start'), '2050');
  file(join(blk, 'vdc/vdc1/size'), '520000');
  file(join(blk, 'vdd/size'), '1000'); // no serial, not on PCI either: unidentifiable
  // no serial, behind a PCIe root port (00:02.2) at 03:00.0, the way q35 guests under libvirt see it
  const pciBlk = join(sys, 'devices/pci0000:00/0000:00:02.2/0000:03:00.0/virtio3/block');
  file(join(pciBlk, 'vde/size'), '2048');
  file(join(pciBlk, 'vde/serial'), '');
  file(join(sys, 'devices/virtual/block/dm-0/dm/name'), 'vg-lv');
  mkdirSync(join(sys, 'devices/virtual/block/md0/slaves'), { recursive: true });
  mkdirSync(join(sys, 'dev/block'), { recursive: true });
  mkdirSync(join(sys, 'block'), { recursive: true });
  for (const [mm, target] of [['254:16', blk + '/vdb'], ['254:33', blk + '/vdc/vdc1'], ['254:48', blk + '/vdd'],
    ['254:64', pciBlk + '/vde'], ['253:0', join(sys, 'devices/virtual/block/dm-0')], ['9:0', join(sys, 'devices/virtual/block/md0')]] as const) {
    symlinkSync(target, join(sys, 'dev/block', mm));
  }
  for (const d of ['vdb', 'vdc', 'vdd']) symlinkSync(join(blk, d), join(sys, 'block', d));
  symlinkSync(join(pciBlk, 'vde'), join(sys, 'block', 'vde'));
});
afterAll(() => rmSync(sys, { recursive: true, force: true }));

describe('disk resolution', () => {
  it('decodes dev_t like glibc', () => {
    expect(devMajorMinor(dev(254, 16))).toBe('254:16');
    // gnu_dev_makedev(0x189a, 0x234567bc): major bits 8..19 and 44..63, minor bits 0..7 and 20..43
    expect(devMajorMinor(0x1234_5678_9abc)).toBe(`${0x189a}:${0x234567bc}`);
  });

  it('whole disk: offset 0, named by its serial', () => {
    expect(resolveFileDisk(dev(254, 16), sys)).toEqual({ serial: 'data', fsOffset: 0, devNode: '/dev/vdb' });
  });

  it('partition: offset = start sector * 512, the parent disk named', () => {
    expect(resolveFileDisk(dev(254, 33), sys)).toEqual({ serial: 'pdata', fsOffset: 2050 * 512, devNode: '/dev/vdc' });
  });

  it('a disk without a serial is named by its PCI path from the root bus', () => {
    expect(resolveFileDisk(dev(254, 64), sys)).toEqual({ serial: 'pci:02.2/00.0', fsOffset: 0, devNode: '/dev/vde' });
  });

  it('refuses LVM/device-mapper, md, disks without a serial or PCI address and non-block filesystems', () => {
    expect(() => resolveFileDisk(dev(253, 0), sys)).toThrow(/device-mapper\/LVM\/md/);
    expect(() => resolveFileDisk(dev(9, 0), sys)).toThrow(UnsupportedDeviceError);
    expect(() => resolveFileDisk(dev(254, 48), sys)).toThrow(/no serial/);
    expect(() => resolveFileDisk(dev(0, 40), sys)).toThrow(/not a block device/);
  });

  it('lists disks with serials or PCI paths and their partitions for the hello', () => {
    expect(listDisks(sys)).toEqual([
      { serial: 'data', size: 524288 * 512, partitions: [] },
      { serial: 'pdata', size: 524288 * 512, partitions: [{ index: 1, start: 2050 * 512, size: 520000 * 512 }] },
      { serial: 'pci:02.2/00.0', size: 2048 * 512, partitions: [] },
    ]);
  });
});
