// Packet framing of libvirt's RPC (docs/kbase/internals/rpc.rst): every packet is a 4-byte
// big-endian length that counts itself, a 24-byte XDR header (program, version, procedure, type,
// serial, status), then the XDR payload of that procedure. There are no other markers, so a bad
// length desynchronises the stream for good: the splitter throws and the connection is dropped.
import { LibvirtProtocolError } from './errors.js';
import { HEADER_BYTES, LEN_BYTES, MESSAGE_MAX } from './protocol.js';

export interface Header {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

export interface Packet {
  header: Header;
  payload: Buffer;
}

export function encodePacket(h: Header, payload: Buffer = Buffer.alloc(0)): Buffer {
  const total = LEN_BYTES + HEADER_BYTES + payload.length;
  if (total - LEN_BYTES > MESSAGE_MAX) throw new RangeError(`libvirt packet of ${total} bytes exceeds ${MESSAGE_MAX}`);
  const b = Buffer.alloc(LEN_BYTES + HEADER_BYTES);
  b.writeUInt32BE(total, 0);
  b.writeUInt32BE(h.program >>> 0, 4);
  b.writeUInt32BE(h.version >>> 0, 8);
  b.writeInt32BE(h.procedure, 12);
  b.writeInt32BE(h.type, 16);
  b.writeUInt32BE(h.serial >>> 0, 20);
  b.writeInt32BE(h.status, 24);
  return payload.length ? Buffer.concat([b, payload]) : b;
}

export function decodeHeader(b: Buffer, offset = 0): Header {
  return {
    program: b.readUInt32BE(offset),
    version: b.readUInt32BE(offset + 4),
    procedure: b.readInt32BE(offset + 8),
    type: b.readInt32BE(offset + 12),
    serial: b.readUInt32BE(offset + 16),
    status: b.readInt32BE(offset + 20),
  };
}

/** Splits a byte stream into packets; keeps at most one partial packet buffered. */
export class PacketSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxPacket = MESSAGE_MAX + LEN_BYTES) {}

  /** Feeds bytes; returns the packets completed by them. Throws LibvirtProtocolError on a bad length. */
  push(chunk: Buffer): Packet[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Packet[] = [];
    for (;;) {
      if (this.buffered < LEN_BYTES) break;
      const head = this.peek(LEN_BYTES);
      const len = head.readUInt32BE(0);
      if (len < LEN_BYTES + HEADER_BYTES) throw new LibvirtProtocolError(`libvirt packet length ${len} is shorter than a header`);
      if (len > this.maxPacket) throw new LibvirtProtocolError(`libvirt packet length ${len} exceeds the maximum ${this.maxPacket}`);
      if (this.buffered < len) break;
      const pkt = this.take(len);
      out.push({ header: decodeHeader(pkt, LEN_BYTES), payload: pkt.subarray(LEN_BYTES + HEADER_BYTES) });
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const pkt = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return pkt;
  }
}
