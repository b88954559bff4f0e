// Talks to a running `livemr host` over a unix socket of its HTTP API (docs/host.md "API").
import { request, type ClientRequest } from 'node:http';
import type { CompositionInfo, ResolvedSegment } from '../fs/index.js';
import { isErrorCode, LiveMrError, type ErrorCode } from '../errors/index.js';
import { statusSocketPath, type AgentStatus } from './agent.js';
import type { BigLogInfo, BigLogSource } from './biglog.js';
import type { ShareRecord } from './shares.js';

/** The agent refused a request (its error code and status), or no agent answers ('agent-unreachable'). */
export class AgentRequestError extends LiveMrError {
  override name = 'AgentRequestError';
  constructor(override readonly code: ErrorCode, readonly status: number, message: string) {
    super(message);
  }
}

/**
 * A client of one agent's HTTP API on a unix socket: <stateDir>/agent.sock (root, the CLI) or the
 * config's `apiSocket` (its group: the panel). Remote hosts are reached through a forwarded socket
 * (ssh -L), so the socket's file permissions stay the only access check (docs/host.md "API").
 */
export class AgentClient {
  constructor(readonly socketPath: string, private readonly timeoutMs = 10_000) {}

  request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method, timeout: this.timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const status = res.statusCode ?? 500;
          let parsed: unknown;
          try { parsed = JSON.parse(text); } catch { return reject(new AgentRequestError('internal', status, `agent answered ${status} with non-JSON`)); }
          if (status >= 400) {
            const e = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
            return reject(new AgentRequestError(isErrorCode(e?.code) ? e.code : 'internal', status, typeof e?.message === 'string' ? e.message : `HTTP ${status}`));
          }
          resolve(parsed as T);
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(new AgentRequestError('agent-unreachable', 502, `no agent answering on ${this.socketPath} (${e.code ?? e.message}): is \`livemr host\` running?`)));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  status(): Promise<AgentStatus> { return this.request('GET', '/status'); }
  compositions(): Promise<CompositionInfo[]> { return this.request('GET', '/compositions'); }
  composition(name: string): Promise<CompositionInfo & { segmentList: ResolvedSegment[]; segmentListTruncated: boolean }> {
    return this.request('GET', `/compositions/${encodeURIComponent(name)}`);
  }
  bigLogs(): Promise<BigLogInfo[]> { return this.request('GET', '/biglogs'); }
  requestShare(vm: string, path: string): Promise<ShareRecord> { return this.request('POST', '/shares', { vm, path }); }
  joinBigLog(name: string, sources: BigLogSource[]): Promise<BigLogInfo> { return this.request('POST', '/biglogs', { name, sources }); }

  /**
   * Follows GET /events: `status` and `compositions` snapshots as they come; after a drop it
   * reconnects every `retryMs` and the first snapshots bring the caller up to date again.
   */
  follow(on: { event: (name: string, data: unknown) => void; state?: (connected: boolean, error?: Error) => void }, retryMs = 1000): { close(): void } {
    let closed = false;
    let current: ClientRequest | undefined;
    let timer: NodeJS.Timeout | undefined;
    const again = (err: Error) => {
      if (closed) return;
      on.state?.(false, err);
      timer = setTimeout(connect, retryMs);
    };
    const connect = () => {
      if (closed) return;
      let dropped = false;
      const drop = (err: Error) => { if (!dropped) { dropped = true; again(err); } };
      current = request({ socketPath: this.socketPath, path: '/events', method: 'GET' }, (res) => {
        if (res.statusCode !== 200) { res.resume(); return drop(new Error(`GET /events answered ${res.statusCode}`)); }
        on.state?.(true);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) name = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            try { on.event(name, JSON.parse(data)); } catch { /* a block that is not JSON: skipped */ }
          }
        });
        res.on('end', () => drop(new Error('the agent closed the event stream')));
        res.on('error', drop);
      });
      current.on('error', drop);
      current.end();
    };
    connect();
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        current?.destroy();
      },
    };
  }
}

export function agentRequest<T>(stateDir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  return new AgentClient(statusSocketPath(stateDir)).request<T>(method, path, body);
}

/** The agent's state directory: the stateDir of `config` (a file), else `state`, else $LIVEMR_STATE or /var/lib/livemr. */
export async function agentStateDir(o: { state?: string | undefined; config?: string | undefined }): Promise<string> {
  if (o.config) return (await import('./config.js')).loadConfig(o.config).stateDir;
  return o.state ?? process.env.LIVEMR_STATE ?? '/var/lib/livemr';
}
