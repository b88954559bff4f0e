// Errors of the WebHDFS gateway. Each one travels to Hadoop as WebHDFS's RemoteException JSON with
// the HTTP status WebHDFS.md assigns to its exception class (the status is the code's, in
// src/errors), so WebHdfsFileSystem rethrows it as the Java exception a Hadoop user already knows
// (FileNotFoundException, AccessControlException, ...).
import { ERROR_CODES, LiveMrError } from '../errors/index.js';

export type WebHdfsErrorCode =
  | 'HDFS_AUTH' | 'HDFS_ACCESS_DENIED' | 'HDFS_IO' | 'HDFS_NOT_FOUND' | 'HDFS_ILLEGAL_ARGUMENT' | 'HDFS_UNSUPPORTED' | 'HDFS_INTERNAL';

/** The fully qualified Java class name the client maps each code to. */
const JAVA_CLASS = {
  HDFS_AUTH: 'java.lang.SecurityException',
  HDFS_ACCESS_DENIED: 'org.apache.hadoop.security.AccessControlException',
  HDFS_IO: 'java.io.IOException',
  HDFS_NOT_FOUND: 'java.io.FileNotFoundException',
  HDFS_ILLEGAL_ARGUMENT: 'java.lang.IllegalArgumentException',
  HDFS_UNSUPPORTED: 'java.lang.UnsupportedOperationException',
  HDFS_INTERNAL: 'java.lang.RuntimeException',
} as const satisfies Record<WebHdfsErrorCode, string>;

export class WebHdfsError extends LiveMrError {
  override name = 'WebHdfsError';
  constructor(override readonly code: WebHdfsErrorCode, message: string) {
    super(message);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get javaClassName(): string {
    return JAVA_CLASS[this.code];
  }

  /** The RemoteException JSON body. */
  body(): { RemoteException: { exception: string; javaClassName: string; message: string } } {
    const simple = this.javaClassName.slice(this.javaClassName.lastIndexOf('.') + 1);
    return { RemoteException: { exception: simple, javaClassName: this.javaClassName, message: this.message } };
  }
}

export const notFound = (path: string): WebHdfsError => new WebHdfsError('HDFS_NOT_FOUND', `File does not exist: ${path}`);

export const illegalArgument = (message: string): WebHdfsError => new WebHdfsError('HDFS_ILLEGAL_ARGUMENT', message);

export const badParam = (name: string, value: string, why: string): WebHdfsError =>
  illegalArgument(`Invalid value for webhdfs parameter "${name}": ${value === '' ? why : `${value}: ${why}`}`);

export const unsupported = (message: string): WebHdfsError => new WebHdfsError('HDFS_UNSUPPORTED', message);

export const accessDenied = (message: string): WebHdfsError => new WebHdfsError('HDFS_ACCESS_DENIED', message);

export const ioError = (message: string): WebHdfsError => new WebHdfsError('HDFS_IO', message);

export const readOnly = (op: string, path: string): WebHdfsError =>
  accessDenied(`Permission denied: LiveMR serves composed files read-only; ${op} is refused on ${path}`);
