// Applies file layouts to the composition store with LiveMR's consistency rules:
//  - content below a composed file's current size never changes while the guest file only grows:
//    new bytes are appended;
//  - the size only shrinks when the guest file shrank (truncate) — never because a tail is pending;
//    but a served byte past the servable point stays only if it is zeros or the image still maps it
//    to the same place: a cluster the image no longer maps there (discarded, perhaps reused) is cut;
//  - if the mapping of bytes already served changed (the guest rewrote the file elsewhere, a block
//    job moved clusters), the file is cut back to the first differing byte and regrown, which makes
//    the mount invalidate the kernel's cached pages from there;
//  - if the guest says bytes already served may have changed with their mapping unchanged (an
//    in-place write), the mount drops its cached pages from there (`changedFrom`): the next read
//    goes to the image, which holds the new bytes.
import type { CompositionStore, ResolvedSegment, SegmentSpec } from '../fs/index.js';
import type { FileLayout, LayoutPiece } from './layout.js';

export type PublishResult = 'created' | 'grown' | 'unchanged' | 'truncated' | 'remapped' | 'removed' | 'refused';

/** The segments of `segs` (which start at composed offset 0) covering [from, to). */
export function sliceSegments(segs: readonly SegmentSpec[], from: number, to: number): SegmentSpec[] {
  const out: SegmentSpec[] = [];
  let at = 0;
  for (const s of segs) {
    const end = at + s.length;
    const a = Math.max(at, from);
    const b = Math.min(end, to);
    if (a < b) out.push('zero' in s ? { zero: true, length: b - a } : { file: s.file, offset: s.offset + (a - at), length: b - a });
    at = end;
    if (at >= to) break;
  }
  return out;
}

/** First composed offset below `limit` where the two descriptions differ (limit if none). */
export function firstDifference(cur: readonly ResolvedSegment[], next: readonly SegmentSpec[], limit: number): number {
  let j = 0;
  let nAt = 0;
  for (const c of cur) {
    let pos = c.at;
    const end = Math.min(c.at + c.length, limit);
    while (pos < end) {
      while (j < next.length && nAt + next[j]!.length <= pos) nAt += next[j++]!.length;
      const n = next[j];
      if (!n) return pos;
      const nEnd = Math.min(nAt + n.length, end);
      const nZero = 'zero' in n;
      if (nZero !== (c.file === null)) return pos;
      if (!nZero && (n.file !== c.file || n.offset + (pos - nAt) !== c.offset + (pos - c.at))) return pos;
      pos = nEnd;
    }
    if (end >= limit) break;
  }
  return limit;
}

/**
 * First offset in [from, to) where `cur` serves bytes of an image file that `after` (which starts at
 * `from`) no longer maps to the same place — pending, zeros or elsewhere; `to` if none. Served zeros
 * point nowhere and always stay.
 */
export function firstMoved(cur: readonly ResolvedSegment[], after: readonly LayoutPiece[], from: number, to: number): number {
  let j = 0;
  let aAt = from;
  for (const c of cur) {
    if (c.file === null) continue;
    let pos = Math.max(c.at, from);
    const end = Math.min(c.at + c.length, to);
    while (pos < end) {
      while (j < after.length && aAt + after[j]!.length <= pos) aAt += after[j++]!.length;
      const a = after[j];
      if (!a || !('file' in a) || a.file !== c.file || a.offset + (pos - aAt) !== c.offset + (pos - c.at)) return pos;
      pos = Math.min(aAt + a.length, end);
    }
  }
  return to;
}

/** Where what `cur` serves stops being right for `layout` (`cur`'s size if nowhere). */
function firstInvalid(cur: readonly ResolvedSegment[], size: number, layout: FileLayout): number {
  const limit = Math.min(size, layout.servable);
  const keep = firstDifference(cur, layout.segments, limit);
  return keep < limit || layout.servable >= size ? keep : firstMoved(cur, layout.after, layout.servable, size);
}

/**
 * Whether what `name` serves now is still right for the guest file as `layout` describes it: the
 * file did not shrink below it and no served byte maps elsewhere (what publish would cut back).
 */
export function servedStillValid(store: CompositionStore, name: string, guestSize: number, layout: FileLayout): boolean {
  const existing = store.get(name);
  if (!existing) return true;
  if (layout.refused) return false;
  const cur = existing.segments.size;
  return guestSize >= cur && firstInvalid(store.segments(name), cur, layout) >= cur;
}

/** Where a remap began: what was served there and what is served now (for the agent's log). */
export interface RemapDetail {
  at: number;
  was?: ResolvedSegment;
  now?: SegmentSpec;
}

/**
 * @param changedFrom lowest file offset whose bytes the guest says may have changed since the last
 *                    publish (Infinity: none)
 * @param remap       filled in when the result is 'remapped'
 */
export function publish(store: CompositionStore, name: string, guestSize: number, layout: FileLayout, changedFrom = Infinity, remap?: RemapDetail): PublishResult {
  const existing = store.get(name);
  if (layout.refused) {
    if (existing) store.remove(name);
    return 'refused';
  }
  const target = layout.servable;
  if (!existing) {
    store.compose(name, sliceSegments(layout.segments, 0, target));
    return 'created';
  }
  const cur = existing.segments.size;
  const served = store.segments(name);
  let keep = firstInvalid(served, cur, layout);
  let result: PublishResult = 'unchanged';
  if (keep < cur && (keep < target || keep < Math.min(cur, guestSize))) {
    result = 'remapped';
    if (remap) Object.assign(remap, { at: keep, was: served.find((s) => s.at <= keep && keep < s.at + s.length), now: keep < target ? sliceSegments(layout.segments, keep, keep + 1)[0] : undefined });
  }
  if (guestSize < cur && keep > guestSize) keep = guestSize; // the guest file shrank
  const cut = keep < cur && (result === 'remapped' || guestSize < cur);
  if (cut) {
    if (result !== 'remapped') result = 'truncated';
  } else {
    keep = cur; // a pending tail never shrinks what is served
  }
  // content changed in place below what stays served: the page cache must not keep the old bytes
  if (changedFrom < keep) store.invalidate(name, changedFrom);
  if (target > keep) {
    const next = sliceSegments(layout.segments, keep, target);
    // a cut and regrowth in one step: no reader sees the file end at `keep` in between
    if (cut) store.replaceFrom(name, keep, next); else store.append(name, next);
    if (result === 'unchanged') result = 'grown';
  } else if (cut) {
    store.truncate(name, keep);
  }
  return result;
}
