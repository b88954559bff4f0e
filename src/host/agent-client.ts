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

/** --state DIR, or the stateDir of --config FILE, or /var/lib/livemr. */
export async function stateDirFromArgs(argv: string[]): Promise<string> {
  const arg = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const cfg = arg('--config');
  if (cfg) return (await import('./config.js')).loadConfig(cfg).stateDir;
  return arg('--state') ?? process.env.LIVEMR_STATE ?? '/var/lib/livemr';
}
