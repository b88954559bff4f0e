// Decides what one report of a shared file tells the host. This is where the first promise is kept
// on the guest side (docs/protocol.md, "Reported sizes"):
//  - the size is read *before* the synced FIEMAP, so every byte below it was written before the
//    writeback started and is on the disk when FIEMAP_FLAG_SYNC returns; bytes appended while or
//    after the file is written back are reported next time, never described by this report;
//  - bytes still in delayed allocation after the sync are pending extents, never holes;
//  - `from` is where the host must re-read the mapping: the first changed extent, or the page the
//    last report ended in when the file grew or shrank (it was partly written);
//  - a shrink withdraws the whole file (`withdraw`: a truncate to 0 goes first) and the report
//    describes it again from 0: a file cut and rewritten into the same blocks (copytruncate and a
//    writer) looks to the helper like a cut to the size seen now, and every byte below the new end
//    may have changed in place;
//  - `rewritten` says the file was written since the last report: inotify says "modified", never
//    which bytes, so an in-place write can be anywhere and the host drops its cached pages of the
//    whole file (the mapping below `from` is unchanged, only content may be).
import { firstDifference } from './extents.js';
import { EXTENT_PENDING, EXTENT_UNMAPPABLE, type Extent } from './protocol.js';

/** Granularity of a partly written tail: the guest's page. */
export const PAGE_BYTES = 4096;

export interface Reported {
  extents: Extent[];
  size: number;
}

export interface ReportRequest {
  /** lowest offset the tracker saw change since the last report (Infinity: none) */
  from: number;
  /** the file was written (inotify): the change may be anywhere below the size */
  rewritten: boolean;
  /** send a frame even when nothing changed (new path after a rename) */
  force: boolean;
  /** a full report from offset 0 (resync) */
  full: boolean;
}

export interface ReportPlan {
  size: number;
  from: number;
  rewritten: boolean;
  /** the file shrank since the last report: the host withdraws it (truncate to 0) before this report */
  withdraw: boolean;
  /** extents at logical offsets ≥ from (the first one cut at from) */
  extents: Extent[];
}

/**
 * @param prev        what the host was told last
 * @param sizeBefore  the file size read before the synced FIEMAP
 * @param extents     the file's extents from FIEMAP with FIEMAP_FLAG_SYNC
 * @returns the report, or undefined when there is nothing to say
 */
export function planReport(prev: Reported, sizeBefore: number, extents: Extent[], req: ReportRequest): ReportPlan | undefined {
  const withdraw = sizeBefore < prev.size;
  const remapped = firstDifference(prev.extents, extents);
  const resized = sizeBefore !== prev.size ? alignDown(Math.min(sizeBefore, prev.size)) : Infinity;
  let from = Math.min(req.from, remapped, resized, req.full || withdraw ? 0 : Infinity);
  if (from === Infinity) {
    if (!req.force && !req.rewritten) return undefined;
    const last = prev.extents.at(-1);
    from = last ? last.logical + last.length : 0; // no new mapping: a frame with the new path / the rewrite only
  }
  return { size: sizeBefore, from, rewritten: req.rewritten, withdraw, extents: extentsFrom(extents, from) };
}

/**
 * Whether a report vouches for bytes written since the previous one — new or moved blocks, growth, a
 * write in place, a file described again after a shrink — and so must wait for a disk flush: only a
 * flush makes QEMU write the metadata that maps those bytes. A block the host already knows can move
 * without the guest seeing it: after an external snapshot (a new, empty top image) or an internal one
 * (a shared cluster) the next write copies its cluster elsewhere, a discard frees it. Until a flush the
 * new place is in QEMU's metadata cache only, and the host, reading the image file, would serve the
 * old place (zeros of the backing image's copy of a tail block, seen after a snapshot). A rename alone
 * vouches for nothing new. (docs/guest.md, "Guest cost".)
 */
export function needsDiskFlush(prev: Reported, extents: Extent[], plan: ReportPlan): boolean {
  return plan.size > prev.size || plan.rewritten || plan.withdraw || firstDifference(prev.extents, extents) !== Infinity;
}

/** The extents at logical offsets ≥ from, the one straddling `from` cut there. */
export function extentsFrom(extents: readonly Extent[], from: number): Extent[] {
  return extents.filter((x) => x.logical + x.length > from).map((x) => {
    if (x.logical >= from) return x;
    const cut = from - x.logical;
    const located = !(x.flags & (EXTENT_UNMAPPABLE | EXTENT_PENDING));
    return { ...x, logical: from, physical: located ? x.physical + cut : 0, length: x.length - cut };
  });
}

/** First offset of pending (delayed allocation) data below `size`, or Infinity. */
export function firstPending(extents: readonly Extent[], size: number): number {
  const x = extents.find((e) => e.flags & EXTENT_PENDING && e.logical < size);
  return x ? x.logical : Infinity;
}

/** The start of the guest page holding byte n. */
export function alignDown(n: number): number {
  return n - (n % PAGE_BYTES);
}
