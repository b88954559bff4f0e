// The daemon's control socket (STATE_DIR/control.sock): one JSON request per line, one JSON reply
// per line, in order. Requests: see `Request`. Replies: {"ok":true,"result":...} or
// {"ok":false,"error":{"code":"ENOFILE","message":"..."}}. Lines are bounded (MAX_LINE).

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { FsError, type FsErrorCode } from './errors.js';
import type { CompositionInfo, CompositionStore, ResolvedSegment, SegmentSpec } from './store.js';

export const MAX_LINE = 256 * 1024 * 1024;

export type Request =
  | { op: 'ping' }
  | { op: 'compose'; name: string; segments: SegmentSpec[]; directIo?: boolean }
  | { op: 'append'; name: string; segments: SegmentSpec[] }
  | { op: 'fill'; name: string; at: number; segment: { file: string; offset: number; length: number } }
  | { op: 'truncate'; name: string; length: number }
  | { op: 'decompose'; name: string }
  | { op: 'ls' }
  | { op: 'segments'; name: string }
  | { op: 'shutdown' };

export function socketPath(stateDir: string): string {
  return path.join(stateDir, 'control.sock');
}

function handle(store: CompositionStore, req: Request): unknown {
  switch (req.op) {
    case 'ping':
      return 'pong';
    case 'compose':
      return store.compose(req.name, req.segments, req.directIo === undefined ? {} : { directIo: req.directIo });
    case 'append':
      return store.append(req.name, req.segments);
    case 'fill':
      return store.fill(req.name, req.at, req.segment);
    case 'truncate':
      return store.truncate(req.name, req.length);
    case 'decompose':
      return store.remove(req.name);
    case 'ls':
      return store.list();
    case 'segments':
      return store.segments(req.name);
    default:
      throw new FsError('EPROTO', `unknown op ${JSON.stringify((req as { op?: unknown }).op)}`);
  }
}

/** Serves the control socket; `onShutdown` runs after the reply to a shutdown request is sent. */
export async function serveControl(store: CompositionStore, file: string, onShutdown: () => void): Promise<net.Server> {
  fs.rmSync(file, { force: true }); // left by a crashed daemon; we hold the state lock
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) {
        sock.end(JSON.stringify({ ok: false, error: { code: 'EPROTO', message: 'request too large' } }) + '\n');
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let reply: object;
        let shutdown = false;
        try {
          const req = JSON.parse(line) as Request;
          if (typeof req !== 'object' || req === null) throw new FsError('EPROTO', 'request must be an object');
          shutdown = req.op === 'shutdown';
          reply = { ok: true, result: shutdown ? true : handle(store, req) };
        } catch (e) {
          const code: FsErrorCode = e instanceof FsError ? e.code : 'EPROTO';
          reply = { ok: false, error: { code, message: (e as Error).message } };
        }
        sock.write(JSON.stringify(reply) + '\n');
        if (shutdown) sock.end(onShutdown);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  fs.chmodSync(file, 0o600);
  return server;
}

/** A client of a running daemon. `connect` returns undefined when no daemon listens. */
export class ControlClient {
  private constructor(
    private readonly sock: net.Socket,
    private readonly lines: AsyncIterator<string>,
  ) {}

  static async connect(stateDir: string): Promise<ControlClient | undefined> {
    const sock = net.createConnection(socketPath(stateDir));
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
    } catch (e) {
      sock.destroy();
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') return undefined;
      throw e;
    }
    sock.setEncoding('utf8');
    return new ControlClient(sock, readLines(sock));
  }

  async request<T = unknown>(req: Request): Promise<T> {
    this.sock.write(JSON.stringify(req) + '\n');
    const next = await this.lines.next();
    if (next.done) throw new FsError('EPROTO', 'daemon closed the connection');
    const reply = JSON.parse(next.value) as { ok: boolean; result?: T; error?: { code: FsErrorCode; message: string } };
    if (!reply.ok) throw new FsError(reply.error?.code ?? 'EPROTO', reply.error?.message ?? 'request failed');
    return reply.result as T;
  }

  compose(name: string, segments: SegmentSpec[], directIo?: boolean): Promise<CompositionInfo> {
    return this.request(directIo === undefined ? { op: 'compose', name, segments } : { op: 'compose', name, segments, directIo });
  }
  append(name: string, segments: SegmentSpec[]): Promise<CompositionInfo> {
    return this.request({ op: 'append', name, segments });
  }
  truncate(name: string, length: number): Promise<CompositionInfo> {
    return this.request({ op: 'truncate', name, length });
  }
  decompose(name: string): Promise<boolean> {
    return this.request({ op: 'decompose', name });
  }
  list(): Promise<CompositionInfo[]> {
    return this.request({ op: 'ls' });
  }
  segments(name: string): Promise<ResolvedSegment[]> {
    return this.request({ op: 'segments', name });
  }

  close(): void {
    this.sock.end();
  }
}

async function* readLines(sock: net.Socket): AsyncGenerator<string> {
  let buf = '';
  for await (const chunk of sock as AsyncIterable<string>) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE) throw new FsError('EPROTO', 'reply too large');
  }
}
