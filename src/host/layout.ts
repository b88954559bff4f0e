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
//   extent → a metadata cluster       → pending ('metadata'): a table of the image, never the guest's
//                                      bytes (a discarded cluster QEMU reused; docs/host.md)
//   unmappable extent (inline, ...)   → refused
// Past the servable length the layout still says what the image maps each byte to (`after`), so
// that publish can cut bytes already served whose clusters the image no longer maps there.
import type { SegmentSpec } from '../fs/index.js';
import { ImageMetadataOverlapError, type Extent as ImageExtent, type ImageMapper } from '../image/index.js';
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
  /**
   * what the image maps [servable, size) to now: segments, and `pending` where nothing may be
   * served (publish keeps a served byte there only if it is zeros or still maps to the same place)
   */
  after: LayoutPiece[];
  /** why the file cannot be served at all */
  refused?: string;
}

export type LayoutPiece = SegmentSpec | { pending: true; length: number };

export type PendingRange =
  | { why: 'guest'; at: number; length: number }
  | { why: 'image'; at: number; length: number; start: number }
  /** the image maps these bytes onto its own metadata (`structure`): withheld, never served */
  | { why: 'metadata'; at: number; length: number; start: number; structure: string };

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
  const after: LayoutPiece[] = [];
  const pending: PendingRange[] = [];
  let at = 0; // next file offset to describe
  let servable = -1;
  const push = (s: LayoutPiece) => {
    const list: LayoutPiece[] = servable < 0 ? segments : after;
    const prev = list[list.length - 1];
    if (prev && 'zero' in prev && 'zero' in s) prev.length += s.length;
    else if (prev && 'pending' in prev && 'pending' in s) prev.length += s.length;
    else if (prev && 'file' in prev && 'file' in s && prev.file === s.file && prev.offset + prev.length === s.offset) prev.length += s.length;
    else list.push({ ...s });
  };
  const zeros = (n: number) => { if (n > 0) push({ zero: true, length: n }); };
  const wait = (n: number, fileOff: number) => {
    if (servable < 0) servable = fileOff;
    push({ pending: true, length: n });
  };
  const refuse = (refused: string): FileLayout => ({ segments: [], servable: 0, pending: [], after: [], refused });

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
    zeros(x.logical - at); // hole
    at = x.logical + len;
    if (x.flags & EXTENT_UNMAPPABLE) return refuse(`data at file offset ${x.logical} is not a plain disk range (inline/encoded)`);
    if (x.flags & EXTENT_PENDING) {
      // delayed allocation: the bytes exist in the guest only; never zeros
      pending.push({ why: 'guest', at: x.logical, length: len });
      wait(len, x.logical);
      continue;
    }
    if (x.flags & EXTENT_UNWRITTEN) {
      zeros(len);
      continue;
    }
    const { mapped, overlap } = await mapAvoidingMetadata(mapper, x.physical, len);
    let fileOff = x.logical;
    for (const e of mapped) {
      if (e.kind === 'compressed') return refuse(`file offset ${fileOff} is in a compressed qcow2 cluster (not zero-copy readable)`);
      if (e.kind === 'unallocated') {
        pending.push({ why: 'image', at: fileOff, length: e.length, start: e.start });
        wait(e.length, fileOff);
      } else if (e.kind === 'data') {
        push({ file: e.file, offset: e.fileOffset, length: e.length });
      } else {
        zeros(e.length);
      }
      fileOff += e.length;
    }
    if (overlap) {
      const n = x.logical + len - fileOff;
      pending.push({ why: 'metadata', at: fileOff, length: n, start: overlap.guestOffset, structure: overlap.structure });
      wait(n, fileOff);
    }
  }
  zeros(size - at); // trailing hole
  if (servable < 0) servable = size;
  return { segments, servable, pending, after };
}

/**
 * mapper.map, except that a range the image maps onto its own metadata ends the answer there:
 * `mapped` covers [start, overlap.guestOffset) and the rest is withheld.
 */
async function mapAvoidingMetadata(mapper: ImageMapper, start: number, length: number): Promise<{ mapped: ImageExtent[]; overlap?: ImageMetadataOverlapError }> {
  try {
    return { mapped: await mapper.map(start, length) };
  } catch (e) {
    if (!(e instanceof ImageMetadataOverlapError) || e.guestOffset < start || e.guestOffset >= start + length) throw e;
    const head = e.guestOffset - start;
    // the part before the overlap is mapped alone (it may overlap nothing)
    const before = head > 0 ? await mapAvoidingMetadata(mapper, start, head) : { mapped: [] };
    return before.overlap ? before : { mapped: before.mapped, overlap: e };
  }
}
