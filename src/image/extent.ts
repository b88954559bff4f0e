// What the mapper answers: the guest range [start, start+length) of the whole chain, split into
// extents in guest order. `depth` is the chain index that decides the bytes (0 = top image).

export type ExtentKind = 'data' | 'zero' | 'compressed' | 'unallocated';

export type Extent =
  /** zero-copy readable: the guest bytes are `length` bytes of `file` at `fileOffset` */
  | { kind: 'data'; start: number; length: number; depth: number; file: string; fileOffset: number }
  /** reads as zeros; a preallocated zero cluster also names its host cluster */
  | { kind: 'zero'; start: number; length: number; depth: number; file?: string; fileOffset?: number }
  /** inside a compressed cluster stored at `fileOffset` (`compressedLength` bytes): only `read()` gives the bytes */
  | { kind: 'compressed'; start: number; length: number; depth: number; file: string; fileOffset: number; compressedLength: number }
  /**
   * Allocated nowhere in the chain (depth = the last layer consulted): reads as zeros. With
   * `followBacking: false` it means "not allocated in the top image; the backing chain decides".
   */
  | { kind: 'unallocated'; start: number; length: number; depth: number };

/** A zero-copy segment for composing files: bytes of an image file, or zeros. */
export type Segment =
  | { kind: 'file'; file: string; fileOffset: number; length: number }
  | { kind: 'zero'; length: number };

/**
 * Turn extents into zero-copy segments. Returns undefined when some extent is compressed (its bytes
 * exist only decompressed, through `read()`).
 */
export function toSegments(extents: readonly Extent[]): Segment[] | undefined {
  const out: Segment[] = [];
  for (const e of extents) {
    if (e.kind === 'compressed') return undefined;
    const prev = out[out.length - 1];
    if (e.kind === 'data') {
      if (prev?.kind === 'file' && prev.file === e.file && prev.fileOffset + prev.length === e.fileOffset) prev.length += e.length;
      else out.push({ kind: 'file', file: e.file, fileOffset: e.fileOffset, length: e.length });
    } else if (prev?.kind === 'zero') {
      prev.length += e.length;
    } else {
      out.push({ kind: 'zero', length: e.length });
    }
  }
  return out;
}
