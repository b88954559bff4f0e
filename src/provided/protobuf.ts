// The few protobuf wire-format pieces an fsimage needs (docs/hdfs.md, "PROVIDED export"): varints,
// fixed64, length-delimited fields, packed repeated varints, and the delimited framing Java's
// writeDelimitedTo uses. Hand-written because the image holds a handful of message types and the
// package has one runtime dependency; field numbers live next to each message in fsimage.ts.

/** A field value: numbers must be safe integers; bigint for anything beyond 2^53 (quotas, -1). */
export type Int = number | bigint;

function toBig(v: Int): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
  return BigInt(v);
}

export class ProtoWriter {
  private bytes: number[] = [];

  /** Unsigned varint of a 64-bit value (negative values as two's complement, 10 bytes, like Java). */
  varint(v: Int, bits: 32 | 64 = 64): this {
    let x = BigInt.asUintN(bits, toBig(v));
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
    return this;
  }

  private tag(field: number, wire: 0 | 1 | 2): this {
    return this.varint((field << 3) | wire);
  }

  /** uint64 / enum / bool field. */
  uint64(field: number, v: Int): this {
    return this.tag(field, 0).varint(v, 64);
  }

  /** uint32 field: Java writes a negative int as its unsigned 32-bit value (5 bytes). */
  uint32(field: number, v: Int): this {
    return this.tag(field, 0).varint(v, 32);
  }

  fixed64(field: number, v: Int): this {
    this.tag(field, 1);
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, toBig(v)));
    this.bytes.push(...b);
    return this;
  }

  /** bytes / string (UTF-8) / embedded message field. */
  bytesField(field: number, v: Uint8Array | string | ProtoWriter): this {
    const b = v instanceof ProtoWriter ? v.finish() : typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.bytes.push(x);
    return this;
  }

  /** packed repeated uint64. */
  packed(field: number, values: Int[]): this {
    if (values.length === 0) return this;
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    return this.bytesField(field, inner);
  }

  finish(): Buffer {
    return Buffer.from(this.bytes);
  }
}

/** A message with its varint length in front (Java's writeDelimitedTo / parseDelimitedFrom). */
export function delimited(message: ProtoWriter | Buffer): Buffer {
  const body = message instanceof ProtoWriter ? message.finish() : message;
  return Buffer.concat([new ProtoWriter().varint(body.length).finish(), body]);
}
