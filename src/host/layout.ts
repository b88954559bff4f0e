// Turns what the guest says about a file (its size and disk-relative extents, reported after a
// FIEMAP sync) into the segments of its composed file, using the image mapper of that disk.
// Pure translation: no state, no I/O besides the mapper's metadata reads.
//
// Zero fill only where the guest's bytes really are zeros; anything not known yet is pending, and
// the servable length stops at the first pending byte (docs/host.md, "Consistency"):
//   file hole / unwritten extent      → zero fill
//   pending extent (delalloc)         → pending: the guest has the bytes, the disk not yet
//   extent → image data               → segment of the image file (zero-copy)
//   extent → zero cluster             → zero fill
//   extent → allocated nowhere        → pending: QEMU has not written its clusters yet. The servable
//                                      length stops there until an invalidation resolves it.
//   extent → compressed cluster       → refused: its bytes exist only decompressed
//   unmappable extent (inline, ...)   → refused
import type { SegmentSpec } from '../fs/index.js';
import type { ImageMapper } from '../image/index.js';
import { LiveMrError } from '../errors/index.js';
import { EXTENT_PENDING, EXTENT_UNMAPPABLE, EXTENT_UNWRITTEN, type Extent } from '../guest/index.js';

export interface FileLayout {
  /** segments for [0, servable) */
  segments: SegmentSpec[];
  /** bytes of the file that can be served now: the file size, or where the first pending byte is */
  servable: number;
  /**
   * ranges that wait: file offset and length, and why — the guest has not allocated them yet
   * ('guest'), or QEMU has not written the clusters' metadata yet ('image', at guest-disk `start`)
   */
  pending: PendingRange[];
  /** why the file cannot be served at all */
  refused?: string;
}

export type PendingRange =
  | { why: 'guest'; at: number; length: number }
  | { why: 'image'; at: number; length: number; start: number };

/** Extents that cannot be laid out (HOST_LAYOUT), or a guest path the agent refuses to ask for. */
export class LayoutError extends LiveMrError {
  override name = 'LayoutError';
  constructor(message: string, override readonly code: 'HOST_LAYOUT' | 'HOST_BAD_GUEST_PATH' = 'HOST_LAYOUT') {
    super(message);
  }
}

/**
 * @param size     the file's size in the guest
 * @param extents  sorted by logical offset, disk-relative physical offsets
 * @param mapper   the image mapper of the disk the file lives on
 */
export async function layoutFile(size: number, extents: readonly Extent[], mapper: ImageMapper): Promise<FileLayout> {
  const segments: SegmentSpec[] = [];
  const pending: PendingRange[] = [];
  let at = 0; // next file offset to describe
  let servable = -1;
  const push = (s: SegmentSpec) => {
    const prev = segments[segments.length - 1];
    if (prev && 'zero' in prev && 'zero' in s) prev.length += s.length;
    else if (prev && !('zero' in prev) && !('zero' in s) && prev.file === s.file && prev.offset + prev.length === s.offset) prev.length += s.length;
    else segments.push(s);
  };
  const zeros = (n: number) => { if (n > 0) push({ zero: true, length: n }); };

  for (const x of extents) {
    if (x.logical >= size) break;
    if (x.logical < at) throw new LayoutError(`extents overlap or are unsorted at file offset ${x.logical}`);
    if (x.length <= 0) throw new LayoutError(`empty extent at file offset ${x.logical}`);
    const located = !(x.flags & (EXTENT_PENDING | EXTENT_UNMAPPABLE));
    // the guest names only byte ranges inside its own disk
    if (located && (x.physical < 0 || x.physical + x.length > mapper.size)) {
      throw new LayoutError(`extent ${x.physical}+${x.length} lies outside the disk (${mapper.size} bytes)`);
    }
    const len = Math.min(x.length, size - x.logical);
    if (servable < 0) zeros(x.logical - at); // hole
    at = x.logical + len;
    if (x.flags & EXTENT_UNMAPPABLE) return { segments: [], servable: 0, pending: [], refused: `data at file offset ${x.logical} is not a plain disk range (inline/encoded)` };
    if (x.flags & EXTENT_PENDING) {
      // delayed allocation: the bytes exist in the guest only; never zeros
      pending.push({ why: 'guest', at: x.logical, length: len });
      if (servable < 0) servable = x.logical;
      continue;
    }
    if (x.flags & EXTENT_UNWRITTEN) {
      if (servable < 0) zeros(len);
      continue;
    }
    let fileOff = x.logical;
    for (const e of await mapper.map(x.physical, len)) {
      if (e.kind === 'compressed') {
        return { segments: [], servable: 0, pending: [], refused: `file offset ${fileOff} is in a compressed qcow2 cluster (not zero-copy readable)` };
      }
      if (e.kind === 'unallocated') {
        pending.push({ why: 'image', at: fileOff, length: e.length, start: e.start });
        if (servable < 0) servable = fileOff;
      } else if (servable < 0) {
        if (e.kind === 'data') push({ file: e.file, offset: e.fileOffset, length: e.length });
        else zeros(e.length);
      }
      fileOff += e.length;
    }
  }
  if (servable < 0) {
    zeros(size - at); // trailing hole
    servable = size;
  }
  return { segments, servable, pending };
}
