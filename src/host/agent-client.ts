// Talks to a running `livemr host` over its root-only unix socket (<stateDir>/agent.sock).
import { request } from 'node:http';
import { isErrorCode, LiveMrError, type ErrorCode } from '../errors/index.js';
import { statusSocketPath } from './agent.js';

/** The agent refused a request (its error code and status), or no agent answers ('agent-unreachable'). */
export class AgentRequestError extends LiveMrError {
  override name = 'AgentRequestError';
  constructor(override readonly code: ErrorCode, readonly status: number, message: string) {
    super(message);
  }
}

export async function agentRequest<T>(stateDir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const socketPath = statusSocketPath(stateDir);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
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
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new AgentRequestError('agent-unreachable', 502, `no agent answering on ${socketPath} (${e.code ?? e.message}): is \`livemr host\` running?`)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The agent's state directory: the stateDir of `config` (a file), else `state`, else $LIVEMR_STATE or /var/lib/livemr. */
export async function agentStateDir(o: { state?: string | undefined; config?: string | undefined }): Promise<string> {
  if (o.config) return (await import('./config.js')).loadConfig(o.config).stateDir;
  return o.state ?? process.env.LIVEMR_STATE ?? '/var/lib/livemr';
}
