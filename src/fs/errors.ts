// Typed errors of the composed-files area. `code` is stable and travels over the control socket.
import { LiveMrError } from '../errors/index.js';

export type FsErrorCode =
  | 'EBADSEGMENT' // a segment with a bad offset/length/file
  | 'EBADNAME' // a composed-file name that cannot be a file name
  | 'ENOFILE' // no composed file of that name
  | 'ENOTHOLE' // fill() outside a zero-fill region
  | 'ETOOBIG' // offsets or sizes beyond 2^53 (exact in a double, far beyond any disk image)
  | 'EJOURNAL' // the journal cannot be read or written
  | 'ELOCKED' // another process owns the state directory
  | 'EMOUNT' // mounting / unmounting failed
  | 'ENATIVE' // the native addon is missing or broken
  | 'EPROTO'; // a malformed control-socket message

export class FsError extends LiveMrError {
  override name = 'FsError';
  constructor(
    override readonly code: FsErrorCode,
    message: string,
  ) {
    super(message);
  }
}
