// Small HTTP helpers for the panel's API: typed errors that become JSON bodies, bounded body reads.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error the API answers with `status` and `{error: {code, message}}`; nothing was changed. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export const badRequest = (msg: string) => new ApiError(400, 'bad-request', msg);
export const notFound = (msg: string) => new ApiError(404, 'not-found', msg);
export const conflict = (msg: string) => new ApiError(409, 'conflict', msg);

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': data.length, 'cache-control': 'no-store' });
  res.end(data);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) return void res.destroy();
  sendJson(res, e.status, { error: { code: e.code, message: e.message } });
}

/** Reads the whole body, refusing (413) more than `limit` bytes without buffering them. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      return reject(new ApiError(413, 'too-large', `body larger than ${limit} bytes`));
    }
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new ApiError(413, 'too-large', `body larger than ${limit} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A JSON object body (content-type application/json: a cross-site form cannot send one). */
export async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type !== 'application/json') throw new ApiError(415, 'unsupported-media-type', 'send the body as application/json');
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
