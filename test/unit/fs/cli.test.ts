import { describe, expect, it } from 'vitest';
import { parseSegment, parseSize } from '../../../src/cli/fs.js';
import { UsageError } from '../../../src/cli/main.js';

describe('livemr compose argument parsing', () => {
  it('parses FILE:OFFSET:LENGTH, with colons in FILE and hex numbers', () => {
    expect(parseSegment('/a/b:10:20')).toEqual({ file: '/a/b', offset: 10, length: 20 });
    expect(parseSegment('/a:b/c:0x100:4096')).toEqual({ file: '/a:b/c', offset: 256, length: 4096 });
    expect(parseSegment('/img:5000000000:1')).toMatchObject({ offset: 5_000_000_000 });
  });
  it('rejects malformed segments with a usage error', () => {
    for (const s of ['/a:1', '/a:x:1', '/a:1:-1', '/a:1:0', ':1:2', '/a:1:99999999999999999999'])
      expect(() => parseSegment(s)).toThrow(UsageError);
    expect(() => parseSize('1e3', 'N')).toThrow(UsageError);
  });
});
