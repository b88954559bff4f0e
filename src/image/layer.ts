// A layer is one file of a backing chain (raw or qcow2) described on its own: for a guest range it
// yields extents saying where the bytes of *this* layer are ('unallocated' = the backing file
// decides). Falling through to the backing file is the chain's business (image.ts).
import type { Extent } from './extent.js';

export type ImageFormat = 'raw' | 'qcow2';

export type DataExtent = Extract<Extent, { kind: 'data' }>;
export type CompressedExtent = Extract<Extent, { kind: 'compressed' }>;

export interface Layer {
  readonly path: string;
  readonly format: ImageFormat;
  /** virtual size in bytes */
  readonly size: number;
  /**
   * Extents of this layer covering [offset, offset+length) in order, tagged with `depth`; the
   * range lies within `size`. Throws ImageRangeError rather than build more than `maxExtents`.
   */
  runs(offset: number, length: number, depth: number, maxExtents?: number): Promise<Extent[]>;
  /** Copy the guest bytes of a data or compressed extent this layer produced into `out` at `at`. */
  readExtent(e: DataExtent | CompressedExtent, out: Buffer, at: number): Promise<void>;
  /** Drop caches and re-read metadata (header, L1, file sizes) from the file. */
  reload(): Promise<void>;
  /** backing file name recorded in the layer's own header, if any */
  readonly backingFile?: string;
  readonly backingFormat?: string;
  close(): Promise<void>;
}
