// Typed errors of the image mapper. Callers tell "we cannot do this format/feature" (Unsupported)
// from "the metadata is inconsistent" (Corrupt, with the byte offset of the offending structure in
// the image file) from "the caller asked for bytes outside the virtual disk" (Range).

import { LiveMrError } from '../errors/index.js';

type ImageErrorCode = 'IMAGE_ERROR' | 'IMAGE_UNSUPPORTED' | 'IMAGE_CORRUPT' | 'IMAGE_RANGE';

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
