// The guest↔host wire protocol on the virtio-serial port org.livemr.0 (docs/protocol.md).
// One module for both ends: message types, the frame encoder and the one decoder. The decoder treats
// every byte as hostile: fixed-size header with magic and CRC, a hard payload limit checked before any
// allocation, bounds-checked fields, counts checked against the bytes left, and an error event (never
// a throw) for anything malformed. After garbage it hunts for the next valid header.
import { crc32 } from './crc32.js';
import { LiveMrError } from '../errors/index.js';

export const PROTOCOL_VERSION = 1;
export const MAGIC0 = 0x4c; // 'L'
export const MAGIC1 = 0x4d; // 'M'
export const HEADER_BYTES = 16;
/** Hard limit on a frame's payload; a larger announced length is a framing error. */
export const MAX_PAYLOAD = 1 << 20;
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 256;
export const MAX_MESSAGE_BYTES = 4096;
export const MAX_CAPABILITIES = 32;
export const MAX_DISKS = 64;
export const MAX_PARTITIONS = 128;
const EXTENT_BYTES = 8 + 8 + 8 + 4;
/** Extents that always fit one frame next to the largest possible file header. */
export const MAX_EXTENTS_PER_FRAME = Math.floor((MAX_PAYLOAD - 64 - 2 * MAX_PATH_BYTES) / EXTENT_BYTES);

/** Extent flags (disk ranges reported by the guest). */
export const EXTENT_UNWRITTEN = 0x1; // allocated but never written: reads as zeros
export const EXTENT_UNMAPPABLE = 0x2; // data exists but not as a plain disk byte range (inline, encoded, ...)
export const EXTENT_SHARED = 0x4; // informational: blocks shared with another file (reflink)
/** fileExtents frame flags */
const FILE_MORE = 0x1;
const FILE_REWRITTEN = 0x2;
export const EXTENT_PENDING = 0x8; // data the guest holds that has no disk location yet (delayed allocation)
const EXTENT_FLAGS_KNOWN = 0xf;

export const TYPE = {
  guestHello: 0x01,
  fileExtents: 0x02,
  truncate: 0x03,
  remove: 0x04,
  heartbeat: 0x05,
  error: 0x06,
  shareStatus: 0x07,
  resyncDone: 0x08,
  flushDone: 0x09,
  hostHello: 0x41,
  share: 0x42,
  unshare: 0x43,
  resync: 0x44,
  flush: 0x45,
} as const;
export type TypeName = keyof typeof TYPE;
const NAME_OF = new Map<number, TypeName>(Object.entries(TYPE).map(([k, v]) => [v, k as TypeName]));
/** Which end may send a type ('error' both). */
const FROM_GUEST = new Set<TypeName>(['guestHello', 'fileExtents', 'truncate', 'remove', 'heartbeat', 'error', 'shareStatus', 'resyncDone', 'flushDone']);
const FROM_HOST = new Set<TypeName>(['hostHello', 'share', 'unshare', 'resync', 'flush', 'error']);

export const SHARE_STATUS = ['shared', 'pending-consent', 'denied', 'not-found', 'not-regular', 'not-mappable', 'unsupported-device', 'failed'] as const;
export type ShareStatus = (typeof SHARE_STATUS)[number];
export const REMOVE_REASON = ['deleted', 'unshared', 'consent-revoked', 'failed'] as const;
export type RemoveReason = (typeof REMOVE_REASON)[number];
export const ERROR_CODE = ['framing', 'bad-payload', 'unknown-type', 'wrong-direction', 'sequence', 'version', 'internal'] as const;
export type ErrorCode = (typeof ERROR_CODE)[number];

export interface Partition { index: number; start: number; size: number }
export interface DiskInfo { serial: string; size: number; partitions: Partition[] }
/** A file range on the guest disk: logical = offset in the file, physical = offset on the disk. */
export interface Extent { logical: number; physical: number; length: number; flags: number }

export type Message =
  | { type: 'guestHello'; nonce: number; protoMin: number; protoMax: number; guestId: string; software: string; capabilities: string[]; disks: DiskInfo[] }
  | { type: 'hostHello'; nonce: number; protoMin: number; protoMax: number; hostId: string; capabilities: string[] }
  | {
    type: 'fileExtents'; fileId: number; inode: number; generation: number; path: string; disk: string; size: number;
    /** the extents replace everything the host knows of this file at logical ≥ from */
    from: number;
    /** more frames of the same update follow */
    more: boolean;
    /**
     * the file was written since the last report and the guest cannot tell where (inotify says
     * "modified", not which bytes): bytes below `from` may have changed in place too
     */
    rewritten: boolean;
    extents: Extent[];
  }
  | { type: 'truncate'; fileId: number; size: number }
  | { type: 'remove'; fileId: number; reason: RemoveReason }
  | { type: 'heartbeat'; uptimeMs: number; files: number; pending: number }
  | { type: 'error'; code: ErrorCode; refSeq: number; message: string }
  | { type: 'shareStatus'; refSeq: number; path: string; status: ShareStatus; fileId: number; message: string }
  | { type: 'resyncDone'; files: number }
  | { type: 'flushDone'; refSeq: number }
  | { type: 'share'; path: string }
  | { type: 'unshare'; fileId: number }
  | { type: 'resync' }
  | { type: 'flush' };

export type MessageOf<T extends TypeName> = Extract<Message, { type: T }>;
export interface Frame { seq: number; msg: Message }

/** Raised only by the encoder (our own bug or an out-of-range value we were asked to send). */
export class ProtocolError extends LiveMrError {
  readonly code = 'GUEST_PROTOCOL';
  override name = 'ProtocolError';
}

class PayloadError extends LiveMrError {
  readonly code = 'GUEST_PAYLOAD';
}

// ---------------------------------------------------------------------------------------------
// Payload writer / reader

class Writer {
  private buf = Buffer.allocUnsafe(256);
  private len = 0;
  private room(n: number): void {
    if (this.len + n > MAX_PAYLOAD) throw new ProtocolError(`payload larger than ${MAX_PAYLOAD} bytes`);
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.min(MAX_PAYLOAD, Math.max(this.buf.length * 2, this.len + n)));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): this { checkInt(v, 0xff); this.room(1); this.buf.writeUInt8(v, this.len); this.len += 1; return this; }
  u16(v: number): this { checkInt(v, 0xffff); this.room(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; return this; }
  u32(v: number): this { checkInt(v, 0xffffffff); this.room(4); this.buf.writeUInt32LE(v, this.len); this.len += 4; return this; }
  u64(v: number): this { checkInt(v, Number.MAX_SAFE_INTEGER); this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.len); this.len += 8; return this; }
  str(s: string, max: number): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length > max) throw new ProtocolError(`string of ${b.length} bytes exceeds ${max}`);
    this.u16(b.length);
    this.room(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
    return this;
  }
  done(): Buffer { return this.buf.subarray(0, this.len); }
}

function checkInt(v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new ProtocolError(`value ${v} out of range 0..${max}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  private pos = 0;
  constructor(private readonly b: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new PayloadError(`truncated payload (need ${n} bytes at ${this.pos}, have ${this.b.length - this.pos})`);
  }
  u8(): number { this.need(1); return this.b.readUInt8(this.pos++); }
  u16(): number { this.need(2); const v = this.b.readUInt16LE(this.pos); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.b.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64(): number {
    this.need(8);
    const v = this.b.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PayloadError(`64-bit value ${v} beyond 2^53`);
    return Number(v);
  }
  str(max: number): string {
    const n = this.u16();
    if (n > max) throw new PayloadError(`string of ${n} bytes exceeds ${max}`);
    this.need(n);
    const s = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    try { return utf8.decode(s); } catch { throw new PayloadError('string is not valid UTF-8'); }
  }
  /** A count of items, each at least minBytes long, that must fit in what is left. */
  count(width: 1 | 2 | 4, max: number, minBytes: number): number {
    const n = width === 1 ? this.u8() : width === 2 ? this.u16() : this.u32();
    if (n > max) throw new PayloadError(`count ${n} exceeds ${max}`);
    if (n * minBytes > this.b.length - this.pos) throw new PayloadError(`count ${n} does not fit in the payload`);
    return n;
  }
  enumOf<T extends readonly string[]>(names: T, what: string): T[number] {
    const i = this.u8();
    const v = names[i];
    if (v === undefined) throw new PayloadError(`unknown ${what} ${i}`);
    return v;
  }
  end(): void { if (this.pos !== this.b.length) throw new PayloadError(`${this.b.length - this.pos} trailing bytes`); }
}

// ---------------------------------------------------------------------------------------------
// Payload layouts (docs/protocol.md has the same tables)

function writeCaps(w: Writer, caps: string[]): void {
  if (caps.length > MAX_CAPABILITIES) throw new ProtocolError('too many capabilities');
  w.u8(caps.length);
  for (const c of caps) w.str(c, MAX_NAME_BYTES);
}
function readCaps(r: Reader): string[] {
  const n = r.count(1, MAX_CAPABILITIES, 2);
  return Array.from({ length: n }, () => r.str(MAX_NAME_BYTES));
}

function encodePayload(m: Message): Buffer {
  const w = new Writer();
  switch (m.type) {
    case 'guestHello':
      w.u32(m.nonce).u16(m.protoMin).u16(m.protoMax).str(m.guestId, MAX_NAME_BYTES).str(m.software, MAX_NAME_BYTES);
      writeCaps(w, m.capabilities);
      if (m.disks.length > MAX_DISKS) throw new ProtocolError('too many disks');
      w.u8(m.disks.length);
      for (const d of m.disks) {
        w.str(d.serial, MAX_NAME_BYTES).u64(d.size);
        if (d.partitions.length > MAX_PARTITIONS) throw new ProtocolError('too many partitions');
        w.u8(d.partitions.length);
        for (const p of d.partitions) w.u16(p.index).u64(p.start).u64(p.size);
      }
      break;
    case 'hostHello':
      w.u32(m.nonce).u16(m.protoMin).u16(m.protoMax).str(m.hostId, MAX_NAME_BYTES);
      writeCaps(w, m.capabilities);
      break;
    case 'fileExtents':
      if (m.extents.length > MAX_EXTENTS_PER_FRAME) throw new ProtocolError('too many extents for one frame');
      w.u32(m.fileId).u64(m.inode).u32(m.generation).str(m.path, MAX_PATH_BYTES).str(m.disk, MAX_NAME_BYTES)
        .u64(m.size).u64(m.from).u8((m.more ? FILE_MORE : 0) | (m.rewritten ? FILE_REWRITTEN : 0)).u32(m.extents.length);
      for (const x of m.extents) w.u64(x.logical).u64(x.physical).u64(x.length).u32(x.flags);
      break;
    case 'truncate': w.u32(m.fileId).u64(m.size); break;
    case 'remove': w.u32(m.fileId).u8(REMOVE_REASON.indexOf(m.reason)); break;
    case 'heartbeat': w.u64(m.uptimeMs).u32(m.files).u32(m.pending); break;
    case 'error': w.u8(ERROR_CODE.indexOf(m.code)).u32(m.refSeq).str(truncateUtf8(m.message, MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES); break;
    case 'shareStatus':
      w.u32(m.refSeq).str(m.path, MAX_PATH_BYTES).u8(SHARE_STATUS.indexOf(m.status)).u32(m.fileId)
        .str(truncateUtf8(m.message, MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES);
      break;
    case 'resyncDone': w.u32(m.files); break;
    case 'flushDone': w.u32(m.refSeq); break;
    case 'share': w.str(m.path, MAX_PATH_BYTES); break;
    case 'unshare': w.u32(m.fileId); break;
    case 'resync': case 'flush': break;
  }
  return w.done();
}

function decodePayload(type: TypeName, b: Buffer): Message {
  const r = new Reader(b);
  let m: Message;
  switch (type) {
    case 'guestHello': {
      const nonce = r.u32(), protoMin = r.u16(), protoMax = r.u16();
      const guestId = r.str(MAX_NAME_BYTES), software = r.str(MAX_NAME_BYTES), capabilities = readCaps(r);
      const disks: DiskInfo[] = [];
      const nd = r.count(1, MAX_DISKS, 2 + 8 + 1);
      for (let i = 0; i < nd; i++) {
        const serial = r.str(MAX_NAME_BYTES), size = r.u64();
        const np = r.count(1, MAX_PARTITIONS, 18);
        const partitions = Array.from({ length: np }, () => ({ index: r.u16(), start: r.u64(), size: r.u64() }));
        disks.push({ serial, size, partitions });
      }
      m = { type, nonce, protoMin, protoMax, guestId, software, capabilities, disks };
      break;
    }
    case 'hostHello': {
      const nonce = r.u32(), protoMin = r.u16(), protoMax = r.u16(), hostId = r.str(MAX_NAME_BYTES);
      m = { type, nonce, protoMin, protoMax, hostId, capabilities: readCaps(r) };
      break;
    }
    case 'fileExtents': {
      const fileId = r.u32(), inode = r.u64(), generation = r.u32(), path = r.str(MAX_PATH_BYTES), disk = r.str(MAX_NAME_BYTES);
      const size = r.u64(), from = r.u64(), fl = r.u8();
      if (fl & ~(FILE_MORE | FILE_REWRITTEN)) throw new PayloadError(`unknown file flags ${fl}`);
      const n = r.count(4, MAX_EXTENTS_PER_FRAME, EXTENT_BYTES);
      const extents: Extent[] = [];
      for (let i = 0; i < n; i++) {
        const x = { logical: r.u64(), physical: r.u64(), length: r.u64(), flags: r.u32() };
        if (x.flags & ~EXTENT_FLAGS_KNOWN) throw new PayloadError(`unknown extent flags 0x${x.flags.toString(16)}`);
        if (x.length === 0) throw new PayloadError('empty extent');
        if (x.logical + x.length > Number.MAX_SAFE_INTEGER || x.physical + x.length > Number.MAX_SAFE_INTEGER) throw new PayloadError('extent beyond 2^53');
        if (x.logical < (extents.at(-1) ? extents.at(-1)!.logical + extents.at(-1)!.length : from)) throw new PayloadError('extents overlap, are unsorted or start before `from`');
        extents.push(x);
      }
      m = { type, fileId, inode, generation, path, disk, size, from, more: (fl & FILE_MORE) !== 0, rewritten: (fl & FILE_REWRITTEN) !== 0, extents };
      break;
    }
    case 'truncate': m = { type, fileId: r.u32(), size: r.u64() }; break;
    case 'remove': m = { type, fileId: r.u32(), reason: r.enumOf(REMOVE_REASON, 'remove reason') }; break;
    case 'heartbeat': m = { type, uptimeMs: r.u64(), files: r.u32(), pending: r.u32() }; break;
    case 'error': m = { type, code: r.enumOf(ERROR_CODE, 'error code'), refSeq: r.u32(), message: r.str(MAX_MESSAGE_BYTES) }; break;
    case 'shareStatus': {
      const refSeq = r.u32(), path = r.str(MAX_PATH_BYTES), status = r.enumOf(SHARE_STATUS, 'share status');
      m = { type, refSeq, path, status, fileId: r.u32(), message: r.str(MAX_MESSAGE_BYTES) };
      break;
    }
    case 'resyncDone': m = { type, files: r.u32() }; break;
    case 'flushDone': m = { type, refSeq: r.u32() }; break;
    case 'share': m = { type, path: r.str(MAX_PATH_BYTES) }; break;
    case 'unshare': m = { type, fileId: r.u32() }; break;
    case 'resync': case 'flush': m = { type }; break;
  }
  r.end();
  return m;
}

function truncateUtf8(s: string, max: number): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--; // do not cut a character
  return b.subarray(0, end).toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Frames

/** header: magic 'LM', version u8, type u8, seq u32, payload length u32, crc32(header[0..12] + payload) u32 */
export function encodeFrame(seq: number, msg: Message): Buffer {
  const payload = encodePayload(msg);
  checkInt(seq, 0xffffffff);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame[0] = MAGIC0;
  frame[1] = MAGIC1;
  frame[2] = PROTOCOL_VERSION;
  frame[3] = TYPE[msg.type];
  frame.writeUInt32LE(seq, 4);
  frame.writeUInt32LE(payload.length, 8);
  payload.copy(frame, HEADER_BYTES);
  frame.writeUInt32LE(frameCrc(frame.subarray(0, 12), payload), 12);
  return frame;
}

function frameCrc(head: Buffer, payload: Buffer): number {
  return crc32(payload, crc32(head)) >>> 0;
}

/** Splits an extent list into fileExtents messages that each fit a frame. */
export function splitFileExtents(base: Omit<MessageOf<'fileExtents'>, 'type' | 'more' | 'rewritten' | 'extents'> & { rewritten?: boolean }, extents: Extent[]): MessageOf<'fileExtents'>[] {
  const out: MessageOf<'fileExtents'>[] = [];
  let i = 0;
  do {
    const part = extents.slice(i, i + MAX_EXTENTS_PER_FRAME);
    i += part.length;
    const from = out.length === 0 ? base.from : part[0]!.logical;
    out.push({ type: 'fileExtents', ...base, rewritten: base.rewritten ?? false, from, more: i < extents.length, extents: part });
  } while (i < extents.length);
  return out;
}

export type DecodeEvent =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'error'; code: ErrorCode; message: string; seq: number };

/**
 * Incremental decoder for one direction of the stream. `accept` names the peer ('guest' decodes what
 * a guest sends). Never throws on input; memory is bounded by HEADER_BYTES + MAX_PAYLOAD + one chunk.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private hunting = false;
  /** bytes skipped while looking for a header; counted for diagnostics */
  skipped = 0;

  constructor(private readonly accept: 'guest' | 'host') {}

  /** Drops buffered bytes (after a reconnect: the old stream is gone). */
  reset(): void {
    this.buf = Buffer.alloc(0);
    this.hunting = false;
  }

  push(chunk: Buffer): DecodeEvent[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: DecodeEvent[] = [];
    for (;;) {
      if (this.buf.length < HEADER_BYTES) {
        // keep at most a partial header; while hunting, anything before a possible magic is dropped
        if (this.hunting) this.dropUntilMagic(0);
        break;
      }
      const b = this.buf;
      const fail = (message: string) => {
        if (!this.hunting) out.push({ kind: 'error', code: 'framing', message, seq: 0 });
        this.hunting = true;
        this.dropUntilMagic(1);
      };
      if (b[0] !== MAGIC0 || b[1] !== MAGIC1) { fail('bad magic'); continue; }
      const version = b[2]!;
      const len = b.readUInt32LE(8);
      if (len > MAX_PAYLOAD) { fail(`frame announces ${len} payload bytes (max ${MAX_PAYLOAD})`); continue; }
      if (version !== PROTOCOL_VERSION) { fail(`unsupported frame version ${version}`); continue; }
      if (b.length < HEADER_BYTES + len) break; // wait for the rest (bounded by MAX_PAYLOAD)
      const payload = b.subarray(HEADER_BYTES, HEADER_BYTES + len);
      if (frameCrc(b.subarray(0, 12), payload) !== b.readUInt32LE(12)) { fail('CRC mismatch'); continue; }
      // a valid frame: consume it whatever its content
      const typeCode = b[3]!;
      const seq = b.readUInt32LE(4);
      this.buf = b.subarray(HEADER_BYTES + len);
      this.hunting = false;
      const name = NAME_OF.get(typeCode);
      if (!name) { out.push({ kind: 'error', code: 'unknown-type', message: `unknown frame type 0x${typeCode.toString(16)}`, seq }); continue; }
      if (!(this.accept === 'guest' ? FROM_GUEST : FROM_HOST).has(name)) {
        out.push({ kind: 'error', code: 'wrong-direction', message: `${name} may not be sent by the ${this.accept}`, seq });
        continue;
      }
      try {
        out.push({ kind: 'frame', frame: { seq, msg: decodePayload(name, Buffer.from(payload)) } });
      } catch (e) {
        if (!(e instanceof PayloadError)) throw e;
        out.push({ kind: 'error', code: 'bad-payload', message: `${name}: ${e.message}`, seq });
      }
    }
    if (this.buf.length && this.buf.byteOffset > 0 && this.buf.buffer.byteLength > 4 * (this.buf.length + 4096)) {
      this.buf = Buffer.from(this.buf); // do not pin a large chunk for a small remainder
    }
    return out;
  }

  /** Skips at least `n` bytes, then up to the next possible magic. */
  private dropUntilMagic(n: number): void {
    let i = Math.min(n, this.buf.length);
    for (; i < this.buf.length; i++) {
      if (this.buf[i] === MAGIC0 && (i + 1 === this.buf.length || this.buf[i + 1] === MAGIC1)) break;
    }
    this.skipped += i;
    this.buf = this.buf.subarray(i);
  }
}
