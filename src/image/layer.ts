// A layer is one file of a backing chain (raw or qcow2) described on its own: for a guest range it
// yields runs saying where the bytes of *this* layer are. Falling through to the backing file is
// the chain's business (chain.ts), not the layer's.
import type { ImageFile } from './file.js';

export type ImageFormat = 'raw' | 'qcow2';

export type Run =
  /** bytes stored uncompressed in `file` at `fileOffset` */
  | { kind: 'data'; start: number; length: number; file: ImageFile; fileOffset: number }
  /** reads as zeros; `file`/`fileOffset` describe a preallocated host cluster when there is one */
  | { kind: 'zero'; start: number; length: number; file?: ImageFile; fileOffset?: number }
  /** part of one compressed cluster stored at `fileOffset` (`compressedLength` bytes) */
  | { kind: 'compressed'; start: number; length: number; file: ImageFile; fileOffset: number; compressedLength: number; clusterStart: number }
  /** not allocated in this layer: the backing file decides */
  | { kind: 'unallocated'; start: number; length: number };

export interface Layer {
  readonly path: string;
  readonly format: ImageFormat;
  /** virtual size in bytes */
  readonly size: number;
  /**
   * Runs covering [offset, offset+length) in order; the range lies within `size`. Throws
   * ImageRangeError rather than build more than `maxRuns` runs (bounded memory).
   */
  runs(offset: number, length: number, maxRuns?: number): Promise<Run[]>;
  /** The guest bytes of one compressed cluster (only layers that produce compressed runs). */
  readCompressed(run: Extract<Run, { kind: 'compressed' }>): Promise<Buffer>;
  /** Drop caches and re-read metadata (header, L1) from the file. */
  reload(): Promise<void>;
  /** backing file name recorded in the layer's own header, if any */
  readonly backingFile?: string;
  readonly backingFormat?: string;
  close(): Promise<void>;
}

/** Append `run` to `out`, merging it into the previous run when both describe contiguous bytes. */
export function pushRun(out: Run[], run: Run): void {
  const prev = out[out.length - 1];
  if (prev && prev.kind === run.kind && prev.start + prev.length === run.start) {
    if (prev.kind === 'unallocated') {
      prev.length += run.length;
      return;
    }
    if ((prev.kind === 'data' || prev.kind === 'zero') && (run.kind === 'data' || run.kind === 'zero')) {
      const contiguous = prev.file === run.file &&
        (prev.fileOffset === undefined ? run.fileOffset === undefined
          : run.fileOffset !== undefined && prev.fileOffset + prev.length === run.fileOffset);
      if (contiguous) {
        prev.length += run.length;
        return;
      }
    }
  }
  out.push(run);
}
