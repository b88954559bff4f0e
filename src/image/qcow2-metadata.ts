// Which host clusters of a qcow2 file hold the image's own metadata (docs/image.md, "Metadata is
// never guest data"): the header, the active and every snapshot's L1 table and the L2 tables they
// point at, the refcount table and its blocks, the snapshot table, the bitmap directory, bitmap
// tables and bitmap data. A guest cluster that maps onto one of them is not guest data — QEMU freed
// it on a discard and reused it for a table since our metadata read, or the image is corrupt — so the
// mapper refuses it (ImageMetadataOverlapError) instead of handing it out as a file's bytes.
import { CorruptImageError } from './errors.js';
import type { ImageFile } from './file.js';
import { readSnapshotTable, type Qcow2Header } from './qcow2-header.js';

/** Bitmap table entries per bitmap are bounded like QEMU's (2^27 × 8 bytes = 1 GiB is its limit; far more than a table read may be). */
const MAX_BITMAP_TABLE_BYTES = 64 * 1024 * 1024;

/** Sorted, disjoint host ranges [start, end), each named by the structure it holds. */
export class MetadataMap {
  private constructor(private readonly starts: Float64Array, private readonly ends: Float64Array, private readonly kinds: string[]) {}

  static build(ranges: { start: number; end: number; kind: string }[]): MetadataMap {
    ranges.sort((a, b) => a.start - b.start);
    const s: number[] = [], e: number[] = [], k: string[] = [];
    for (const r of ranges) {
      if (r.end <= r.start) continue;
      const last = e.length - 1;
      if (last >= 0 && r.start < e[last]!) {
        if (r.end > e[last]!) e[last] = r.end; // overlapping structures: the first one names the range
        continue;
      }
      s.push(r.start); e.push(r.end); k.push(r.kind);
    }
    return new MetadataMap(Float64Array.from(s), Float64Array.from(e), k);
  }

  /** how many disjoint ranges */
  get size(): number { return this.starts.length; }

  /** The first metadata range overlapping [offset, offset + length), if any. */
  find(offset: number, length: number): { start: number; kind: string } | undefined {
    // first range whose end is past offset
    let lo = 0, hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! <= offset) lo = mid + 1; else hi = mid;
    }
    if (lo < this.starts.length && this.starts[lo]! < offset + length) return { start: Math.max(offset, this.starts[lo]!), kind: this.kinds[lo]! };
    return undefined;
  }
}

/** Offsets (bits 9–55) of the non-zero 8-byte entries of an L1, refcount or bitmap table. */
function tableOffsets(table: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 8 <= table.length; at += 8) {
    const hi = table.readUInt32BE(at) & 0x00ffffff, lo = table.readUInt32BE(at + 4) & 0xfffffe00;
    const off = hi * 4294967296 + (lo >>> 0);
    if (off !== 0) out.push(off);
  }
  return out;
}

const roundUp = (n: number, cs: number) => Math.ceil(n / cs) * cs;

/**
 * What stays the same while the snapshot table and the bitmap directory do not move (QEMU writes a
 * new table elsewhere whenever it changes either): their ranges are read once per location.
 */
export interface MetadataCache {
  snapshots?: { key: string; ranges: { start: number; end: number; kind: string }[] };
  bitmaps?: { key: string; ranges: { start: number; end: number; kind: string }[] };
}

/** Reads the metadata map of `file` as its header `h` and its active L1 table `l1` describe it now. */
export async function readMetadataMap(file: ImageFile, h: Qcow2Header, l1: Buffer, cache: MetadataCache): Promise<MetadataMap> {
  const cs = h.clusterSize;
  const ranges: { start: number; end: number; kind: string }[] = [];
  const table = (start: number, bytes: number, kind: string, into = ranges) => into.push({ start, end: start + roundUp(Math.max(bytes, 1), cs), kind });
  table(0, h.headerEnd, 'header');
  table(h.l1TableOffset, h.l1Size * 8, 'L1 table');
  for (const off of tableOffsets(l1)) table(off, cs, 'L2 table');
  if (h.refcountTableClusters > 0) {
    const rt = await file.readMeta(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table');
    table(h.refcountTableOffset, rt.length, 'refcount table');
    for (const off of tableOffsets(rt)) table(off, cs, 'refcount block');
  }
  if (h.nbSnapshots > 0) {
    const key = `${h.snapshotsOffset}:${h.nbSnapshots}`;
    if (cache.snapshots?.key !== key) {
      const own: typeof ranges = [];
      const { snapshots, bytes } = await readSnapshotTable(file, h);
      table(h.snapshotsOffset, bytes, 'snapshot table', own);
      for (const s of snapshots) {
        if (s.l1Size === 0) continue;
        table(s.l1TableOffset, s.l1Size * 8, 'snapshot L1 table', own);
        const sl1 = await file.readMeta(s.l1TableOffset, s.l1Size * 8, 'snapshot L1 table');
        for (const off of tableOffsets(sl1)) table(off, cs, 'L2 table', own);
      }
      cache.snapshots = { key, ranges: own };
    }
    ranges.push(...cache.snapshots.ranges);
  }
  const bd = h.bitmapDirectory;
  if (bd && bd.size > 0) {
    const key = `${bd.offset}:${bd.size}:${bd.count}`;
    if (cache.bitmaps?.key !== key) {
      const own: typeof ranges = [];
      const dir = await file.readMeta(bd.offset, bd.size, 'bitmap directory');
      table(bd.offset, bd.size, 'bitmap directory', own);
      let at = 0;
      for (let i = 0; i < bd.count && at + 24 <= dir.length; i++) {
        const hi = dir.readUInt32BE(at), lo = dir.readUInt32BE(at + 4);
        if (hi > 0x1fffff) throw new CorruptImageError(`bitmap ${i} table offset beyond 2^53`, bd.offset + at, file.path);
        const tableOffset = hi * 4294967296 + lo;
        const entries = dir.readUInt32BE(at + 8);
        const nameSize = dir.readUInt16BE(at + 18), extra = dir.readUInt32BE(at + 20);
        if (entries * 8 > MAX_BITMAP_TABLE_BYTES) throw new CorruptImageError(`bitmap ${i} table is too large`, bd.offset + at + 8, file.path);
        if (entries > 0) {
          table(tableOffset, entries * 8, 'bitmap table', own);
          const bt = await file.readMeta(tableOffset, entries * 8, 'bitmap table');
          for (const off of tableOffsets(bt)) table(off, cs, 'bitmap data', own);
        }
        at += Math.ceil((24 + extra + nameSize) / 8) * 8;
      }
      cache.bitmaps = { key, ranges: own };
    }
    ranges.push(...cache.bitmaps.ranges);
  }
  return MetadataMap.build(ranges);
}
