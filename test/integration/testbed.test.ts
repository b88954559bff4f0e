// Proves the testbed is real: a guest booted under QEMU writes data on a whole-disk and on a
// partitioned ext4 disk, and the host finds those exact bytes inside the qcow2 overlays.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { parseFilefrag, selfCheck } from '../harness/selfcheck.js';

describe('testbed guest', () => {
  let vm: GuestVm;
  beforeAll(async () => {
    vm = await bootGuest({ name: 'testbed' });
  });
  afterAll(async () => {
    await vm?.shutdown();
  });

  it('boots with both data disks, the LiveMR channel and the control channel', async () => {
    expect(await vm.sh('cat /sys/block/vdb/serial /sys/block/vdc/serial')).toBe('datapdata');
    const ports = await vm.sh('cat /sys/class/virtio-ports/*/name');
    expect(ports.split('\n').filter(Boolean).sort()).toEqual(['org.livemr.0', 'org.livemr.ctl']);
    // the partitioned disk's fs starts where the harness says it does
    const start = Number(await vm.sh('cat /sys/block/vdc/vdc1/start')) * 512;
    expect(start).toBe(vm.disks[1]!.fsOffset);
    expect(start % 4096).not.toBe(0);
  });

  it('reports exit codes, stdout, stderr and stdin', async () => {
    const r = await vm.exec('echo out; echo err >&2; cat; exit 7', { stdin: 'in\n' });
    expect(r.code).toBe(7);
    expect(r.stdout.toString()).toBe('out\nin\n');
    expect(r.stderr.toString()).toBe('err\n');
  });

  for (const serial of ['data', 'pdata']) {
    it(`finds the guest's bytes in the qcow2 image (${serial})`, async () => {
      const disk = vm.disks.find((d) => d.serial === serial)!;
      const r = await selfCheck(vm, disk);
      expect(r.extents).toBeGreaterThan(0);
      expect(r.bytes).toBe(8 << 20);
      expect(r.firstDiff).toBe(-1);
      expect(r.equal).toBe(true);
    });
  }

  it('a wrong offset does not match (the check can fail)', async () => {
    const disk = vm.disks[1]!;
    const { readViaQemuImgMap, expectedBytes } = await import('../harness/selfcheck.js');
    const ext = parseFilefrag(await vm.sh('filefrag -v -b4096 /mnt/pdata/selfcheck.bin'))[0]!;
    // forgetting the partition offset is the classic bug: it must be caught
    const wrong = readViaQemuImgMap(disk.overlay, ext.physical, 4096);
    expect(wrong.equals(expectedBytes('pdata', 4096))).toBe(false);
  });
});

describe('teardown', () => {
  it('leaves no process and no files behind', async () => {
    const vm = await bootGuest({ name: 'teardown' });
    const { pid, dir } = vm;
    await vm.shutdown();
    expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
