// The one small HTTP layer the three hand-written servers share (host agent, panel, WebHDFS
// gateway): bounded body reads, JSON replies, error replies from the code table (src/errors), and a
// path router. Hand-written on node:http rather than a router library: the servers need ~15 routes
// between them, WebHDFS dispatches on ?op= rather than on paths, the gateway streams bodies with
// sendfile(2) on the raw socket, and the agent's API must also listen on a unix socket — a
// framework would add a dependency to the root-run agent for little code saved (docs/errors.md).
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { ERROR_CODES, errorCode, LiveMrError, type ErrorCode } from '../errors/index.js';

/** A refused request: the code fixes the status (ERROR_CODES); nothing was changed. */
export class HttpError extends LiveMrError {
  override name = 'HttpError';
  constructor(override readonly code: ErrorCode, message: string) {
    super(message);
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export const badRequest = (msg: string) => new HttpError('bad-request', msg);
export const notFound = (msg: string) => new HttpError('not-found', msg);
export const conflict = (msg: string) => new HttpError('conflict', msg);
export const forbidden = (msg: string) => new HttpError('forbidden', msg);

/** The JSON error body of every LiveMR API but WebHDFS (which has Hadoop's RemoteException). */
export interface ErrorBody { error: { code: string; message: string } }

export function errorBody(e: unknown): ErrorBody {
  return { error: { code: errorCode(e), message: e instanceof Error ? e.message : String(e) } };
}

const DEFAULT_HEADERS: OutgoingHttpHeaders = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

/** `headers` replaces defaults by name; a header set to null is left out. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | number | null> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  const h: OutgoingHttpHeaders = { ...DEFAULT_HEADERS, 'content-length': data.length };
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete h[k.toLowerCase()];
    else h[k.toLowerCase()] = v;
  }
  res.writeHead(status, h);
  res.end(data);
}

/**
 * Answers a failed request: status from the error's code, body from `render` (default
 * {error: {code, message}}). After the headers went out it can only cut the connection, so the
 * client sees a short body, never a wrong one.
 */
export function sendError(res: ServerResponse, e: unknown, render: (e: unknown) => unknown = errorBody, headers: Record<string, string | number | null> = {}): void {
  if (res.headersSent) return void res.destroy();
  const status = e instanceof LiveMrError ? ERROR_CODES[e.code].status : 500;
  sendJson(res, status, render(e), headers);
}

/** Reads the whole body, refusing (413) more than `limit` bytes without buffering them. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      return reject(new HttpError('too-large', `body larger than ${limit} bytes`));
    }
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError('too-large', `body larger than ${limit} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A JSON object body (content-type application/json: a cross-site form cannot send one). */
export async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type !== 'application/json') throw new HttpError('unsupported-media-type', 'send the body as application/json');
  const body = await readBody(req, limit);
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequest(`body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Only the listed keys may appear in an API object (a typo must not be ignored silently). */
export function onlyKeys(o: Record<string, unknown>, keys: string[], where = 'body'): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw badRequest(`${where}: unknown key '${k}' (allowed: ${keys.join(', ')})`);
}

/** A matched request: decoded path segments, `:name` parameters, the parsed URL. */
export interface Route {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}
export type Handler = (r: Route) => void | Promise<void>;

/**
 * Routes on method and decoded path segments: '/jobs/:id/cancel'. A path that matches with another
 * method is 405, no match 404. Segments are percent-decoded one by one, so '%2F' stays inside its
 * segment and never adds a level.
 */
export class Router {
  private routes: { method: string; parts: string[]; handler: Handler }[] = [];

  constructor(private readonly prefix = '') {}

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').slice(1), handler });
    return this;
  }

  /** The route for req, or throws HttpError (400 bad encoding, 404, 405). */
  match(req: IncomingMessage, url: URL): { handler: Handler; params: Record<string, string> } {
    const p = url.pathname;
    const rest = p.slice(this.prefix.length) || '/';
    let seg: string[];
    try {
      seg = rest.split('/').slice(1).map((s) => decodeURIComponent(s));
    } catch {
      throw badRequest(`bad percent-encoding in ${p}`);
    }
    const method = req.method ?? 'GET';
    let pathMatched = false;
    for (const r of this.routes) {
      if (r.parts.length !== seg.length) continue;
      const params: Record<string, string> = {};
      if (!r.parts.every((x, i) => (x.startsWith(':') ? ((params[x.slice(1)] = seg[i]!), true) : x === seg[i]))) continue;
      if (r.method !== method) { pathMatched = true; continue; }
      return { handler: r.handler, params };
    }
    if (pathMatched) throw new HttpError('method-not-allowed', `${method} ${p} is not allowed`);
    throw notFound(`no endpoint ${p}`);
  }

  async dispatch(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { handler, params } = this.match(req, url);
    await handler({ req, res, url, params });
  }
}

/**
 * Server-sent event streams with bounds (docs/security.md): at most `max` open at once (one more is
 * refused, 503 too-many-streams), and a client that does not read its events is dropped once
 * `maxQueuedBytes` wait for it — every event is a full snapshot, so a stalled client would
 * otherwise make the server hold one more snapshot per change, without end.
 */
export class EventStreams {
  private readonly clients = new Set<ServerResponse>();
  /** clients dropped for not reading */
  dropped = 0;

  constructor(private readonly o: { max: number; maxQueuedBytes: number }) {}

  get size(): number { return this.clients.size; }

  /** Starts a stream on `res`; `onClose` runs when it ends for any reason. Throws when full. */
  open(req: IncomingMessage, res: ServerResponse, onClose: () => void = () => {}): (event: string, data: unknown) => void {
    if (this.clients.size >= this.o.max) throw new HttpError('too-many-streams', `too many event streams open (at most ${this.o.max})`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    this.clients.add(res);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.clients.delete(res);
      onClose();
    };
    req.on('close', close);
    res.on('close', close);
    return (event, data) => this.write(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** One event to every open stream. */
  broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const msg = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.clients) this.write(res, msg);
  }

  /** Ends every stream. */
  endAll(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private write(res: ServerResponse, msg: string): void {
    if (res.destroyed || !this.clients.has(res)) return;
    if (res.writableLength + msg.length > this.o.maxQueuedBytes) {
      this.dropped++;
      this.clients.delete(res);
      res.destroy(); // a slow client: it reconnects and gets a fresh snapshot
      return;
    }
    res.write(msg);
  }
}
