// XDR (RFC 4506) encoding, only the parts libvirt's RPC uses: 32-bit ints, 64-bit hypers, doubles,
// bools, bounded strings/opaques, fixed opaques, optional data (XDR "pointers") and bounded arrays.
// Every read is bounds-checked and every declared length is checked against the schema's maximum
// before anything is allocated, so a hostile or corrupt peer cannot make us allocate or over-read.
import { LibvirtProtocolError } from './errors.js';

const pad4 = (n: number) => (4 - (n % 4)) % 4;

export class XdrWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`XDR int out of range: ${v}`);
    this.room(4);
    this.buf.writeInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`XDR unsigned int out of range: ${v}`);
    this.room(4);
    this.buf.writeUInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  hyper(v: number | bigint): this {
    this.room(8);
    this.buf.writeBigInt64BE(BigInt(v), this.len);
    this.len += 8;
    return this;
  }

  uhyper(v: number | bigint): this {
    const b = BigInt(v);
    if (b < 0n) throw new RangeError(`XDR unsigned hyper out of range: ${v}`);
    this.room(8);
    this.buf.writeBigUInt64BE(b, this.len);
    this.len += 8;
    return this;
  }

  double(v: number): this {
    this.room(8);
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  /** Variable-length opaque: length, bytes, zero padding to 4. */
  opaque(data: Buffer, max: number): this {
    if (data.length > max) throw new RangeError(`XDR opaque of ${data.length} bytes exceeds its maximum ${max}`);
    this.uint(data.length);
    return this.fixedOpaque(data, data.length);
  }

  /** Fixed-length opaque: exactly `length` bytes, zero padding to 4. */
  fixedOpaque(data: Buffer, length: number): this {
    if (data.length !== length) throw new RangeError(`XDR fixed opaque must be ${length} bytes, got ${data.length}`);
    const p = pad4(length);
    this.room(length + p);
    data.copy(this.buf, this.len);
    this.buf.fill(0, this.len + length, this.len + length + p);
    this.len += length + p;
    return this;
  }

  string(s: string, max: number): this {
    return this.opaque(Buffer.from(s, 'utf8'), max);
  }

  /** XDR optional-data ("pointer"): a bool, then the value if present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], max: number, write: (w: this, v: T) => void): this {
    if (items.length > max) throw new RangeError(`XDR array of ${items.length} items exceeds its maximum ${max}`);
    this.uint(items.length);
    for (const it of items) write(this, it);
    return this;
  }

  get length(): number {
    return this.len;
  }

  /** The bytes written so far (a copy, so the writer can be reused). */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

export class XdrReader {
  private pos = 0;

  constructor(private readonly buf: Buffer, private readonly what = 'message') {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new LibvirtProtocolError(`truncated ${this.what}: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }

  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new LibvirtProtocolError(`bad XDR bool ${v} in ${this.what}`);
    return v === 1;
  }

  fixedOpaque(length: number): Buffer {
    const p = pad4(length);
    this.need(length + p);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + length));
    this.pos += length + p;
    return v;
  }

  opaque(max: number): Buffer {
    const n = this.uint();
    if (n > max) throw new LibvirtProtocolError(`XDR opaque length ${n} exceeds its maximum ${max} in ${this.what}`);
    return this.fixedOpaque(n);
  }

  string(max: number): string {
    return this.opaque(max).toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  array<T>(max: number, read: (r: this) => T): T[] {
    const n = this.uint();
    if (n > max) throw new LibvirtProtocolError(`XDR array length ${n} exceeds its maximum ${max} in ${this.what}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Every byte must have been consumed: trailing data means we and the peer disagree on the schema. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new LibvirtProtocolError(`${this.buf.length - this.pos} unexpected trailing bytes in ${this.what}`);
    }
  }
}
