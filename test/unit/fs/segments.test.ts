import { describe, expect, it } from 'vitest';
import { FsError } from '../../../src/fs/errors.js';
import { SegmentList, ZERO_SOURCE } from '../../../src/fs/segments.js';

const Z = ZERO_SOURCE;
const rows = (l: SegmentList) => [...l].map((s) => [s.at, s.source, s.offset, s.length]);

describe('SegmentList', () => {
  it('merges a segment that continues the last one, and zero fill with zero fill', () => {
    const l = new SegmentList();
    l.append(0, 100, 10);
    l.append(0, 110, 5); // continues
    l.append(1, 115, 5); // other source: no merge
    l.append(Z, 0, 3);
    l.append(Z, 0, 4);
    expect(rows(l)).toEqual([
      [0, 0, 100, 15],
      [15, 1, 115, 5],
      [20, Z, 0, 7],
    ]);
    expect(l.size).toBe(27);
  });

  it('does not merge a gap or an overlap in the source', () => {
    const l = new SegmentList();
    l.append(0, 0, 10);
    l.append(0, 11, 10);
    l.append(0, 20, 1);
    expect(l.count).toBe(3);
  });

  it('finds the segment of every offset (binary search against a linear scan)', () => {
    const l = new SegmentList();
    let off = 0;
    for (let i = 0; i < 1000; i++) {
      l.append(i % 3, off, 1 + ((i * 7919) % 13));
      off += 1000;
    }
    const lin = (pos: number) => {
      let i = 0;
      while (i + 1 < l.count && l.get(i + 1).at <= pos) i++;
      return i;
    };
    for (let p = 0; p < l.size; p += 37) expect(l.find(p)).toBe(lin(p));
    expect(l.find(l.size - 1)).toBe(l.count - 1);
    expect(() => l.find(l.size)).toThrow(RangeError);
  });

  it('fills a hole and bridges both neighbours into one segment', () => {
    const l = new SegmentList();
    l.append(0, 1000, 10);
    l.append(Z, 0, 20);
    l.append(0, 1030, 10);
    l.fill(10, 0, 1010, 20);
    expect(rows(l)).toEqual([[0, 0, 1000, 40]]);
  });

  it('fills the middle of a hole leaving zero fill on both sides', () => {
    const l = new SegmentList();
    l.append(Z, 0, 100);
    l.append(1, 0, 5);
    l.fill(40, 0, 7, 10);
    expect(rows(l)).toEqual([
      [0, Z, 0, 40],
      [40, 0, 7, 10],
      [50, Z, 0, 50],
      [100, 1, 0, 5],
    ]);
    l.fill(0, 0, 0, 10); // at the start of the hole, no left neighbour
    expect(rows(l)[0]).toEqual([0, 0, 0, 10]);
    l.fill(50, 0, 17, 50); // right after [40,0,7,10]: merges left; ends at the hole's end
    expect(rows(l)).toEqual([
      [0, 0, 0, 10],
      [10, Z, 0, 30],
      [40, 0, 7, 60],
      [100, 1, 0, 5],
    ]);
  });

  it('refuses fills outside zero fill', () => {
    const l = new SegmentList();
    l.append(0, 0, 10);
    l.append(Z, 0, 10);
    expect(() => l.fill(5, 0, 0, 2)).toThrow(FsError);
    expect(() => l.fill(15, 0, 0, 10)).toThrow(/not inside/);
    expect(() => l.fill(25, 0, 0, 1)).toThrow(/not inside/);
  });

  it('truncates inside a segment, at a boundary, to zero, and extends with zeros', () => {
    const l = new SegmentList();
    l.append(0, 0, 10);
    l.append(1, 0, 10);
    l.append(2, 0, 10);
    l.truncate(25);
    expect(rows(l)).toEqual([
      [0, 0, 0, 10],
      [10, 1, 0, 10],
      [20, 2, 0, 5],
    ]);
    l.truncate(10);
    expect(rows(l)).toEqual([[0, 0, 0, 10]]);
    l.truncate(16);
    expect(rows(l)).toEqual([
      [0, 0, 0, 10],
      [10, Z, 0, 6],
    ]);
    l.truncate(0);
    expect(l.count).toBe(0);
    expect(l.size).toBe(0);
    l.append(0, 10, 5); // after truncation, appends start fresh and do not merge into dropped data
    expect(rows(l)).toEqual([[0, 0, 10, 5]]);
  });

  it('rejects bad input with typed errors and keeps its state', () => {
    const l = new SegmentList();
    l.append(0, 0, 10);
    for (const [o, n] of [
      [-1, 5],
      [0, 0],
      [1.5, 2],
      [Number.MAX_SAFE_INTEGER, 1],
      [0, Number.NaN],
    ] as const)
      expect(() => l.append(0, o, n)).toThrow(FsError);
    expect(rows(l)).toEqual([[0, 0, 0, 10]]);
  });

  it('handles offsets beyond 4 GiB exactly', () => {
    const l = new SegmentList();
    const big = 5 * 2 ** 32 + 12345;
    l.append(0, big, 2 ** 33);
    l.append(0, big + 2 ** 33, 7);
    expect(rows(l)).toEqual([[0, 0, big, 2 ** 33 + 7]]);
  });

  it('keeps 10^6 unmergeable segments in about 20 bytes each', () => {
    const l = new SegmentList();
    for (let i = 0; i < 1_000_000; i++) l.append(0, i * 2, 1);
    l.compact();
    expect(l.count).toBe(1_000_000);
    expect(l.bytes / l.count).toBeLessThanOrEqual(20.001);
    expect(l.find(765_432)).toBe(765_432);
    const t = l.table();
    expect(t.coff.length).toBe(1_000_000);
  });
});
