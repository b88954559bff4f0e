// The host half of "every byte served is the byte the guest wrote" (docs/host.md, "Consistency"):
// the layout zero-fills only real holes and unwritten extents, never bytes that are not known yet,
// and the publish rules keep what was served while a range waits. One case per way a guest report
// can describe bytes that are not on the disk image yet. On a real qcow2 image and a real store.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/index.js';
import { EXTENT_PENDING, EXTENT_UNWRITTEN, type Extent } from '../../../src/guest/protocol.js';
import { openImage, type ImageMapper } from '../../../src/image/index.js';
import { layoutFile } from '../../../src/host/layout.js';
import { publish } from '../../../src/host/publish.js';
import { pointL2EntryAt } from '../image/support/craft.js';

const C = 65536;

describe('layout: zero fill only for real zeros', () => {
  let dir: string;
  let img: string;
  let mapper: ImageMapper;
  let store: CompositionStore;
  let base = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-wrong-byte-'));
    img = join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    // clusters 0-3 hold 'a', clusters 4.. unallocated
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, img]);
    mapper = await openImage(img);
    const first = (await mapper.map(0, C))[0]!;
    if (first.kind !== 'data') throw new Error('expected data at cluster 0');
    base = first.fileOffset; // the four data clusters follow each other in the image file
    store = CompositionStore.open(join(dir, 'state'));
  });
  afterAll(async () => {
    store?.close();
    await mapper?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const data = (logical: number, physical: number, length: number): Extent => ({ logical, physical, length, flags: 0 });
  const delalloc = (logical: number, length: number): Extent => ({ logical, physical: 0, length, flags: EXTENT_PENDING });
  // specs ({zero} or {file, offset}) and resolved segments ({file: null} for zero fill) alike
  const kinds = (segs: readonly ({ length: number; offset?: number; file?: string | null } | { zero: true; length: number })[]) =>
    segs.map((s) => ('zero' in s || s.file === null ? `zero:${s.length}` : `data@${s.offset}:${s.length}`));

  it('append race: a report never covers bytes past its extents with zeros when the guest marks them pending', async () => {
    // the guest read 2C+100 bytes; the last 100 had no disk location after the sync (delalloc)
    const l = await layoutFile(2 * C + 100, [data(0, 0, 2 * C), delalloc(2 * C, 4096)], mapper);
    expect(l.servable).toBe(2 * C);
    expect(kinds(l.segments)).toEqual([`data@${base}:${2 * C}`]);
    expect(l.pending).toEqual([{ why: 'guest', at: 2 * C, length: 100 }]);
  });

  it('delalloc left after the sync in the middle of a file: nothing past it is served, not even as zeros', async () => {
    const l = await layoutFile(3 * C, [data(0, 0, C), delalloc(C, C), data(2 * C, 2 * C, C)], mapper);
    expect(l.servable).toBe(C);
    expect(kinds(l.segments)).toEqual([`data@${base}:${C}`]);
    expect(l.pending.map((p) => p.why)).toEqual(['guest']);
  });

  it('unwritten tail (fallocate, never written): zeros, servable to the size', async () => {
    const l = await layoutFile(3 * C, [data(0, 0, C), { logical: C, physical: C, length: 2 * C, flags: EXTENT_UNWRITTEN }], mapper);
    expect(l.servable).toBe(3 * C);
    expect(kinds(l.segments)).toEqual([`data@${base}:${C}`, `zero:${2 * C}`]);
    expect(l.pending).toEqual([]);
  });

  it('a real hole (no extent) below the size reads as zeros; a cluster QEMU has not written is pending', async () => {
    const l = await layoutFile(3 * C, [data(0, 0, C), data(2 * C, 5 * C, C)], mapper);
    expect(kinds(l.segments)).toEqual([`data@${base}:${C}`, `zero:${C}`]);
    expect(l.servable).toBe(2 * C);
    expect(l.pending).toEqual([{ why: 'image', at: 2 * C, length: C, start: 5 * C }]);
  });

  it('pending bytes inside what was served keep the served bytes (no shrink), and resolve by remapping', async () => {
    const name = 'sparse';
    // served: data, a hole (zeros), data
    expect(publish(store, name, 3 * C, await layoutFile(3 * C, [data(0, 0, C), data(2 * C, 2 * C, C)], mapper))).toBe('created');
    // the guest writes into the hole: delalloc there now
    const waiting = await layoutFile(3 * C, [data(0, 0, C), delalloc(C, C), data(2 * C, 2 * C, C)], mapper);
    expect(publish(store, name, 3 * C, waiting)).toBe('unchanged');
    expect(store.get(name)!.segments.size).toBe(3 * C);
    // allocated: the hole's zeros are replaced from the first changed byte, which invalidates there
    const changes: number[] = [];
    const onChange = (_n: string, _c: unknown, inval: number) => changes.push(inval);
    store.on('change', onChange);
    const done = await layoutFile(3 * C, [data(0, 0, C), data(C, C, C), data(2 * C, 2 * C, C)], mapper);
    expect(publish(store, name, 3 * C, done)).toBe('remapped');
    store.off('change', onChange);
    expect(kinds(store.segments(name))).toEqual([`data@${base}:${3 * C}`]);
    expect(Math.min(...changes)).toBe(C);
  });

  it('a served cluster the image no longer maps there (discarded) is cut, also past a pending byte', async () => {
    // its own image: qemu-io discards a cluster in it while the mapper has it open
    const own = join(dir, 'discarded.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', own, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, own]);
    const m = await openImage(own);
    try {
      const name = 'discarded';
      // served: data, a hole (zeros), data, data
      const first = await layoutFile(4 * C, [data(0, 0, C), data(2 * C, 2 * C, 2 * C)], m);
      expect(publish(store, name, 4 * C, first)).toBe('created');
      const served = kinds(store.segments(name));
      // the guest writes into the hole (delalloc there: nothing past it is servable) and QEMU
      // discards guest cluster 3 under the file (its host cluster is free for any other use)
      execFileSync('qemu-io', ['-f', 'qcow2', '-d', 'unmap', '-c', `discard ${3 * C} ${C}`, own]);
      await m.invalidate();
      const l = await layoutFile(4 * C, [data(0, 0, C), delalloc(C, C), data(2 * C, 2 * C, 2 * C)], m);
      expect(l.servable).toBe(C);
      // the hole's zeros and cluster 2 (still mapped there) stay; cluster 3 is cut
      expect(publish(store, name, 4 * C, l)).toBe('remapped');
      expect(kinds(store.segments(name))).toEqual([served[0], served[1], served[2]!.replace(`:${2 * C}`, `:${C}`)]);
      expect(store.get(name)!.segments.size).toBe(3 * C);
    } finally {
      await m.close();
    }
  });

  it('a cluster the image maps onto its own metadata is withheld (pending), and a served one is cut', async () => {
    const own = join(dir, 'overlap.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', own, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${2 * C}`, own]);
    const m = await openImage(own);
    try {
      const name = 'overlap';
      expect(publish(store, name, 2 * C, await layoutFile(2 * C, [data(0, 0, 2 * C)], m))).toBe('created');
      // guest cluster 1's L2 entry now points at the L1 table (a freed cluster reused for a table)
      pointL2EntryAt(own, 1, 'l1');
      await m.invalidate();
      const l = await layoutFile(2 * C, [data(0, 0, 2 * C)], m);
      expect(l.servable).toBe(C);
      expect(l.pending).toEqual([expect.objectContaining({ why: 'metadata', at: C, length: C, start: C, structure: 'L1 table' })]);
      expect(publish(store, name, 2 * C, l)).toBe('remapped');
      expect(store.get(name)!.segments.size).toBe(C);
    } finally {
      await m.close();
    }
  });

  it('an in-place write with an unchanged mapping drops the cached pages from where the guest says', async () => {
    const name = 'inplace';
    const l = await layoutFile(2 * C, [data(0, 0, 2 * C)], mapper);
    publish(store, name, 2 * C, l);
    const changes: number[] = [];
    const onChange = (_n: string, _c: unknown, inval: number) => changes.push(inval);
    store.on('change', onChange);
    expect(publish(store, name, 2 * C, l, 4096)).toBe('unchanged');
    expect(publish(store, name, 2 * C, l)).toBe('unchanged');
    store.off('change', onChange);
    expect(changes).toEqual([4096]);
  });
});
