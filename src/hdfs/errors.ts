// Errors of the WebHDFS gateway. Each one travels to Hadoop as WebHDFS's RemoteException JSON with
// the HTTP status WebHDFS.md assigns to its exception class, so WebHdfsFileSystem rethrows it as the
// Java exception a Hadoop user already knows (FileNotFoundException, AccessControlException, ...).

export class WebHdfsError extends Error {
  override name = 'WebHdfsError';
  constructor(
    readonly status: number,
    /** fully qualified Java class name the client maps the error to */
    readonly javaClassName: string,
    message: string,
  ) {
    super(message);
  }

  /** The RemoteException JSON body. */
  body(): { RemoteException: { exception: string; javaClassName: string; message: string } } {
    const simple = this.javaClassName.slice(this.javaClassName.lastIndexOf('.') + 1);
    return { RemoteException: { exception: simple, javaClassName: this.javaClassName, message: this.message } };
  }
}

export const notFound = (path: string): WebHdfsError =>
  new WebHdfsError(404, 'java.io.FileNotFoundException', `File does not exist: ${path}`);

export const illegalArgument = (message: string): WebHdfsError =>
  new WebHdfsError(400, 'java.lang.IllegalArgumentException', message);

export const badParam = (name: string, value: string, why: string): WebHdfsError =>
  illegalArgument(`Invalid value for webhdfs parameter "${name}": ${value === '' ? why : `${value}: ${why}`}`);

export const unsupported = (message: string): WebHdfsError =>
  new WebHdfsError(400, 'java.lang.UnsupportedOperationException', message);

export const accessDenied = (message: string): WebHdfsError =>
  new WebHdfsError(403, 'org.apache.hadoop.security.AccessControlException', message);

export const ioError = (message: string): WebHdfsError => new WebHdfsError(403, 'java.io.IOException', message);

export const readOnly = (op: string, path: string): WebHdfsError =>
  accessDenied(`Permission denied: LiveMR serves composed files read-only; ${op} is refused on ${path}`);
