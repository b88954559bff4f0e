// Seeded generators of valid messages and of hostile byte streams, shared by the unit tests (a quick
// sample) and bench/guest-fuzz.ts (the full count). Not a test file itself.
import { crc32 } from 'node:zlib';
import {
  encodeFrame, ERROR_CODE, FrameDecoder, HEADER_BYTES, MAX_PAYLOAD, REMOVE_REASON, SHARE_STATUS, type Message,
} from '../../../src/guest/protocol.js';

import { prng } from '../../harness/prng.js';

export { prng };

export function randomMessage(r: () => number, side: 'guest' | 'host'): Message {
  const int = (max: number) => Math.floor(r() * (max + 1));
  const str = (max: number) => {
    const alphabet = Array.from('abc/._-é€😀\u0000 ');
    let s = '';
    for (let n = int(max); n > 0; n--) s += alphabet[int(alphabet.length - 1)]!;
    return s; // at most 4 bytes a character: every caller stays far below the limits
  };
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length - 1)]!;
  if (side === 'host') {
    switch (int(5)) {
      case 0: return { type: 'hostHello', nonce: int(0xffffffff), protoMin: 1, protoMax: int(3) + 1, hostId: str(20), capabilities: Array.from({ length: int(4) }, () => str(10)) };
      case 1: return { type: 'share', path: '/' + str(60) };
      case 2: return { type: 'unshare', fileId: int(0xffffffff) };
      case 3: return { type: 'resync' };
      case 4: return { type: 'flush' };
      default: return { type: 'error', code: pick(ERROR_CODE), refSeq: int(1000), message: str(50) };
    }
  }
  switch (int(8)) {
    case 0: return {
      type: 'guestHello', nonce: int(0xffffffff), protoMin: 1, protoMax: 1, guestId: str(20), software: str(10), capabilities: Array.from({ length: int(4) }, () => str(10)),
      disks: Array.from({ length: int(3) }, () => ({ serial: str(8), size: int(2 ** 40), partitions: Array.from({ length: int(3) }, (_, i) => ({ index: i + 1, start: int(2 ** 30), size: int(2 ** 30) })) })),
    };
    case 1: {
      let pos = int(1 << 20);
      const from = pos;
      const extents = Array.from({ length: int(20) }, () => {
        const x = { logical: pos, physical: int(2 ** 40), length: (int(100) + 1) * 4096, flags: int(15) };
        pos += x.length + int(3) * 4096;
        return x;
      });
      return { type: 'fileExtents', fileId: int(1000), inode: int(2 ** 32), generation: int(0xffffffff), path: '/' + str(60), disk: str(8), size: pos, from, more: r() < 0.2, rewritten: r() < 0.5, extents };
    }
    case 2: return { type: 'truncate', fileId: int(1000), size: int(2 ** 50) };
    case 3: return { type: 'remove', fileId: int(1000), reason: pick(REMOVE_REASON) };
    case 4: return { type: 'heartbeat', uptimeMs: int(2 ** 40), files: int(100), pending: int(100) };
    case 5: return { type: 'shareStatus', refSeq: int(1000), path: '/' + str(40), status: pick(SHARE_STATUS), fileId: int(100), message: str(80) };
    case 6: return { type: 'resyncDone', files: int(100) };
    case 7: return { type: 'flushDone', refSeq: int(1000) };
    default: return { type: 'error', code: pick(ERROR_CODE), refSeq: int(1000), message: str(50) };
  }
}

/** One hostile variant of a valid frame. Some keep a valid CRC so the payload parser is attacked too. */
export function mutate(r: () => number, frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  const int = (max: number) => Math.floor(r() * (max + 1));
  const fixCrc = (x: Buffer) => {
    if (x.length < HEADER_BYTES) return x;
    x.writeUInt32LE(crc32(x.subarray(HEADER_BYTES), crc32(x.subarray(0, 12))) >>> 0, 12);
    return x;
  };
  switch (int(9)) {
    case 0: { for (let i = int(4); i >= 0; i--) { const p = int(b.length - 1); b[p] = b[p]! ^ (1 << int(7)); } return b; } // bit flips, CRC catches
    case 1: { for (let i = int(4); i >= 0; i--) { const p = HEADER_BYTES + int(b.length - HEADER_BYTES - 1); if (p < b.length) b[p] = int(255); } return fixCrc(b); } // payload bytes, valid CRC
    case 2: return b.subarray(0, int(b.length - 1)); // truncated
    case 3: { // payload truncated/extended with a consistent header and CRC
      const n = Math.max(0, b.length - HEADER_BYTES + int(16) - 8);
      const x = Buffer.alloc(HEADER_BYTES + n);
      b.copy(x, 0, 0, Math.min(b.length, x.length));
      x.writeUInt32LE(n, 8);
      return fixCrc(x);
    }
    case 4: { b[3] = int(255); return fixCrc(b); } // any type, valid CRC
    case 5: { b.writeUInt32LE(MAX_PAYLOAD + 1 + int(0x7fffffff), 8); return b; } // absurd length
    case 6: { const x = Buffer.alloc(int(64)); for (let i = 0; i < x.length; i++) x[i] = int(255); return x; } // garbage
    case 7: { const x = Buffer.alloc(int(64)); for (let i = 0; i < x.length; i++) x[i] = i % 2 ? 0x4d : 0x4c; return x; } // magic storm
    case 8: { b[2] = int(255); return b; } // frame version
    default: { // count fields blown up, valid CRC
      if (b.length > HEADER_BYTES + 4) b.writeUInt32LE(0xffffffff, HEADER_BYTES + int(b.length - HEADER_BYTES - 4));
      return fixCrc(b);
    }
  }
}

export interface FuzzResult { frames: number; decoded: number; errors: number; recovered: number; maxBuffered: number }

/**
 * Feeds `count` hostile frames (each followed by a clean frame) through one decoder in random chunk
 * sizes. Checks after each round that the clean frame came out intact: hunting always recovers.
 * Throws on any violated property.
 */
export function fuzzDecoder(seed: number, count: number, side: 'guest' | 'host' = 'guest'): FuzzResult {
  const r = prng(seed);
  const dec = new FrameDecoder(side);
  const res: FuzzResult = { frames: 0, decoded: 0, errors: 0, recovered: 0, maxBuffered: 0 };
  for (let i = 0; i < count; i++) {
    const bad = mutate(r, encodeFrame(i, randomMessage(r, side)));
    const sentinel = randomMessage(r, side);
    const clean = encodeFrame(0xfffffff0, sentinel);
    // a mutated frame may announce up to 1 MiB: padding guarantees it completes (and fails its CRC)
    const waiting = bad.length >= 12 && bad[0] === 0x4c && bad[1] === 0x4d ? bad.readUInt32LE(8) : 0;
    const pad = waiting > 0 && waiting <= MAX_PAYLOAD ? Buffer.alloc(waiting + HEADER_BYTES) : Buffer.alloc(0);
    const stream = Buffer.concat([bad, pad, clean]);
    let seenSentinel = false;
    for (let off = 0; off < stream.length;) {
      const n = 1 + Math.floor(r() * (r() < 0.5 ? 32 : 4096));
      const evs = dec.push(stream.subarray(off, off + n));
      off += n;
      res.maxBuffered = Math.max(res.maxBuffered, (dec as unknown as { buf: Buffer }).buf.length);
      for (const ev of evs) {
        if (ev.kind === 'error') { res.errors++; continue; }
        res.decoded++;
        if (ev.frame.seq === 0xfffffff0) {
          if (JSON.stringify(ev.frame.msg) !== JSON.stringify(sentinel)) throw new Error(`round ${i}: clean frame decoded differently`);
          seenSentinel = true;
        } else {
          // whatever got through the decoder must be a well-formed message: it re-encodes
          encodeFrame(ev.frame.seq, ev.frame.msg);
        }
      }
    }
    if (!seenSentinel) throw new Error(`round ${i} (seed ${seed}): decoder did not recover the clean frame after ${bad.toString('hex').slice(0, 80)}`);
    res.recovered++;
    res.frames += 2;
    if (res.maxBuffered > HEADER_BYTES + MAX_PAYLOAD + 4096) throw new Error(`decoder buffered ${res.maxBuffered} bytes`);
  }
  return res;
}
