// XDR encoding and packet framing of src/libvirt: round trips, RFC 4506 byte layouts written out by
// hand, and the bounds a hostile peer could try to break (lengths over the schema maximum,
// truncation, trailing bytes, bad bools, bad packet lengths).
import { describe, expect, it } from 'vitest';
import {
  encodePacket, LibvirtProtocolError, PacketSplitter, XdrReader, XdrWriter, MESSAGE_MAX,
  readTypedParam, writeTypedParam, type TypedParam,
} from '../../../src/libvirt/index.js';
import { prng } from '../../harness/prng.js';

describe('XDR', () => {
  it('lays out ints, hypers, strings and optionals as RFC 4506 says', () => {
    const b = new XdrWriter().int(-2).uint(0xfffffffe).hyper(-1n).uhyper(2n ** 64n - 1n).string('abcde', 10)
      .optional(null, () => {}).optional('x', (w, s) => w.string(s, 4)).bool(true).toBuffer();
    expect(b.toString('hex')).toBe([
      'fffffffe', 'fffffffe', 'ffffffffffffffff', 'ffffffffffffffff',
      '00000005', '6162636465000000', // length, bytes, zero padding to 4
      '00000000', // absent
      '00000001', '00000001', '78000000', // present, length 1, 'x' + padding
      '00000001',
    ].join(''));
    const r = new XdrReader(b);
    expect([r.int(), r.uint(), r.hyper(), r.uhyper(), r.string(10), r.optional((x) => x.string(4)), r.optional((x) => x.string(4)), r.bool()])
      .toEqual([-2, 0xfffffffe, -1n, 2n ** 64n - 1n, 'abcde', null, 'x', true]);
    r.end();
  });

  it('round-trips random typed parameters of every type', () => {
    const rng = prng(16);
    const types = ['int', 'uint', 'llong', 'ullong', 'double', 'boolean', 'string'] as const;
    for (let i = 0; i < 200; i++) {
      const type = types[Math.floor(rng() * types.length)]!;
      const field = `f${i}.${'x'.repeat(Math.floor(rng() * 7))}`;
      const p: TypedParam =
        type === 'int' ? { field, type, value: Math.floor(rng() * 2 ** 32) - 2 ** 31 }
          : type === 'uint' ? { field, type, value: Math.floor(rng() * 2 ** 32) }
            : type === 'llong' ? { field, type, value: BigInt(Math.floor(rng() * 2 ** 53)) - 2n ** 52n }
              : type === 'ullong' ? { field, type, value: BigInt(Math.floor(rng() * 2 ** 53)) * 1024n }
                : type === 'double' ? { field, type, value: rng() * 1e9 }
                  : type === 'boolean' ? { field, type, value: rng() < 0.5 }
                    : { field, type, value: 'é'.repeat(Math.floor(rng() * 9)) };
      const w = new XdrWriter();
      writeTypedParam(w, p);
      const r = new XdrReader(w.toBuffer());
      expect(readTypedParam(r)).toEqual(p);
      r.end();
    }
  });

  it('refuses lengths over the maximum before allocating, truncation, trailing bytes and bad bools', () => {
    const huge = new XdrWriter().uint(0x7fffffff).toBuffer();
    expect(() => new XdrReader(huge).string(4194304)).toThrow(LibvirtProtocolError);
    expect(() => new XdrReader(new XdrWriter().uint(5).toBuffer()).array(4, (r) => r.int())).toThrow(/exceeds its maximum 4/);
    expect(() => new XdrReader(new XdrWriter().uint(8).toBuffer()).string(100)).toThrow(/truncated/);
    expect(() => new XdrReader(Buffer.from('00000002', 'hex')).bool()).toThrow(/bad XDR bool/);
    const r = new XdrReader(new XdrWriter().int(1).int(2).toBuffer());
    r.int();
    expect(() => r.end()).toThrow(/4 unexpected trailing bytes/);
    expect(() => new XdrWriter().string('abcdef', 5)).toThrow(RangeError);
    expect(() => new XdrWriter().int(2 ** 31)).toThrow(RangeError);
    const unknownType = new XdrWriter().string('f', 10).int(99).int(0).toBuffer();
    expect(() => readTypedParam(new XdrReader(unknownType))).toThrow(/unknown type 99/);
  });
});

describe('packet framing', () => {
  const header = { program: 0x20008086, version: 1, procedure: 23, type: 1, serial: 7, status: 0 };

  it('writes the length word that counts itself, then the 24-byte header', () => {
    const b = encodePacket(header, Buffer.from('cafebabe', 'hex'));
    expect(b.toString('hex')).toBe('00000020' + '20008086' + '00000001' + '00000017' + '00000001' + '00000007' + '00000000' + 'cafebabe');
  });

  it('reassembles packets split at every byte boundary and several packets in one chunk', () => {
    const pkts = [encodePacket(header, Buffer.alloc(0)), encodePacket({ ...header, serial: 8 }, Buffer.alloc(1000, 7)), encodePacket({ ...header, serial: 9 }, Buffer.from('01020304', 'hex'))];
    const all = Buffer.concat(pkts);
    const s = new PacketSplitter();
    const got = [];
    for (let i = 0; i < all.length; i++) got.push(...s.push(all.subarray(i, i + 1)));
    expect(got.map((p) => [p.header.serial, p.payload.length])).toEqual([[7, 0], [8, 1000], [9, 4]]);
    const s2 = new PacketSplitter();
    expect(s2.push(all).map((p) => p.header.serial)).toEqual([7, 8, 9]);
    expect(s2.push(Buffer.alloc(0))).toEqual([]);
  });

  it('refuses a length shorter than a header or longer than VIR_NET_MESSAGE_MAX', () => {
    expect(() => new PacketSplitter().push(Buffer.from('0000001b', 'hex'))).toThrow(/shorter than a header/);
    const big = Buffer.alloc(4);
    big.writeUInt32BE(MESSAGE_MAX + 5);
    expect(() => new PacketSplitter().push(big)).toThrow(/exceeds the maximum/);
  });
});
