// Disk resolution from sysfs, on sysfs-shaped trees: whole disks, partitions (offset = start * 512),
// and the refusals (device-mapper/LVM, md, stacked, no serial, not a block device).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devMajorMinor, fsTypeOf, listDisks, parseDmTable, resolveFileDisk, UnsupportedDeviceError } from '../../../src/guest/disks.js';

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

  it('refuses md, disks without a serial or PCI address and non-block filesystems', () => {
    expect(() => resolveFileDisk(dev(9, 0), sys)).toThrow(/md\/RAID/);
    expect(() => resolveFileDisk(dev(9, 0), sys)).toThrow(UnsupportedDeviceError);
    expect(() => resolveFileDisk(dev(254, 48), sys)).toThrow(/no serial/);
    expect(() => resolveFileDisk(dev(0, 40), sys, { mountinfo: () => '' })).toThrow(/not a block device/);
  });

  // tables as `dmsetup table` prints them (lvcreate on /dev/vdc1, i.e. 254:33)
  const lv = (table: string) => resolveFileDisk(dev(253, 0), sys, { dmTable: (mm) => (mm === '253:0' ? table : '') });

  it('LVM linear LV of one segment: the PV\'s partition start plus the LV\'s start sector on the PV', () => {
    expect(lv('0 1048576 linear 254:33 2048\n')).toEqual({ serial: 'pdata', fsOffset: 2050 * 512 + 2048 * 512, devNode: '/dev/vdc' });
    // LV on a whole-disk PV
    expect(resolveFileDisk(dev(253, 0), sys, { dmTable: () => '0 8192 linear 254:16 10240' })).toEqual({ serial: 'data', fsOffset: 10240 * 512, devNode: '/dev/vdb' });
  });

  it('refuses striped, thin, snapshot and multi-segment LVs, and LVs on stacked or unknown PVs, saying why', () => {
    expect(() => lv('0 2097152 striped 2 128 254:16 2048 254:33 2048')).toThrow(/vg-lv.*striped LV.*only linear/);
    expect(() => lv('0 2097152 thin 253:3 1')).toThrow(/thin LV/);
    expect(() => lv('0 2097152 snapshot 253:1 253:2 P 8')).toThrow(/snapshot/);
    expect(() => lv('0 2097152 snapshot-origin 253:1')).toThrow(/origin of an LVM snapshot/);
    expect(() => lv('0 1024 linear 254:33 2048\n1024 1024 linear 254:16 2048')).toThrow(/2 segments/);
    expect(() => lv('0 1024 linear 253:0 2048')).toThrow(/only one level of stacking/);
    expect(() => lv('0 1024 linear 254:99 2048')).toThrow(/PV 254:99 is not a block device/);
    expect(() => lv('')).toThrow(/without a table/);
    expect(() => lv('0 1024 crypt aes-xts-plain64 0 0 254:16 0')).toThrow(/dm-crypt/);
  });

  it('refuses btrfs by its type in mountinfo (its FIEMAP addresses are logical), other non-block filesystems generically', () => {
    const mountinfo = [
      '22 1 254:0 / / rw,noatime shared:1 - ext4 /dev/vda rw',
      '40 22 0:45 / /mnt/b rw,relatime shared:20 - btrfs /dev/vdd rw,space_cache=v2,subvolid=5,subvol=/',
      '41 22 0:46 / /tmp rw,nosuid shared:21 - tmpfs tmpfs rw',
    ].join('\n');
    expect(fsTypeOf('0:45', mountinfo)).toBe('btrfs');
    expect(() => resolveFileDisk(dev(0, 45), sys, { mountinfo: () => mountinfo })).toThrow(/btrfs is not supported.*logical addresses/);
    expect(() => resolveFileDisk(dev(0, 46), sys, { mountinfo: () => mountinfo })).toThrow(/not a block device \(tmpfs\)/);
    // a btrfs file's st_dev is its subvolume's anonymous device, not always the one mountinfo lists
    const devOf = (p: string) => (p === '/mnt/b' ? dev(0, 47) : dev(0, 99));
    expect(() => resolveFileDisk(dev(0, 47), sys, { mountinfo: () => mountinfo, devOf })).toThrow(/btrfs is not supported/);
    expect(fsTypeOf('0:48', mountinfo.replace('/mnt/b', '/mnt/my\\040disk'), dev(0, 48), (p) => (p === '/mnt/my disk' ? dev(0, 48) : 0))).toBe('btrfs');
    expect(parseDmTable(' \n0 8 linear 1:2 3\n')).toEqual([{ start: 0, length: 8, target: 'linear', args: ['1:2', '3'] }]);
  });

  it('lists disks with serials or PCI paths and their partitions for the hello', () => {
    expect(listDisks(sys)).toEqual([
      { serial: 'data', size: 524288 * 512, partitions: [] },
      { serial: 'pdata', size: 524288 * 512, partitions: [{ index: 1, start: 2050 * 512, size: 520000 * 512 }] },
      { serial: 'pci:02.2/00.0', size: 2048 * 512, partitions: [] },
    ]);
  });
});
