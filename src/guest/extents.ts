// Turns FIEMAP answers into protocol extents: disk-relative byte offsets with flags. Delayed
// allocation is resolved by asking again with FIEMAP_FLAG_SYNC (which writes the file back first);
// what is still delayed is reported as pending (data without a disk location, never a hole);
// extents whose bytes are not a plain disk range are marked unmappable, never guessed.
import { EXTENT_PENDING, EXTENT_SHARED, EXTENT_UNMAPPABLE, EXTENT_UNWRITTEN, type Extent } from './protocol.js';
import { FIEMAP_EXTENT as F, native } from './native.js';

const NOT_A_DISK_RANGE = F.UNKNOWN | F.ENCODED | F.DATA_ENCRYPTED | F.NOT_ALIGNED | F.DATA_INLINE | F.DATA_TAIL;
const WHOLE_FILE = Number.MAX_SAFE_INTEGER;
const SYNC_RETRIES = 3;

export interface FileMap {
  extents: Extent[];
  /** bytes still in delayed allocation (no disk location yet: pending extents) */
  delalloc: number;
}

/** Maps the whole file. fsOffset = where the filesystem starts on the disk. */
export function mapFile(fd: number, fsOffset: number, sync: boolean): FileMap {
  const nat = native();
  for (let attempt = 0; ; attempt++) {
    const raw = fiemapAll(fd, sync ? nat.FIEMAP_FLAG_SYNC : 0);
    const map = convert(raw, fsOffset);
    // delalloc after a sync: writeback raced with new writes; ask again (bounded)
    if (!sync || map.delalloc === 0 || attempt + 1 >= SYNC_RETRIES) return map;
  }
}

function fiemapAll(fd: number, flags: number) {
  const nat = native();
  const out = nat.fiemap(fd, flags, 0, WHOLE_FILE);
  // the addon stops at 65536 extents per call: continue from the last one
  while (out.length && !(out.at(-1)!.flags & F.LAST) && out.length % 65536 === 0) {
    const last = out.at(-1)!;
    const more = nat.fiemap(fd, 0, last.logical + last.length, WHOLE_FILE);
    if (!more.length) break;
    out.push(...more);
  }
  return out;
}

/** FIEMAP extents (fs-relative) → protocol extents (disk-relative), adjacent ones merged. */
export function convert(raw: { logical: number; physical: number; length: number; flags: number }[], fsOffset: number): FileMap {
  const extents: Extent[] = [];
  let delalloc = 0;
  for (const r of raw) {
    let flags = 0;
    let physical = fsOffset + r.physical;
    if (r.flags & F.DELALLOC) {
      // the bytes exist in the guest's page cache only: pending, never a hole (which reads as zeros)
      delalloc += r.length;
      flags = EXTENT_PENDING;
      physical = 0;
    } else {
      if (r.flags & NOT_A_DISK_RANGE) { flags |= EXTENT_UNMAPPABLE; physical = 0; }
      if (r.flags & F.UNWRITTEN) flags |= EXTENT_UNWRITTEN;
      if (r.flags & F.SHARED) flags |= EXTENT_SHARED;
    }
    const prev = extents.at(-1);
    if (prev && prev.flags === flags && prev.logical + prev.length === r.logical &&
      (flags & EXTENT_PENDING || (!(flags & EXTENT_UNMAPPABLE) && prev.physical + prev.length === physical))) {
      prev.length += r.length;
    } else {
      extents.push({ logical: r.logical, physical, length: r.length, flags });
    }
  }
  return { extents, delalloc };
}

/** First logical offset where two extent lists differ (Infinity when equal). */
export function firstDifference(a: Extent[], b: Extent[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.logical !== y.logical || x.physical !== y.physical || x.flags !== y.flags) return Math.min(x.logical, y.logical);
    if (x.length !== y.length) return Math.min(x.logical + x.length, y.logical + y.length);
  }
  if (a.length !== b.length) return (a.length > n ? a[n]! : b[n]!).logical;
  return Infinity;
}

/** Number of physically contiguous runs among the extents at logical ≥ from. */
export function runsFrom(extents: Extent[], from: number): number {
  let runs = 0;
  let prev: Extent | undefined;
  for (const x of extents) {
    if (x.logical + x.length <= from) continue;
    if (!prev || prev.logical + prev.length !== x.logical || prev.physical + prev.length !== x.physical) runs++;
    prev = x;
  }
  return runs;
}
