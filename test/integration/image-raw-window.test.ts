// A guest disk that is a window of a larger raw file (QEMU's raw `offset`/`size` options: one
// partition of a shared raw file, another tenant's bytes around it), against a real QEMU holding the
// disk on a real virtio-blk device (q35, paused before start: no guest code needed). The host must
// map guest offset 0 to the window's start, and refuse every extent past the window's end — never
// serve the bytes around it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diskImageOptions } from '../../src/host/disk-image.js';
import { layoutFile, LayoutError } from '../../src/host/layout.js';
import { openImage, type ImageMapper } from '../../src/image/index.js';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { describeVm, type VmDisk } from '../../src/qmp/vm.js';
import { startQemu, tempDir, type TestQemu } from '../unit/qmp/support/qemu.js';

const MiB = 1 << 20;
let dir = '';
let qemu: TestQemu | undefined;
let client: QmpClient | undefined;
let file = '';
let disk: VmDisk;
let mapper: ImageMapper | undefined;

beforeAll(async () => {
  dir = tempDir('livemr-rawwin-');
  file = path.join(dir, 'shared.img');
  // 'A' before the window (another tenant), 'W' the window, 'Z' after it
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(MiB, 'A'), Buffer.alloc(2 * MiB, 'W'), Buffer.alloc(5 * MiB, 'Z')]));
  qemu = await startQemu(dir, [
    '-machine', 'q35', '-S',
    '-blockdev', `driver=file,filename=${file},node-name=shared-file`,
    '-blockdev', `driver=raw,file=shared-file,offset=${MiB},size=${2 * MiB},node-name=win`,
    '-device', 'virtio-blk-pci,drive=win,serial=win0',
  ]);
  client = await QmpClient.connect(qemu.qmp[0]!);
  disk = (await describeVm(client)).disks.find((d) => d.serial === 'win0')!;
});

afterAll(async () => {
  await mapper?.close();
  await client?.close();
  await qemu?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('raw window', () => {
  it('QEMU runs the disk as a window; the model says so', () => {
    expect(disk.format).toBe('raw');
    expect(disk.file).toBe(file);
    expect(disk.virtualSize).toBe(2 * MiB);
    expect(disk.chain[0]!.window).toEqual({ offset: MiB, size: 2 * MiB });
    expect(execFileSync('qemu-img', ['info', '--output=json', '-U', file], { encoding: 'utf8' })).toContain(`"virtual-size": ${8 * MiB}`);
  });

  it('the mapper serves the window only: guest offset 0 is file offset 1 MiB, past its end is refused', async () => {
    const o = diskImageOptions(disk);
    if ('refused' in o) throw new Error(o.refused);
    mapper = await openImage(disk.file, o.options);
    expect(mapper.size).toBe(2 * MiB);
    expect(await mapper.map(0, 4096)).toEqual([{ kind: 'data', start: 0, length: 4096, depth: 0, file, fileOffset: MiB }]);
    expect((await mapper.read(0, 4096)).equals(Buffer.alloc(4096, 'W'))).toBe(true);
    expect((await mapper.read(2 * MiB - 4096, 4096)).equals(Buffer.alloc(4096, 'W'))).toBe(true);
    await expect(mapper.map(2 * MiB - 4096, 8192)).rejects.toThrow(/outside the virtual disk/);
    await expect(mapper.read(2 * MiB, 1)).rejects.toThrow(/outside the virtual disk/);
    // a guest naming disk bytes past its window for a file (the bytes of the other tenant): refused
    const ext = (physical: number) => [{ logical: 0, physical, length: 4096, flags: 0 }];
    await expect(layoutFile(4096, ext(2 * MiB), mapper)).rejects.toThrow(LayoutError);
    await expect(layoutFile(4096, ext(6 * MiB), mapper)).rejects.toThrow(/outside the disk/);
    const ok = await layoutFile(4096, ext(4096), mapper);
    expect(ok.segments).toEqual([{ file, offset: MiB + 4096, length: 4096 }]);
  });
});
