// The read-only WebHDFS REST endpoint (/webhdfs/v1/PATH?op=...), following Hadoop's WebHDFS.md:
// the same JSON bodies, status codes and RemoteException errors, so stock WebHdfsFileSystem (hadoop
// fs, MapReduce, Spark, distcp) reads composed files unchanged. Every write or namespace change is
// refused with AccessControlException. Auth is WebHDFS's pseudo-auth (`user.name`) with an allowlist.
//
// A host agent serves OPEN itself (200 with the bytes, like HttpFS); an aggregator answers OPEN with
// a 307 redirect to the agent that holds the file, as a NameNode redirects to a DataNode.

import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { sendError, sendJson as sendJsonWith } from '../http/index.js';
import { accessDenied, badParam, illegalArgument, ioError, notFound, readOnly, unsupported, WebHdfsError } from './errors.js';
import * as json from './json.js';
import type { FileEntry, Namespace } from './namespace.js';
import { sendBody } from './sendfile.js';

export const PREFIX = '/webhdfs/v1';
export const DEFAULT_BLOCK_SIZE = 128 * 1024 * 1024;
/** Hadoop's default dfs.webhdfs.user.provider.user.pattern */
const USER_RE = /^[A-Za-z_][A-Za-z0-9._-]*[$]?$/;

export interface GatewayOptions {
  namespace: Namespace;
  /** pseudo-block size reported to Hadoop (default 128 MiB) */
  blockSize?: number;
  owner?: string;
  group?: string;
  /** users allowed to read; '*' (default) allows any user name */
  users?: readonly string[] | '*';
  /** user assumed when a request has no user.name; unset: such requests get 401 */
  defaultUser?: string;
  /** entries per LISTSTATUS_BATCH answer (HDFS's dfs.ls.limit, default 1000) */
  listLimit?: number;
  /** extra non-WebHDFS routes (the aggregator's report endpoint); true when handled */
  extraRoute?: (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean;
  /** OPEN bodies by sendfile(2) when the native addon is there (default true); false: JS buffers */
  zeroCopy?: boolean;
  /**
   * who may use this endpoint, decided per connection before any request on it is answered: the
   * reason for a refusal (403 AccessControlException), or undefined (the panel's gateway checks the
   * peer's uid on loopback, peer.ts)
   */
  admit?: (socket: Socket) => string | undefined;
  log?: (line: string) => void;
}

/** Bounds of one gateway (docs/security.md); each is an option of `livemr hdfs serve` too. */
export interface GatewayLimits {
  /** open connections; one more is closed as it is accepted (default 512) */
  maxConnections?: number;
  /** a connection with no request in progress, or whose request headers have not all come, is closed after this (default 30 s) */
  idleTimeoutMs?: number;
  /** a response whose client takes no byte for this long is cut (default 60 s) */
  writeTimeoutMs?: number;
}

export const GATEWAY_DEFAULTS = { maxConnections: 512, idleTimeoutMs: 30_000, writeTimeoutMs: 60_000 } as const satisfies Required<GatewayLimits>;

export interface Gateway {
  server: http.Server;
  port: number;
  /** connections closed as they were accepted, over maxConnections */
  dropped(): number;
  /** http://HOST:PORT */
  url: string;
  close(): Promise<void>;
}

type Query = Map<string, string>;

/** Operation names this endpoint knows for GET; others are answered like an unknown enum constant. */
const GET_OPS = new Set([
  'OPEN', 'GETFILESTATUS', 'LISTSTATUS', 'LISTSTATUS_BATCH', 'GETCONTENTSUMMARY', 'GETQUOTAUSAGE',
  'GETFILECHECKSUM', 'GETHOMEDIRECTORY', 'GETDELEGATIONTOKEN', 'GETTRASHROOT', 'GETXATTRS', 'LISTXATTRS',
  'GETACLSTATUS', 'CHECKACCESS', 'GETSERVERDEFAULTS', 'GETFILEBLOCKLOCATIONS', 'GET_BLOCK_LOCATIONS', 'GETSTATUS',
]);

export function createHandler(opts: GatewayOptions): http.RequestListener {
  const p: json.Presentation = {
    owner: opts.owner ?? 'livemr',
    group: opts.group ?? 'livemr',
    blockSize: opts.blockSize ?? DEFAULT_BLOCK_SIZE,
  };
  if (!(Number.isSafeInteger(p.blockSize) && p.blockSize > 0)) throw new RangeError(`bad block size ${p.blockSize}`);
  const users = opts.users ?? '*';
  const listLimit = opts.listLimit ?? 1000;
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const ns = opts.namespace;

  // WebHDFS's own headers: plain application/json, no cache-control (what a NameNode sends)
  const WEBHDFS_HEADERS = { 'content-type': 'application/json', 'cache-control': null };
  const sendJson = (res: http.ServerResponse, status: number, body: unknown) => sendJsonWith(res, status, body, WEBHDFS_HEADERS);

  const authenticate = (q: Query): string => {
    const user = q.get('user.name') ?? opts.defaultUser;
    if (user === undefined) throw new WebHdfsError('HDFS_AUTH', 'Authentication required: pass user.name (LiveMR uses WebHDFS pseudo-auth)');
    if (!USER_RE.test(user)) throw badParam('user.name', user, 'not a valid user name');
    const doas = q.get('doas');
    if (doas !== undefined && doas !== user) throw accessDenied(`Permission denied: user ${user} may not impersonate ${doas} (no proxy users on the LiveMR gateway)`);
    if (users !== '*' && !users.includes(user)) throw accessDenied(`Permission denied: user=${user} is not allowed to read from this LiveMR gateway`);
    return user;
  };

  /** A path below the root: '' for the root, else one file name. Throws for bad or deeper paths. */
  const parsePath = (raw: string): { path: string; name: string | null } => {
    const parts: string[] = [];
    for (const seg of raw.split('/')) {
      let s: string;
      try {
        s = decodeURIComponent(seg);
      } catch {
        throw illegalArgument(`Invalid path encoding: ${raw}`);
      }
      if (s === '' || s === '.') continue;
      if (s === '..' || s.includes('/') || s.includes('\0')) throw illegalArgument(`Invalid path name ${raw}`);
      parts.push(s);
    }
    const path = '/' + parts.join('/');
    if (parts.length === 0) return { path, name: '' };
    return { path, name: parts.length === 1 ? parts[0]! : null };
  };

  const longParam = (q: Query, name: string, dflt: number | undefined, min: number): number | undefined => {
    const v = q.get(name);
    if (v === undefined || v === '' || v === 'null') return dflt;
    if (!/^-?\d{1,19}$/.test(v) || BigInt(v) > 2n ** 63n - 1n || BigInt(v) < -(2n ** 63n)) throw badParam(name, v, 'not a long integer');
    // a Java long beyond 2^53 (e.g. Long.MAX_VALUE as "to the end") is beyond any file: clamp it
    const n = Number(BigInt(v) > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : BigInt(v));
    if (n < min) throw badParam(name, v, `must be >= ${min}`);
    return n;
  };

  const file = (path: string, name: string | null): FileEntry => {
    const f = name ? ns.get(name) : undefined;
    if (!f) throw notFound(path);
    return f;
  };

  const admitted = new WeakMap<Socket, string | undefined>();
  const admit = (req: http.IncomingMessage): void => {
    if (!opts.admit) return;
    const sock = req.socket;
    if (!admitted.has(sock)) admitted.set(sock, opts.admit(sock));
    const why = admitted.get(sock);
    if (why !== undefined) throw accessDenied(`Permission denied: ${why}`);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
    admit(req);
    // the raw path, not url.pathname: URL parsing would quietly resolve '..' segments
    const rawPath = (req.url ?? '/').split('?')[0]!;
    if (!rawPath.startsWith(PREFIX + '/') && rawPath !== PREFIX) throw notFound(url.pathname);
    const q: Query = new Map();
    for (const [k, v] of url.searchParams) q.set(k.toLowerCase(), v);
    const method = req.method ?? 'GET';
    const opRaw = q.get('op');
    if (!opRaw) throw badParam('op', '', 'missing');
    const op = opRaw.toUpperCase();
    const user = authenticate(q);
    const { path, name } = parsePath(rawPath.slice(PREFIX.length));
    if (method === 'PUT' || method === 'POST' || method === 'DELETE') {
      req.resume(); // discard any body
      throw readOnly(op, path);
    }
    if (method !== 'GET' && method !== 'HEAD') throw unsupported(`HTTP method ${method} is not supported`);
    if (!GET_OPS.has(op)) throw badParam('op', opRaw, `No enum constant org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.${op}`);
    const isRoot = name === '';

    switch (op) {
      case 'GETFILESTATUS': {
        if (isRoot) return sendJson(res, 200, { FileStatus: json.rootStatus(ns.list(), p, started) });
        return sendJson(res, 200, { FileStatus: json.fileStatus(file(path, name), p, '') });
      }
      case 'LISTSTATUS': {
        const list = isRoot ? ns.list().map((f) => json.fileStatus(f, p)) : [json.fileStatus(file(path, name), p, '')];
        return sendJson(res, 200, { FileStatuses: { FileStatus: list } });
      }
      case 'LISTSTATUS_BATCH': {
        let entries: Record<string, unknown>[];
        let remaining = 0;
        if (isRoot) {
          const after = Buffer.from(q.get('startafter') ?? '');
          const rest = ns.list().filter((f) => Buffer.compare(Buffer.from(f.name), after) > 0);
          entries = rest.slice(0, listLimit).map((f) => json.fileStatus(f, p));
          remaining = rest.length - entries.length;
        } else entries = [json.fileStatus(file(path, name), p, '')];
        return sendJson(res, 200, { DirectoryListing: { partialListing: { FileStatuses: { FileStatus: entries } }, remainingEntries: remaining } });
      }
      case 'GETCONTENTSUMMARY':
        return sendJson(res, 200, isRoot ? json.contentSummary(ns.list(), 1) : json.contentSummary([file(path, name)], 0));
      case 'GETQUOTAUSAGE':
        return sendJson(res, 200, isRoot ? json.quotaUsage(ns.list(), 1) : json.quotaUsage([file(path, name)], 0));
      case 'GETHOMEDIRECTORY':
        return sendJson(res, 200, { Path: `/user/${user}` });
      case 'GETTRASHROOT':
        return sendJson(res, 200, { Path: `/user/${user}/.Trash` });
      case 'GETDELEGATIONTOKEN':
        return sendJson(res, 200, { Token: null }); // security is off: no tokens, like a NameNode
      case 'GETSERVERDEFAULTS':
        return sendJson(res, 200, json.serverDefaults(p));
      case 'GETSTATUS': {
        const used = ns.list().reduce((a, f) => a + f.length, 0);
        return sendJson(res, 200, { FsStatus: { used, remaining: 0, capacity: used } });
      }
      case 'GETACLSTATUS': {
        if (!isRoot) file(path, name);
        return sendJson(res, 200, { AclStatus: { entries: [], group: p.group, owner: p.owner, permission: isRoot ? '555' : '444', stickyBit: false } });
      }
      case 'GETXATTRS': {
        if (!isRoot) file(path, name);
        if (q.has('xattr.name')) throw ioError('At least one of the attributes provided was not found.');
        return sendJson(res, 200, { XAttrs: [] });
      }
      case 'LISTXATTRS': {
        if (!isRoot) file(path, name);
        return sendJson(res, 200, { XAttrNames: '[]' });
      }
      case 'CHECKACCESS': {
        const action = q.get('fsaction') ?? '';
        if (!/^[r-][w-][x-]$/.test(action)) throw badParam('fsaction', action, 'must match [r-][w-][x-]');
        if (!isRoot) file(path, name);
        if (action[1] === 'w' || (!isRoot && action[2] === 'x'))
          throw accessDenied(`Permission denied: user=${user}, access=${action}, inode="${path}" is read-only (${isRoot ? 'r-x' : 'r--'})`);
        res.writeHead(200, { 'Content-Length': 0 });
        return void res.end();
      }
      case 'GETFILEBLOCKLOCATIONS': {
        const f = file(path, name);
        const offset = longParam(q, 'offset', 0, 0)!;
        const length = longParam(q, 'length', Number.MAX_SAFE_INTEGER, 0)!;
        return sendJson(res, 200, json.blockLocations(f, p, offset, length));
      }
      case 'GET_BLOCK_LOCATIONS': {
        const f = file(path, name);
        const offset = longParam(q, 'offset', 0, 0)!;
        const length = longParam(q, 'length', Number.MAX_SAFE_INTEGER, 0)!;
        return sendJson(res, 200, json.locatedBlocks(f, p, offset, length));
      }
      case 'GETFILECHECKSUM': {
        file(path, name);
        // an IOException, not UnsupportedOperationException: FsShell prints it as a one-line error
        throw ioError('LiveMR composed files have no HDFS block checksums (GETFILECHECKSUM is unsupported); for distcp use -skipcrccheck');
      }
      case 'OPEN': {
        if (isRoot) throw notFound(`Path is not a file: ${path}`);
        const f = file(path, name);
        const offset = longParam(q, 'offset', 0, 0)!;
        const length = longParam(q, 'length', undefined, 0);
        const bufferSize = longParam(q, 'buffersize', undefined, 1);
        void bufferSize; // validated only: the gateway reads in its own chunks
        const noredirect = q.get('noredirect')?.toLowerCase() === 'true';
        if (!f.local || noredirect) {
          // an aggregator, or a client that asked where to read: name the agent that serves the bytes
          // never from the Host header, which the client chooses: the configured URL, else the
          // address the client reached this gateway on
          const base = f.location.url || selfUrl(req);
          const params = new URLSearchParams(url.searchParams);
          for (const k of [...params.keys()]) if (k.toLowerCase() === 'noredirect') params.delete(k);
          const location = `${base}${rawPath}?${params.toString()}`;
          if (noredirect) return sendJson(res, 200, { Location: location });
          res.writeHead(307, { Location: location, 'Content-Length': 0 });
          return void res.end();
        }
        const size = f.length; // the live length now; the client reads exactly Content-Length bytes
        if (offset > size) throw ioError(`Offset=${offset} out of the range [0, ${size}]; path=${path}`);
        const n = Math.min(length ?? size - offset, size - offset);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n });
        if (method === 'HEAD' || n === 0) return void res.end();
        await sendBody(f.local, offset, n, res, opts.zeroCopy ?? true);
        return void res.end();
      }
    }
  };

  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://gateway');
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (opts.extraRoute?.(req, res, url)) return;
    handle(req, res, url).catch((e: unknown) => {
      const err = e instanceof WebHdfsError ? e : new WebHdfsError('HDFS_INTERNAL', `LiveMR gateway error: ${(e as Error).message}`);
      if (!(e instanceof WebHdfsError)) log(`${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}`);
      if (err.status === 401 && !res.headersSent) res.statusMessage = err.message; // WebHdfsFileSystem reports the status text on 401
      // mid-body, sendError cuts the connection: the client sees a short read, never wrong bytes
      sendError(res, err, () => err.body(), WEBHDFS_HEADERS);
    });
  };
}

/** Starts the endpoint on host:port (port 0: any free port). */
export async function startGateway(opts: GatewayOptions & GatewayLimits & { host?: string; port?: number }): Promise<Gateway> {
  const lim = { ...GATEWAY_DEFAULTS, ...definedOnly(opts) };
  // the idle and header deadlines are checked this often
  const server = http.createServer({ connectionsCheckingInterval: Math.min(30_000, Math.max(100, lim.idleTimeoutMs / 4)) }, createHandler(opts));
  // a connection over the cap is closed by the listener before Node allocates anything for it
  server.maxConnections = lim.maxConnections;
  let dropped = 0;
  server.on('drop', () => { dropped++; });
  server.keepAliveTimeout = lim.idleTimeoutMs;
  server.headersTimeout = lim.idleTimeoutMs;
  // the whole request too (a read-only endpoint discards bodies: one sent forever must end); a
  // response's length is the write timeout's business
  server.requestTimeout = lim.idleTimeoutMs;
  // socket inactivity: a response whose client takes nothing for this long is cut (sendfile.ts
  // suspends it while a native call runs, which has its own stall timeout)
  server.timeout = lim.writeTimeoutMs;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    dropped: () => dropped,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function definedOnly(o: GatewayLimits): GatewayLimits {
  const out: GatewayLimits = {};
  for (const k of ['maxConnections', 'idleTimeoutMs', 'writeTimeoutMs'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`bad ${k} ${v}`);
    out[k] = v;
  }
  return out;
}

/** http://ADDR:PORT of the socket `req` arrived on (the local end). */
function selfUrl(req: http.IncomingMessage): string {
  const a = req.socket.localAddress ?? '127.0.0.1';
  return `http://${a.includes(':') ? `[${a}]` : a}:${req.socket.localPort}`;
}
