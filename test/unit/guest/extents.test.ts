// FIEMAP → protocol extents: flag translation, partition offsets, merging, diffing; and the real
// ioctl through the addon on a file of this machine's ext4.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convert, firstDifference, mapFile, runsFrom } from '../../../src/guest/extents.js';
import { FIEMAP_EXTENT as F, native } from '../../../src/guest/native.js';
import { EXTENT_PENDING, EXTENT_SHARED, EXTENT_UNMAPPABLE, EXTENT_UNWRITTEN } from '../../../src/guest/protocol.js';

describe('extent conversion', () => {
  it('adds the partition start, merges contiguous extents, keeps flags apart', () => {
    const m = convert([
      { logical: 0, physical: 4096, length: 4096, flags: 0 },
      { logical: 4096, physical: 8192, length: 4096, flags: 0 }, // contiguous: merged
      { logical: 8192, physical: 12288, length: 4096, flags: F.UNWRITTEN }, // contiguous but unwritten
      { logical: 16384, physical: 40960, length: 4096, flags: F.SHARED | F.LAST },
    ], 1049600);
    expect(m.extents).toEqual([
      { logical: 0, physical: 1049600 + 4096, length: 8192, flags: 0 },
      { logical: 8192, physical: 1049600 + 12288, length: 4096, flags: EXTENT_UNWRITTEN },
      { logical: 16384, physical: 1049600 + 40960, length: 4096, flags: EXTENT_SHARED },
    ]);
    expect(m.delalloc).toBe(0);
  });

  it('never guesses a location: inline, encoded, encrypted, unaligned, unknown are unmappable; delalloc is pending', () => {
    for (const flag of [F.DATA_INLINE, F.ENCODED, F.DATA_ENCRYPTED, F.NOT_ALIGNED, F.UNKNOWN, F.DATA_TAIL]) {
      const m = convert([{ logical: 0, physical: 123, length: 60, flags: flag }], 0);
      expect(m.extents).toEqual([{ logical: 0, physical: 0, length: 60, flags: EXTENT_UNMAPPABLE }]);
    }
    const d = convert([{ logical: 0, physical: 0, length: 8192, flags: F.DELALLOC | F.UNKNOWN }], 0);
    expect(d).toEqual({ extents: [{ logical: 0, physical: 0, length: 8192, flags: EXTENT_PENDING }], delalloc: 8192 });
  });

  it('finds the first difference and counts physical runs', () => {
    const a = [{ logical: 0, physical: 0, length: 4096, flags: 0 }, { logical: 4096, physical: 8192, length: 4096, flags: 0 }];
    expect(firstDifference(a, a)).toBe(Infinity);
    expect(firstDifference(a, [a[0]!])).toBe(4096);
    expect(firstDifference(a, [a[0]!, { ...a[1]!, length: 8192 }])).toBe(8192); // grown last extent
    expect(firstDifference(a, [a[0]!, { ...a[1]!, flags: EXTENT_UNWRITTEN }])).toBe(4096);
    expect(runsFrom(a, 0)).toBe(2);
    expect(runsFrom(a, 4096)).toBe(1);
    expect(runsFrom([{ logical: 0, physical: 0, length: 4096, flags: 0 }, { logical: 4096, physical: 4096, length: 4096, flags: 0 }], 0)).toBe(1);
  });
});

describe('FIEMAP through the addon on a real file', () => {
  let dir: string;
  beforeAll(() => {
    execFileSync('bash', ['scripts/build-native-guest.sh'], { stdio: 'inherit' });
    dir = mkdtempSync(join(tmpdir(), 'livemr-fiemap-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('maps a synced file to extents whose bytes on the device equal the file', () => {
    const p = join(dir, 'f.bin');
    const data = Buffer.alloc(3 * 65536);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    writeFileSync(p, data);
    const fd = openSync(p, 'r');
    try {
      const m = mapFile(fd, 0, true);
      expect(m.delalloc).toBe(0);
      expect(m.extents.length).toBeGreaterThan(0);
      expect(m.extents.reduce((s, x) => s + x.length, 0)).toBeGreaterThanOrEqual(data.length);
      expect(native().generation(fd)).toBeTypeOf('number');
    } finally { closeSync(fd); }
  });

  it('throws errno-coded errors instead of crashing', () => {
    expect(() => native().fiemap(999999, 0, 0, 4096)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => native().fiemap(-1 as number, 0, 0, 4096)).toThrow(TypeError);
    expect(() => native().getxattr('/nonexistent/x', 'user.a')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => native().setxattr('/tmp', 'user.a', 'x' as unknown as Buffer)).toThrow(TypeError);
  });

  it('reads, sets, lists and removes xattrs', () => {
    const p = join(dir, 'x.txt');
    writeFileSync(p, 'x');
    const nat = native();
    expect(nat.getxattr(p, 'user.livemr.share')).toBeNull();
    nat.setxattr(p, 'user.livemr.share', Buffer.from('1'));
    expect(nat.getxattr(p, 'user.livemr.share')!.toString()).toBe('1');
    expect(nat.listxattr(p)).toContain('user.livemr.share');
    nat.removexattr(p, 'user.livemr.share');
    expect(nat.getxattr(p, 'user.livemr.share')).toBeNull();
    // the file content is untouched
    expect(readFileSync(p, 'utf8')).toBe('x');
    const fd = openSync(p, 'a');
    writeSync(fd, 'y');
    closeSync(fd);
  });
});
