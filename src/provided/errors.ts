// Errors of `livemr hdfs export` (docs/hdfs.md, "PROVIDED export").
import { LiveMrError } from '../errors/index.js';

export type ExportErrorCode = 'PROVIDED_INPUT' | 'PROVIDED_OUTPUT';

export class ExportError extends LiveMrError {
  override name = 'ExportError';
  constructor(override readonly code: ExportErrorCode, message: string) {
    super(message);
  }
}
