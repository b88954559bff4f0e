// Typed errors of the image mapper. Callers tell "we cannot do this format/feature" (Unsupported)
// from "the metadata is inconsistent" (Corrupt, with the byte offset of the offending structure in
// the image file) from "the caller asked for bytes outside the virtual disk" (Range).

import { LiveMrError } from '../errors/index.js';

type ImageErrorCode = 'IMAGE_ERROR' | 'IMAGE_UNSUPPORTED' | 'IMAGE_CORRUPT' | 'IMAGE_RANGE' | 'IMAGE_METADATA_OVERLAP';

export class ImageError extends LiveMrError {
  readonly code: ImageErrorCode = 'IMAGE_ERROR';
  constructor(message: string, readonly path?: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = new.target.name;
  }
}

/** The image uses a format or feature this mapper refuses (encryption, unknown incompatible bits…). */
export class UnsupportedImageError extends ImageError {
  override readonly code: ImageErrorCode = 'IMAGE_UNSUPPORTED';
}

/** The image metadata is inconsistent; `offset` is where in the image file the bad structure is. */
export class CorruptImageError extends ImageError {
  override readonly code: ImageErrorCode = 'IMAGE_CORRUPT';
  constructor(message: string, readonly offset: number, path?: string) {
    super(`${message} (at file offset ${offset})`, path);
  }
}

/** A guest range outside the virtual disk, or larger than the per-call bound. */
export class ImageRangeError extends ImageError {
  override readonly code: ImageErrorCode = 'IMAGE_RANGE';
}

/**
 * A guest cluster maps onto a host cluster that the image's own metadata occupies (header, L1/L2
 * tables, refcount table/blocks, snapshot table, bitmaps). Either the metadata read is out of date
 * (QEMU freed the cluster on a discard and reused it for a table since) or the image is corrupt;
 * in neither case are those bytes the guest's: the caller must not serve them.
 */
export class ImageMetadataOverlapError extends ImageError {
  override readonly code: ImageErrorCode = 'IMAGE_METADATA_OVERLAP';
  constructor(
    /** first guest offset of the requested range whose cluster overlaps */
    readonly guestOffset: number,
    /** host offset of that cluster in the image file */
    readonly hostOffset: number,
    /** which structure it overlaps, e.g. 'L2 table', 'refcount block' */
    readonly structure: string,
    path?: string,
  ) {
    super(`guest offset ${guestOffset} maps to host offset ${hostOffset}, which holds the image's ${structure}`, path);
  }
}
