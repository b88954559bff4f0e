// The portable CRC-32 used where node:zlib has no crc32 (Node < 20.15, e.g. Debian 12's Node 18)
// must give exactly zlib's values, including when continued over several pieces.
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Portable } from '../../../src/guest/crc32.js';
import { prng } from './fuzz-frames.js';

describe('crc32', () => {
  it('matches the standard check value and the empty input', () => {
    expect(crc32Portable(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(Buffer.alloc(0))).toBe(0);
    expect(crc32Portable(Buffer.alloc(0), 0x1234)).toBe(0x1234);
  });

  it('equals zlib.crc32 on random data, whole and continued piecewise', () => {
    const r = prng(7);
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(Array.from({ length: Math.floor(r() * 3000) }, () => Math.floor(r() * 256)));
      const whole = zlib.crc32(data) >>> 0;
      expect(crc32Portable(data)).toBe(whole);
      expect(crc32(data)).toBe(whole);
      const cut = Math.floor(r() * (data.length + 1));
      expect(crc32Portable(data.subarray(cut), crc32Portable(data.subarray(0, cut)))).toBe(whole);
    }
  });
});
