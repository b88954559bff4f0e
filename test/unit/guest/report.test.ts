// The guest half of "every byte served is the byte the guest wrote": what one report says, given
// what the host was told, the size read before the writeback, and the synced extents.
import { describe, expect, it } from 'vitest';
import { EXTENT_PENDING, EXTENT_UNMAPPABLE, type Extent } from '../../../src/guest/protocol.js';
import { extentsFrom, firstPending, needsDiskFlush, planReport, type ReportRequest } from '../../../src/guest/report.js';

const x = (logical: number, physical: number, length: number, flags = 0): Extent => ({ logical, physical, length, flags });
const req = (r: Partial<ReportRequest> = {}): ReportRequest => ({ from: Infinity, rewritten: false, force: false, full: false, ...r });

describe('planReport', () => {
  it('append race: reports the size read before the writeback, not the larger size after it', () => {
    // before the sync the file had 10000 bytes; a writer appended 5000 more while it was written back,
    // into the block that already had an extent: those bytes are in the page cache only
    const after = [x(0, 1 << 20, 16384)];
    const p = planReport({ extents: [x(0, 1 << 20, 8192)], size: 8000 }, 10000, after, req({ from: 4096 }))!;
    expect(p.size).toBe(10000);
    // from the page the last report ended in (partly written then)
    expect(p.from).toBe(4096);
    expect(p.extents).toEqual([x(4096, (1 << 20) + 4096, 12288)]);
  });

  it('grown without a visible mapping change: starts at the page of the old end', () => {
    const m = [x(0, 0, 65536)];
    const p = planReport({ extents: m, size: 5000 }, 9000, m, req())!;
    expect(p).toEqual({ size: 9000, from: 4096, rewritten: false, withdraw: false, extents: [x(4096, 4096, 61440)] });
  });

  it('delalloc left after the sync stays a pending extent (never a hole) and keeps no location', () => {
    const after = [x(0, 0, 4096), x(4096, 0, 8192, EXTENT_PENDING)];
    const p = planReport({ extents: [x(0, 0, 4096)], size: 4096 }, 12288, after, req())!;
    expect(p.from).toBe(4096);
    expect(p.extents).toEqual([x(4096, 0, 8192, EXTENT_PENDING)]);
    expect(firstPending(after, 12288)).toBe(4096);
    expect(firstPending(after, 4096)).toBe(Infinity);
    expect(extentsFrom(after, 6000)).toEqual([x(6000, 0, 6288, EXTENT_PENDING)]);
    expect(extentsFrom([x(0, 0, 8192, EXTENT_UNMAPPABLE)], 100)).toEqual([x(100, 0, 8092, EXTENT_UNMAPPABLE)]);
  });

  it('written (inotify cannot say where): a frame flagged rewritten even when the mapping and size are unchanged', () => {
    const m = [x(0, 0, 8192)];
    expect(planReport({ extents: m, size: 8192 }, 8192, m, req({ rewritten: true }))).toEqual({ size: 8192, from: 8192, rewritten: true, withdraw: false, extents: [] });
    // with growth the mapping is re-read from the old end's page; the flag still covers what lies below
    expect(planReport({ extents: m, size: 5000 }, 6000, m, req({ rewritten: true }))).toMatchObject({ from: 4096, rewritten: true });
  });

  it('nothing changed: nothing to say, unless forced (a rename) — then a frame that cuts nothing', () => {
    const m = [x(0, 0, 8192)];
    expect(planReport({ extents: m, size: 8000 }, 8000, m, req())).toBeUndefined();
    expect(planReport({ extents: m, size: 8000 }, 8000, m, req({ force: true }))).toEqual({ size: 8000, from: 8192, rewritten: false, withdraw: false, extents: [] });
  });

  it('a remap below the old size starts the report there; a resync starts at 0', () => {
    const p = planReport({ extents: [x(0, 0, 4096), x(4096, 4096, 4096)] , size: 8192 }, 8192, [x(0, 0, 4096), x(4096, 99 * 4096, 4096)], req())!;
    expect(p.from).toBe(4096);
    expect(planReport({ extents: [], size: 0 }, 8192, [x(0, 0, 8192)], req({ full: true }))!.from).toBe(0);
  });

  it('shrunk: withdraws the file and describes it again from 0 (the bytes below the new end may be rewritten in place)', () => {
    // copytruncate + a writer into the same blocks: mapping unchanged below the new end, content not
    const p = planReport({ extents: [x(0, 0, 16384)], size: 16384 }, 5000, [x(0, 0, 8192)], req())!;
    expect(p).toMatchObject({ size: 5000, from: 0, withdraw: true, extents: [x(0, 0, 8192)] });
    // grown or same size: never a withdrawal
    expect(planReport({ extents: [x(0, 0, 4096)], size: 4000 }, 5000, [x(0, 0, 8192)], req())!.withdraw).toBe(false);
  });
});

describe('needsDiskFlush: a report waits for a disk flush whenever it vouches for bytes written since the last one', () => {
  const m = [x(0, 1 << 20, 8192)];
  const prev = { extents: m, size: 5000 };
  const plan = (size: number, extents: Extent[], r: Partial<ReportRequest> = {}) => planReport(prev, size, extents, req(r))!;

  it('growth inside a block the host knows (mapping unchanged): flushed — after a snapshot its cluster moved in QEMU\'s cache only', () => {
    const p = plan(6000, m);
    expect(p.extents).toEqual([x(4096, (1 << 20) + 4096, 4096)]);
    expect(needsDiskFlush(prev, m, p)).toBe(true);
  });

  it('a write in place (rewritten, same size and mapping): flushed', () => {
    expect(needsDiskFlush(prev, m, plan(5000, m, { rewritten: true }))).toBe(true);
  });

  it('new or moved blocks: flushed; described again after a shrink: flushed', () => {
    const grown = [x(0, 1 << 20, 12288)];
    expect(needsDiskFlush(prev, grown, plan(9000, grown))).toBe(true);
    const moved = [x(0, 7 << 20, 8192)];
    expect(needsDiskFlush(prev, moved, plan(5000, moved))).toBe(true);
    const cut = [x(0, 1 << 20, 4096)];
    const p = plan(100, cut);
    expect(p.withdraw).toBe(true);
    expect(needsDiskFlush(prev, cut, p)).toBe(true);
  });

  it('a rename alone (forced frame, nothing written): no flush', () => {
    const p = plan(5000, m, { force: true });
    expect(p.extents).toEqual([]);
    expect(needsDiskFlush(prev, m, p)).toBe(false);
  });
});
