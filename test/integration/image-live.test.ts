// The mapper against a running guest: the guest writes files on its ext4 disks (whole-disk and
// partitioned), flushes, reports their physical blocks with filefrag; while QEMU keeps running,
// the host maps those disk offsets through the VM's qcow2 overlay (backed by the cached base image)
// and finds exactly the bytes the guest reads back with `cat`.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { parseFilefrag } from '../harness/selfcheck.js';
import { allocatedInTop, openImage, toSegments, type ImageMapper } from '../../src/image/index.js';

const BLOCK = 4096;

describe('image mapper on a running guest', () => {
  let vm: GuestVm | undefined;
  const mappers: ImageMapper[] = [];
  beforeAll(async () => {
    vm = await bootGuest({ name: 'image-live' });
  });
  afterAll(async () => {
    await Promise.allSettled(mappers.map((m) => m.close()));
    await vm?.shutdown();
  });

  for (const serial of ['data', 'pdata']) {
    it(`finds the bytes a guest wrote and flushed (${serial})`, async () => {
      const disk = vm!.disks.find((d) => d.serial === serial)!;
      const path = `/mnt/${serial}/livemr-image-live.bin`;
      // Random content (not compressible, not a pattern the base image could already contain).
      await vm!.sh(`dd if=/dev/urandom of=${path} bs=64k count=24 2>/dev/null && sync`);
      const guestBytes = (await vm!.exec(`cat ${path}`)).stdout;
      const guestSha = (await vm!.sh(`sha256sum ${path}`)).split(/\s+/)[0];
      expect(guestBytes.length).toBe(24 * 65536);
      expect(createHash('sha256').update(guestBytes).digest('hex')).toBe(guestSha);
      const extents = parseFilefrag(await vm!.sh(`filefrag -v -b${BLOCK} ${path}`));
      expect(extents.length).toBeGreaterThan(0);

      // QEMU is running: the mapper reads the overlay and its backing chain from the headers.
      expect(vm!.pid).toBeGreaterThan(0);
      const img = await openImage(disk.overlay);
      mappers.push(img);
      expect(img.chain.length).toBeGreaterThanOrEqual(2);

      const found = Buffer.alloc(guestBytes.length);
      let zeroCopyBytes = 0;
      for (const e of extents) {
        const diskOffset = disk.fsOffset + e.physical;
        const length = Math.min(e.length, guestBytes.length - e.logical);
        const bytes = await img.read(diskOffset, length);
        bytes.copy(found, e.logical);
        // The same bytes through the zero-copy description: segments of image files.
        const map = await img.map(diskOffset, length);
        expect(map.every((x) => x.depth === 0 && x.kind === 'data')).toBe(true);
        const segments = toSegments(map)!;
        let at = 0;
        for (const s of segments) {
          if (s.kind !== 'file') throw new Error('expected file segments');
          expect(s.file).toBe(disk.overlay);
          const fh = await open(s.file, 'r');
          const part = Buffer.alloc(s.length);
          await fh.read(part, 0, s.length, s.fileOffset);
          await fh.close();
          expect(part.equals(bytes.subarray(at, at + s.length))).toBe(true);
          at += s.length;
          zeroCopyBytes += s.length;
        }
      }
      expect(zeroCopyBytes).toBe(guestBytes.length);
      expect(createHash('sha256').update(found).digest('hex')).toBe(guestSha);
      expect(found.equals(guestBytes)).toBe(true);
    });
  }

  it('finds a file written after the mapper was opened once invalidated; pending ranges resolve', async () => {
    const disk = vm!.disks.find((d) => d.serial === 'data')!;
    const img = mappers[0]!; // opened (and its L2 tables cached) before this file existed
    const path = '/mnt/data/livemr-image-live-2.bin';
    await vm!.sh(`dd if=/dev/urandom of=${path} bs=64k count=16 2>/dev/null && sync`);
    const guestBytes = (await vm!.exec(`cat ${path}`)).stdout;
    const extents = parseFilefrag(await vm!.sh(`filefrag -v -b${BLOCK} ${path}`));
    // Ranges the (stale) mapper does not see in the overlay yet wait in the pending queue.
    for (const e of extents) {
      const at = disk.fsOffset + e.physical;
      const len = Math.min(e.length, guestBytes.length - e.logical);
      if (!allocatedInTop(await img.map(at, len))) img.pending.add(at, len, e.logical);
    }
    const queued = img.pending.count;
    const resolved = await img.invalidate();
    expect(resolved.length).toBe(queued);
    expect(img.pending.count).toBe(0);
    for (const e of extents) {
      const length = Math.min(e.length, guestBytes.length - e.logical);
      const bytes = await img.read(disk.fsOffset + e.physical, length);
      expect(bytes.equals(guestBytes.subarray(e.logical, e.logical + length))).toBe(true);
    }
  });
});
