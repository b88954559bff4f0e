// The one root of LiveMR's typed errors and the one table of their codes (docs/errors.md).
// Every error a caller may branch on is a LiveMrError with a stable `code`; callers branch on the
// class or the code, never on message text. The table gives each code the HTTP status any of the
// HTTP servers answers it with (src/http), so "what status is an unknown VM" is decided once.
//
// Codes that already travelled on a wire keep their historic spelling: the fs control socket's
// E-codes, the panel API's kebab-case codes. Codes that only live in process are AREA_WHAT.

type Entry = { readonly status: number; readonly meaning: string };

export const ERROR_CODES = {
  // generic HTTP-level refusals (src/http; the panel API has answered with these since v1)
  'bad-request': { status: 400, meaning: 'malformed request: bad JSON, a missing or unknown key, a bad value' },
  'unauthorized': { status: 401, meaning: 'no valid panel token' },
  'forbidden': { status: 403, meaning: 'the caller may not do this over this endpoint' },
  'not-found': { status: 404, meaning: 'no such endpoint, VM, file, job or jar' },
  'method-not-allowed': { status: 405, meaning: 'the path exists, the method does not' },
  'conflict': { status: 409, meaning: 'the request contradicts current state (not granted, name taken)' },
  'too-large': { status: 413, meaning: 'request body above the endpoint\'s limit' },
  'unsupported-media-type': { status: 415, meaning: 'wrong Content-Type for the body' },
  'too-many-streams': { status: 503, meaning: 'too many event streams open' },
  'internal': { status: 500, meaning: 'an unexpected failure (a bug or an untyped error); logged' },
  'agent-unreachable': { status: 502, meaning: 'the panel cannot reach a host agent' },
  // panel job runner
  'job-user-root': { status: 500, meaning: 'the configured job user is root' },
  'jobs-unavailable': { status: 503, meaning: 'jobs cannot run here (no job user, bad work dir, stopping)' },
  'queue-full': { status: 429, meaning: 'too many queued jobs' },
  'jar-store-full': { status: 507, meaning: 'too many stored jars' },
  'jar-in-use': { status: 409, meaning: 'the jar is used by a queued or running job' },
  'no-jar': { status: 404, meaning: 'no uploaded jar of that id' },
  // composed files (src/fs); also the control socket's codes
  EBADSEGMENT: { status: 400, meaning: 'a segment with a bad offset, length or source file' },
  EBADNAME: { status: 400, meaning: 'a composed-file name that cannot be a file name' },
  ENOFILE: { status: 404, meaning: 'no composed file of that name' },
  ENOTHOLE: { status: 400, meaning: 'fill() outside a zero-fill region' },
  ETOOBIG: { status: 400, meaning: 'an offset or size beyond 2^53' },
  EJOURNAL: { status: 500, meaning: 'the composition journal cannot be read or written' },
  ELOCKED: { status: 409, meaning: 'another process owns the state directory' },
  EMOUNT: { status: 500, meaning: 'mounting or unmounting failed' },
  ENATIVE: { status: 500, meaning: 'the native addon is missing or broken' },
  EPROTO: { status: 400, meaning: 'a malformed control-socket message' },
  // host agent (src/host)
  HOST_CONFIG: { status: 400, meaning: 'a configuration file that does not parse or validate' },
  HOST_UNKNOWN_VM: { status: 404, meaning: 'no VM of that name on this agent' },
  HOST_BAD_GUEST_PATH: { status: 400, meaning: 'a guest path that is not absolute, has NUL or is too long' },
  HOST_LAYOUT: { status: 500, meaning: 'guest extents that cannot be laid out on the image (overlap, beyond the disk)' },
  HOST_LIMIT_FILES: { status: 413, meaning: 'a guest shares more files at once than its VM\'s maxFiles' },
  HOST_LIMIT_EXTENTS: { status: 413, meaning: 'a guest file has more extents than maxExtentsPerFile, or the VM\'s files more than maxExtentsPerVm' },
  HOST_LIMIT_CONTINUATION: { status: 413, meaning: 'one update of a guest file spans more frames than maxContinuationFrames' },
  HOST_FILE_BEYOND_DISK: { status: 400, meaning: 'a guest file whose size is beyond the virtual size of its disk' },
  BIGLOG_BAD_SOURCE: { status: 400, meaning: 'a BigLog source with a relative guest path' },
  BIGLOG_NAME_TAKEN: { status: 409, meaning: 'a BigLog name reserved for shared files or used by another composition' },
  // WebHDFS gateway (src/hdfs); the gateway sends them as RemoteException, statuses as WebHDFS.md has them
  HDFS_AUTH: { status: 401, meaning: 'no user.name (java.lang.SecurityException)' },
  HDFS_ACCESS_DENIED: { status: 403, meaning: 'refused user, impersonation or write (AccessControlException)' },
  HDFS_IO: { status: 403, meaning: 'an IOException WebHDFS sends as 403 (offset beyond the file, no checksum)' },
  HDFS_NOT_FOUND: { status: 404, meaning: 'no such file (java.io.FileNotFoundException)' },
  HDFS_ILLEGAL_ARGUMENT: { status: 400, meaning: 'a bad parameter or path (IllegalArgumentException)' },
  HDFS_UNSUPPORTED: { status: 400, meaning: 'an HTTP method WebHDFS does not have (UnsupportedOperationException)' },
  HDFS_INTERNAL: { status: 500, meaning: 'an unexpected gateway failure (java.lang.RuntimeException)' },
  HDFS_SHORT_SOURCE: { status: 500, meaning: 'a segment\'s source file is shorter than the segment' },
  HDFS_BAD_REPORT: { status: 400, meaning: 'an agent report to the aggregator that does not validate' },
  HDFS_COMPOSE_CONFIG: { status: 400, meaning: 'a compose-from-local config that does not validate' },
  // PROVIDED export (src/provided)
  PROVIDED_INPUT: { status: 400, meaning: 'an export that cannot be made as asked (no such file on the mount, a path Hadoop cannot name, output exists)' },
  PROVIDED_OUTPUT: { status: 500, meaning: 'writing the exported image or alias map failed' },
  // disk images (src/image)
  IMAGE_ERROR: { status: 500, meaning: 'an image that cannot be opened or followed (missing backing file, loop)' },
  IMAGE_UNSUPPORTED: { status: 500, meaning: 'an image format or feature the mapper refuses (encryption, ...)' },
  IMAGE_CORRUPT: { status: 500, meaning: 'inconsistent image metadata (with its file offset)' },
  IMAGE_RANGE: { status: 400, meaning: 'a guest range outside the virtual disk or above the per-call bound' },
  IMAGE_METADATA_OVERLAP: { status: 500, meaning: 'a guest cluster mapped onto a host cluster the image\'s own metadata uses (stale or corrupt): never served' },
  // QMP (src/qmp)
  QMP_ERROR: { status: 500, meaning: 'a QMP-level failure with no more specific code (no such device, listener closed)' },
  QMP_CONNECT: { status: 502, meaning: 'the QMP socket cannot be opened (errno in `errno`)' },
  QMP_GREETING: { status: 502, meaning: 'no valid QMP greeting in time' },
  QMP_NEGOTIATION: { status: 502, meaning: 'qmp_capabilities refused' },
  QMP_EXECUTE: { status: 502, meaning: 'QEMU answered a command with an error' },
  QMP_TIMEOUT: { status: 504, meaning: 'no reply within the command\'s timeout' },
  QMP_INTERRUPTED: { status: 502, meaning: 'the connection ended while the command was in flight' },
  QMP_STATE: { status: 500, meaning: 'the client is not connected yet or already closed' },
  QMP_DISCONNECTED: { status: 502, meaning: 'the peer closed the connection' },
  QMP_PROTOCOL: { status: 502, meaning: 'the peer broke the protocol (bad JSON, line too long, unexpected message)' },
  QMP_EVENT_OVERFLOW: { status: 500, meaning: 'an event listener fell behind; events were lost' },
  QMP_UNEXPECTED_REPLY: { status: 502, meaning: 'a reply without the shape a typed helper expects' },
  QMP_EVENT_TIMEOUT: { status: 504, meaning: 'an awaited event did not arrive in time' },
  // libvirt (src/libvirt)
  LIBVIRT_CONNECT: { status: 502, meaning: 'the libvirt socket cannot be opened' },
  LIBVIRT_AUTH: { status: 502, meaning: 'the daemon asks for an auth scheme this client lacks' },
  LIBVIRT_RPC: { status: 502, meaning: 'the daemon answered with a virError (virCode on the error)' },
  LIBVIRT_PROTOCOL: { status: 502, meaning: 'the daemon broke the RPC protocol' },
  LIBVIRT_TIMEOUT: { status: 504, meaning: 'no reply within the call\'s timeout' },
  LIBVIRT_DISCONNECTED: { status: 502, meaning: 'the connection ended (also: keepalive lost)' },
  LIBVIRT_STATE: { status: 500, meaning: 'the client is closed or not open yet' },
  LIBVIRT_KEEPALIVE: { status: 502, meaning: 'the daemon stopped answering keepalives' },
  LIBVIRT_XML: { status: 502, meaning: 'a domain XML without the shape LiveMR relies on' },
  LIBVIRT_URI: { status: 400, meaning: 'a connection URI that maps to no local socket' },
  // cache policy (src/cache)
  CACHE_ERROR: { status: 500, meaning: 'a cache-area failure with no more specific code' },
  CACHE_INPUT: { status: 400, meaning: 'metrics, a VM config or bounds that make no sense' },
  CACHE_INFEASIBLE: { status: 400, meaning: 'constraints no allocation satisfies' },
  CACHE_CAPABILITY: { status: 501, meaning: 'the host lacks a mechanism (cgroup controller, BFQ, a tool)' },
  CACHE_ACTUATOR: { status: 500, meaning: 'writing or reading back a host setting failed' },
  // command line (src/cli)
  CLI_USAGE: { status: 400, meaning: 'a bad command line (exit code 2)' },
  // guest helper (src/guest; it runs in the guest, these never reach an HTTP server there)
  GUEST_PROTOCOL: { status: 500, meaning: 'a frame the encoder refuses to send (an out-of-range value: our own bug)' },
  GUEST_PAYLOAD: { status: 400, meaning: 'a frame payload that does not decode (reported to the peer as bad-payload)' },
  GUEST_UNSUPPORTED_DEVICE: { status: 400, meaning: 'a file on a block layer the helper cannot translate (btrfs, striped or thin LV, ...)' },
  GUEST_USAGE: { status: 400, meaning: 'a bad livemr-guest command line (exit code 2)' },
} as const satisfies Record<string, Entry>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base of every typed LiveMR error. Subclasses fix `code` (a field or a constructor parameter). */
export abstract class LiveMrError extends Error {
  abstract readonly code: ErrorCode;
  override name = 'LiveMrError';
}

export const isErrorCode = (c: unknown): c is ErrorCode => typeof c === 'string' && Object.hasOwn(ERROR_CODES, c);

/** The HTTP status an error is answered with: its code's, else 500. */
export function httpStatus(e: unknown): number {
  return e instanceof LiveMrError ? ERROR_CODES[e.code].status : 500;
}

/** The code of any thrown value: its own for a LiveMrError, else 'internal'. */
export function errorCode(e: unknown): ErrorCode {
  return e instanceof LiveMrError ? e.code : 'internal';
}
