// The shared frame codec: round trips, every limit enforced, hostile input answered with error events
// (never a throw, never unbounded buffering), and a quick fuzz sample (bench/guest-fuzz.ts runs 10^5+).
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  encodeFrame, FrameDecoder, HEADER_BYTES, MAX_EXTENTS_PER_FRAME, MAX_PAYLOAD, ProtocolError, splitFileExtents, type Message,
} from '../../../src/guest/protocol.js';
import { fuzzDecoder, prng, randomMessage } from './fuzz-frames.js';

const frames = (dec: FrameDecoder, b: Buffer) => dec.push(b).filter((e) => e.kind === 'frame').map((e) => (e as { frame: { seq: number; msg: Message } }).frame);
const errors = (dec: FrameDecoder, b: Buffer) => dec.push(b).filter((e) => e.kind === 'error').map((e) => (e as { code: string }).code);

function withPayload(type: number, payload: Buffer, seq = 1): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h[0] = 0x4c; h[1] = 0x4d; h[2] = 1; h[3] = type;
  h.writeUInt32LE(seq, 4);
  h.writeUInt32LE(payload.length, 8);
  h.writeUInt32LE(crc32(payload, crc32(h.subarray(0, 12))) >>> 0, 12);
  return Buffer.concat([h, payload]);
}

describe('guest protocol codec', () => {
  it('round-trips every message type, byte by byte', () => {
    const r = prng(1);
    for (const side of ['guest', 'host'] as const) {
      const msgs = Array.from({ length: 300 }, () => randomMessage(r, side));
      const stream = Buffer.concat(msgs.map((m, i) => encodeFrame(i + 1, m)));
      const dec = new FrameDecoder(side);
      const got: Message[] = [];
      for (let i = 0; i < stream.length; i++) got.push(...frames(dec, stream.subarray(i, i + 1)).map((f) => f.msg));
      expect(got).toEqual(msgs);
    }
  });

  it('refuses a frame announcing more than the maximum before buffering it', () => {
    const dec = new FrameDecoder('guest');
    const f = encodeFrame(1, { type: 'resyncDone', files: 1 });
    f.writeUInt32LE(MAX_PAYLOAD + 1, 8);
    expect(errors(dec, f)).toEqual(['framing']);
    // and then resynchronises on the next good frame
    expect(frames(dec, encodeFrame(2, { type: 'resyncDone', files: 2 }))).toEqual([{ seq: 2, msg: { type: 'resyncDone', files: 2 } }]);
  });

  it('reports a CRC mismatch once and recovers', () => {
    const dec = new FrameDecoder('guest');
    const bad = encodeFrame(1, { type: 'heartbeat', uptimeMs: 5, files: 1, pending: 0 });
    bad[20] = bad[20]! ^ 0xff;
    const good = encodeFrame(2, { type: 'flushDone', refSeq: 9 });
    const evs = dec.push(Buffer.concat([bad, Buffer.from('garbage LM LM'), good]));
    expect(evs.filter((e) => e.kind === 'error')).toHaveLength(1);
    expect(evs.filter((e) => e.kind === 'frame')).toEqual([{ kind: 'frame', frame: { seq: 2, msg: { type: 'flushDone', refSeq: 9 } } }]);
  });

  it('rejects types from the wrong side, unknown types and bad payloads without losing the stream', () => {
    const dec = new FrameDecoder('guest');
    expect(errors(dec, encodeFrame(1, { type: 'share', path: '/x' }))).toEqual(['wrong-direction']);
    expect(errors(dec, withPayload(0x7e, Buffer.alloc(0)))).toEqual(['unknown-type']);
    expect(errors(dec, withPayload(0x08, Buffer.alloc(3)))).toEqual(['bad-payload']); // truncated u32
    expect(errors(dec, withPayload(0x08, Buffer.alloc(5)))).toEqual(['bad-payload']); // trailing byte
    expect(errors(dec, withPayload(0x04, Buffer.from([1, 0, 0, 0, 99])))).toEqual(['bad-payload']); // enum out of range
    expect(frames(dec, encodeFrame(2, { type: 'truncate', fileId: 1, size: 0 }))).toHaveLength(1);
  });

  it('checks counts against the bytes present before allocating', () => {
    const dec = new FrameDecoder('guest');
    // fileExtents claiming 4 billion extents in a 60-byte payload
    const p = Buffer.alloc(4 + 8 + 4 + 2 + 2 + 8 + 8 + 1 + 4);
    p.writeUInt32LE(0xffffffff, p.length - 4);
    const evs = dec.push(withPayload(0x02, p));
    expect(evs).toEqual([{ kind: 'error', code: 'bad-payload', seq: 1, message: expect.stringMatching(/count/) }]);
  });

  it('validates extents: sorted, non-empty, after `from`, known flags, below 2^53', () => {
    const base = { type: 'fileExtents' as const, fileId: 1, inode: 2, generation: 3, path: '/f', disk: 'data', size: 8192, from: 0, more: false, rewritten: false };
    // the encoder does not police extent order or flags: the decoder must
    const enc = (extents: { logical: number; physical: number; length: number; flags: number }[]) => encodeFrame(1, { ...base, extents });
    const dec = new FrameDecoder('guest');
    expect(errors(dec, enc([{ logical: 4096, physical: 0, length: 4096, flags: 0 }, { logical: 0, physical: 0, length: 4096, flags: 0 }]))).toEqual(['bad-payload']);
    expect(errors(dec, enc([{ logical: 0, physical: 0, length: 0, flags: 0 }]))).toEqual(['bad-payload']);
    expect(errors(dec, enc([{ logical: 0, physical: 0, length: 4096, flags: 0x80 }]))).toEqual(['bad-payload']);
    const huge = encodeFrame(1, { ...base, extents: [{ logical: 0, physical: 0, length: 4096, flags: 0 }] });
    huge.writeBigUInt64LE(2n ** 60n, HEADER_BYTES + 4 + 8 + 4 + 4 + 6 + 8 + 8 + 1 + 4 + 8); // physical
    huge.writeUInt32LE(crc32(huge.subarray(HEADER_BYTES), crc32(huge.subarray(0, 12))) >>> 0, 12);
    expect(errors(dec, huge)).toEqual(['bad-payload']);
  });

  it('rejects invalid UTF-8 and over-long strings', () => {
    const dec = new FrameDecoder('host');
    expect(errors(dec, withPayload(0x42, Buffer.from([2, 0, 0xc3, 0x28])))).toEqual(['bad-payload']);
    const long = Buffer.alloc(2 + 5000, 0x61);
    long.writeUInt16LE(5000, 0);
    expect(errors(dec, withPayload(0x42, long))).toEqual(['bad-payload']);
  });

  it('the encoder refuses what the decoder would refuse', () => {
    expect(() => encodeFrame(1, { type: 'share', path: 'x'.repeat(5000) })).toThrow(ProtocolError);
    expect(() => encodeFrame(1, { type: 'truncate', fileId: -1, size: 0 })).toThrow(ProtocolError);
    expect(() => encodeFrame(1, { type: 'truncate', fileId: 1, size: 2 ** 60 })).toThrow(ProtocolError);
  });

  it('splits a large map into frames under the limit that rebuild it', () => {
    const extents = Array.from({ length: MAX_EXTENTS_PER_FRAME * 2 + 5 }, (_, i) => ({ logical: i * 8192, physical: i * 4096 * 3, length: 4096, flags: 0 }));
    const msgs = splitFileExtents({ fileId: 7, inode: 1, generation: 1, path: '/big', disk: 'data', size: extents.length * 8192, from: 0 }, extents);
    expect(msgs).toHaveLength(3);
    expect(msgs.map((m) => m.more)).toEqual([true, true, false]);
    const dec = new FrameDecoder('guest');
    const back = msgs.flatMap((m, i) => {
      const f = encodeFrame(i + 1, m);
      expect(f.length).toBeLessThanOrEqual(HEADER_BYTES + MAX_PAYLOAD);
      return frames(dec, f);
    });
    expect(back.flatMap((f) => (f.msg as { extents: unknown[] }).extents)).toEqual(extents);
  });

  it('survives a quick fuzz sample and always recovers the next clean frame', () => {
    for (const [seed, side] of [[11, 'guest'], [12, 'host']] as const) {
      const r = fuzzDecoder(seed, 2000, side);
      expect(r.recovered).toBe(2000);
      expect(r.errors).toBeGreaterThan(500);
      expect(r.maxBuffered).toBeLessThanOrEqual(HEADER_BYTES + MAX_PAYLOAD + 4096);
    }
  });
});
