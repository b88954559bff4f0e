// The checker's model of one guest file: its size and, per byte range, whose pattern it holds
// (key k, generation g) or zero (k = 0; keys start at 1). Adjacent ranges of the same (k, g) merge,
// since a pattern byte depends on its offset only.
import { pattern } from './pattern.js';

export interface Seg { s: number; e: number; k: number; g: number }

export class FileModel {
  segs: Seg[] = [];
  size = 0;
  constructor(readonly key: number) {}

  clone(key = this.key): FileModel {
    const m = new FileModel(key);
    m.segs = this.segs.map((x) => ({ ...x }));
    m.size = this.size;
    return m;
  }

  /** Sets [s, e) to (k, g); a gap past the end becomes zeros. */
  put(s: number, e: number, k: number, g: number): void {
    if (e <= s) return;
    if (s > this.size) this.put(this.size, s, 0, 0);
    const out: Seg[] = [];
    for (const x of this.segs) {
      if (x.e <= s || x.s >= e) { out.push(x); continue; }
      if (x.s < s) out.push({ s: x.s, e: s, k: x.k, g: x.g });
      if (x.e > e) out.push({ s: e, e: x.e, k: x.k, g: x.g });
    }
    out.push({ s, e, k, g });
    out.sort((a, b) => a.s - b.s);
    this.segs = [];
    for (const x of out) {
      const last = this.segs[this.segs.length - 1];
      if (last && last.e === x.s && last.k === x.k && last.g === x.g) last.e = x.e;
      else this.segs.push(x);
    }
    this.size = Math.max(this.size, e);
  }

  setSize(size: number): void {
    if (size >= this.size) { this.put(this.size, size, 0, 0); return; }
    this.segs = this.segs.filter((x) => x.s < size);
    const last = this.segs[this.segs.length - 1];
    if (last && last.e > size) last.e = size;
    this.size = size;
  }

  /** The segments overlapping [s, e), clipped. */
  slice(s: number, e: number): Seg[] {
    const out: Seg[] = [];
    for (const x of this.segs) if (x.e > s && x.s < e) out.push({ s: Math.max(s, x.s), e: Math.min(e, x.e), k: x.k, g: x.g });
    return out;
  }

  /** The bytes of [s, e) (must be inside the size). */
  bytes(s: number, e: number): Buffer {
    const b = Buffer.alloc(e - s);
    for (const x of this.slice(s, e)) if (x.k) pattern(x.k, x.g, x.s, x.e - x.s).copy(b, x.s - s);
    return b;
  }
}
