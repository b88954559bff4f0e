// The segment list of one composed file: an ordered, gap-free run of segments, each either a byte
// range of a source file or zero fill. Kept as packed columns (20 bytes a segment) so that a file of
// millions of segments stays small and can be handed to the native addon as typed arrays.
//
//   coff[i]  where segment i starts in the composed file (coff[0] = 0, strictly increasing)
//   foff[i]  where it starts in its source file (0 for zero fill)
//   src[i]   index of its source file, or ZERO_SOURCE
//   length of segment i = coff[i+1] - coff[i], the last one ends at `size`
//
// Offsets are doubles holding exact integers below 2^53 (8 PiB), checked on every insert.

import { FsError } from './errors.js';

export const ZERO_SOURCE = 0xffffffff;
const MAX = Number.MAX_SAFE_INTEGER;

export interface SegmentView {
  /** offset in the composed file */
  at: number;
  /** source index, or ZERO_SOURCE */
  source: number;
  /** offset in the source file (0 for zero fill) */
  offset: number;
  length: number;
}

/** What the native addon copies: columns of the first `n` segments. */
export interface SegmentTable {
  n: number;
  size: number;
  coff: Float64Array;
  foff: Float64Array;
  src: Uint32Array;
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EBADSEGMENT', `bad offset ${offset}`);
  if (!Number.isSafeInteger(length) || length <= 0) throw new FsError('EBADSEGMENT', `bad length ${length}`);
  if (offset + length > MAX) throw new FsError('ETOOBIG', `segment end ${offset}+${length} is beyond 2^53`);
}

export class SegmentList {
  private shrinkListeners: ((size: number) => void)[] = [];
  private coff = new Float64Array(4);
  private foff = new Float64Array(4);
  private src = new Uint32Array(4);
  private n = 0;
  private end = 0;

  get count(): number {
    return this.n;
  }

  get size(): number {
    return this.end;
  }

  /** Bytes held by the columns (capacity included). */
  get bytes(): number {
    return this.coff.byteLength + this.foff.byteLength + this.src.byteLength;
  }

  lengthOf(i: number): number {
    return (i + 1 < this.n ? this.coff[i + 1]! : this.end) - this.coff[i]!;
  }

  get(i: number): SegmentView {
    if (!(i >= 0 && i < this.n)) throw new RangeError(`segment ${i} of ${this.n}`);
    return { at: this.coff[i]!, source: this.src[i]!, offset: this.foff[i]!, length: this.lengthOf(i) };
  }

  *[Symbol.iterator](): IterableIterator<SegmentView> {
    for (let i = 0; i < this.n; i++) yield this.get(i);
  }

  /** Index of the segment holding composed offset pos (0 <= pos < size). O(log n). */
  find(pos: number): number {
    if (!(pos >= 0 && pos < this.end)) throw new RangeError(`offset ${pos} outside 0..${this.end}`);
    let lo = 0;
    let hi = this.n; // coff[lo] <= pos < coff[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (this.coff[mid]! <= pos) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Appends a segment at the end, merging it into the last one when it continues it. */
  append(source: number, offset: number, length: number): void {
    if (source === ZERO_SOURCE) offset = 0;
    checkRange(offset, length);
    if (this.end + length > MAX) throw new FsError('ETOOBIG', `composed size would exceed 2^53`);
    const last = this.n - 1;
    if (last >= 0 && this.continues(last, source, offset)) {
      this.end += length;
      return;
    }
    this.reserve(this.n + 1);
    this.coff[this.n] = this.end;
    this.foff[this.n] = offset;
    this.src[this.n] = source;
    this.n++;
    this.end += length;
  }

  /**
   * Places a source range into a zero-fill region at composed offset `at` (a guest file's hole that
   * got allocated). Merges with the neighbours it continues, on either or both sides.
   */
  fill(at: number, source: number, offset: number, length: number): void {
    checkRange(offset, length);
    if (source === ZERO_SOURCE) throw new FsError('EBADSEGMENT', 'fill() places data, not zeros');
    if (!Number.isSafeInteger(at) || at < 0 || at + length > this.end)
      throw new FsError('ENOTHOLE', `range ${at}+${length} is not inside the file (size ${this.end})`);
    const i = this.find(at);
    const zStart = this.coff[i]!;
    const zEnd = zStart + this.lengthOf(i);
    if (this.src[i] !== ZERO_SOURCE || at + length > zEnd)
      throw new FsError('ENOTHOLE', `range ${at}+${length} is not inside one zero-fill segment`);
    type Entry = [src: number, foff: number, len: number];
    const mid: Entry = [source, offset, length];
    const out: Entry[] = [];
    let lo = i;
    let hi = i + 1;
    if (at > zStart) out.push([ZERO_SOURCE, 0, at - zStart]);
    else if (i > 0 && this.continues(i - 1, source, offset)) {
      lo = i - 1;
      mid[1] = this.foff[i - 1]!;
      mid[2] += this.lengthOf(i - 1);
    }
    out.push(mid);
    if (at + length < zEnd) out.push([ZERO_SOURCE, 0, zEnd - at - length]);
    else if (i + 1 < this.n && this.src[i + 1] === source && this.foff[i + 1] === offset + length) {
      hi = i + 2;
      mid[2] += this.lengthOf(i + 1);
    }
    this.splice(lo, hi, out);
  }

  /**
   * Calls `listener(newSize)` synchronously after every shrink (a removal is a shrink to 0), so a
   * reader whose bytes are in flight outside JavaScript can stop them before the shrink's caller
   * goes on (the sendfile OPEN path). Returns the unsubscribe function.
   */
  onShrink(listener: (size: number) => void): () => void {
    this.shrinkListeners.push(listener);
    return () => {
      this.shrinkListeners = this.shrinkListeners.filter((l) => l !== listener);
    };
  }

  /** Cuts the file to `length` bytes, or extends it with zeros. */
  truncate(length: number): void {
    if (!Number.isSafeInteger(length) || length < 0) throw new FsError('EBADSEGMENT', `bad length ${length}`);
    if (length > this.end) {
      this.append(ZERO_SOURCE, 0, length - this.end);
      return;
    }
    if (length === this.end) return;
    if (length === 0) {
      this.n = 0;
      this.end = 0;
    } else {
      const i = this.find(length);
      this.n = this.coff[i] === length ? i : i + 1;
      this.end = length;
    }
    for (const l of this.shrinkListeners) l(length);
  }

  /** The first `count` segments as columns (views, not copies). */
  table(): SegmentTable {
    return {
      n: this.n,
      size: this.end,
      coff: this.coff.subarray(0, this.n),
      foff: this.foff.subarray(0, this.n),
      src: this.src.subarray(0, this.n),
    };
  }

  /** Drops spare capacity (after loading a large file). */
  compact(): void {
    this.resize(Math.max(this.n, 4));
  }

  private continues(i: number, source: number, offset: number): boolean {
    if (this.src[i] !== source) return false;
    return source === ZERO_SOURCE || this.foff[i]! + this.lengthOf(i) === offset;
  }

  /** Replaces segments lo..hi-1 by `entries` covering the same composed bytes. */
  private splice(lo: number, hi: number, entries: [number, number, number][]): void {
    const delta = entries.length - (hi - lo);
    this.reserve(this.n + delta);
    if (delta !== 0 && hi < this.n) {
      this.coff.copyWithin(hi + delta, hi, this.n);
      this.foff.copyWithin(hi + delta, hi, this.n);
      this.src.copyWithin(hi + delta, hi, this.n);
    }
    let at = this.coff[lo]!;
    entries.forEach(([s, f, len], k) => {
      this.coff[lo + k] = at;
      this.foff[lo + k] = f;
      this.src[lo + k] = s;
      at += len;
    });
    this.n += delta;
  }

  private reserve(want: number): void {
    if (want > this.coff.length) this.resize(Math.max(want, this.coff.length * 2));
  }

  private resize(cap: number): void {
    const grow = <T extends Float64Array | Uint32Array>(a: T, b: T): T => (b.set(a.subarray(0, this.n)), b);
    this.coff = grow(this.coff, new Float64Array(cap));
    this.foff = grow(this.foff, new Float64Array(cap));
    this.src = grow(this.src, new Uint32Array(cap));
  }
}
