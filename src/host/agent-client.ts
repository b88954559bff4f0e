// Talks to a running `livemr host` over its root-only unix socket (<stateDir>/agent.sock).
import { request } from 'node:http';
import { statusSocketPath } from './agent.js';

export async function agentRequest<T>(stateDir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const socketPath = statusSocketPath(stateDir);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown;
        try { parsed = JSON.parse(text); } catch { return reject(new Error(`agent answered ${res.statusCode} with non-JSON`)); }
        if ((res.statusCode ?? 500) >= 400) return reject(new Error((parsed as { error?: string }).error ?? `HTTP ${res.statusCode}`));
        resolve(parsed as T);
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`no agent answering on ${socketPath} (${e.code ?? e.message}): is \`livemr host\` running?`)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The agent's state directory: the stateDir of `config` (a file), else `state`, else $LIVEMR_STATE or /var/lib/livemr. */
export async function agentStateDir(o: { state?: string | undefined; config?: string | undefined }): Promise<string> {
  if (o.config) return (await import('./config.js')).loadConfig(o.config).stateDir;
  return o.state ?? process.env.LIVEMR_STATE ?? '/var/lib/livemr';
}
