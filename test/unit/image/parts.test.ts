// The small pure pieces: zstd frame walking, pending queue, zero-copy segments, qemu-img map view.
import { describe, expect, it } from 'vitest';
import { zstdFrameLength } from '../../../src/image/decompress.js';
import { PendingQueue, allocatedInTop, toSegments, toQemuMap, formatQemuMapJson, resolveBackingName, UnsupportedImageError, type Extent } from '../../../src/image/index.js';

describe('zstd frame length', () => {
  // A frame with a 2-byte content size (65536 = 256 + 0xff00) and one RLE block of 65536 bytes.
  const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0xff, 0x03 | (65536 << 3) & 0xff, (65536 << 3 >> 8) & 0xff, (65536 << 3 >> 16) & 0xff, 0x41]);
  it('finds the end of the first frame and ignores what follows', () => {
    expect(zstdFrameLength(Buffer.concat([frame, Buffer.from('trailing garbage')]), 65536)).toBe(frame.length);
  });
  it('refuses content sizes other than one cluster, bad magic and truncation', () => {
    expect(() => zstdFrameLength(frame, 4096)).toThrow(/content size/);
    expect(() => zstdFrameLength(Buffer.from('not zstd at all'), 65536)).toThrow(/not a zstd frame/);
    expect(() => zstdFrameLength(frame.subarray(0, 9), 65536)).toThrow(/truncated/);
  });
});

describe('pending queue', () => {
  const top = (start: number, length: number): Extent[] => [{ kind: 'data', start, length, depth: 0, file: 'f', fileOffset: start }];
  it('keeps ranges until every byte is allocated in the top image', async () => {
    const q = new PendingQueue<string>();
    const a = q.add(0, 4096, 'a');
    q.add(8192, 4096, 'b');
    expect(q.count).toBe(2);
    expect(q.bytes).toBe(8192);
    const done = await q.resolve(async (s, l) => (s === 0 ? top(s, l) : [{ kind: 'data', start: s, length: l, depth: 1, file: 'base', fileOffset: s }]));
    expect(done.map((d) => d.range.tag)).toEqual(['a']);
    expect(done[0]!.range.id).toBe(a.id);
    expect(q.count).toBe(1);
    expect(q.list()[0]!.attempts).toBe(1);
    expect(q.remove(q.list()[0]!.id)).toBe(true);
    expect(q.count).toBe(0);
  });
  it('is bounded and validates ranges', () => {
    const q = new PendingQueue(2);
    q.add(0, 1); q.add(1, 1);
    expect(() => q.add(2, 1)).toThrow(/full/);
    expect(() => new PendingQueue().add(-1, 1)).toThrow(RangeError);
    expect(() => new PendingQueue().add(0, 0)).toThrow(RangeError);
  });
  it('allocatedInTop: unallocated or deeper extents are not', () => {
    expect(allocatedInTop([{ kind: 'zero', start: 0, length: 1, depth: 0 }])).toBe(true);
    expect(allocatedInTop([{ kind: 'unallocated', start: 0, length: 1, depth: 0 }])).toBe(false);
  });
});

describe('segments and the qemu-img map view', () => {
  const ex: Extent[] = [
    { kind: 'data', start: 0, length: 512, depth: 0, file: 'top', fileOffset: 4096 },
    { kind: 'data', start: 512, length: 512, depth: 0, file: 'top', fileOffset: 4608 },
    { kind: 'zero', start: 1024, length: 512, depth: 0, file: 'top', fileOffset: 9999 },
    { kind: 'unallocated', start: 1536, length: 512, depth: 1 },
    { kind: 'data', start: 2048, length: 512, depth: 1, file: 'base', fileOffset: 2048 },
  ];
  it('turns extents into merged file/zero segments', () => {
    expect(toSegments(ex)).toEqual([
      { kind: 'file', file: 'top', fileOffset: 4096, length: 1024 },
      { kind: 'zero', length: 1024 },
      { kind: 'file', file: 'base', fileOffset: 2048, length: 512 },
    ]);
    expect(toSegments([{ kind: 'compressed', start: 0, length: 1, depth: 0, file: 'x', fileOffset: 1, compressedLength: 9 }])).toBeUndefined();
  });
  it('prints the qemu-img map JSON shape with file', () => {
    const entries = toQemuMap(ex);
    expect(entries).toHaveLength(4);
    expect(JSON.parse(formatQemuMapJson(entries).toString())).toEqual([
      { start: 0, length: 1024, depth: 0, present: true, zero: false, data: true, offset: 4096, file: 'top' },
      { start: 1024, length: 512, depth: 0, present: true, zero: true, data: false, offset: 9999, file: 'top' },
      { start: 1536, length: 512, depth: 1, present: false, zero: true, data: false },
      { start: 2048, length: 512, depth: 1, present: true, zero: false, data: true, offset: 2048, file: 'base' },
    ]);
  });
  it('resolves backing names like QEMU', () => {
    expect(resolveBackingName('/a/b/top.qcow2', 'base.qcow2')).toBe('/a/b/base.qcow2');
    expect(resolveBackingName('/a/b/top.qcow2', '../c/base.raw')).toBe('/a/c/base.raw');
    expect(resolveBackingName('/a/b/top.qcow2', '/abs/base')).toBe('/abs/base');
    expect(() => resolveBackingName('/a/top', 'nbd://host/x')).toThrow(UnsupportedImageError);
    expect(() => resolveBackingName('/a/top', 'json:{}')).toThrow(UnsupportedImageError);
  });
});
