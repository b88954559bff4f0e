// The web UI's files: static HTML/CSS and one TypeScript module. The installed package serves the
// bundle `npm run build` made (dist/panel/ui/app.js, next to this file once compiled); from the
// sources (tests, demo) the module is bundled with esbuild on first use, so it never goes stale.
// Either way the bytes are kept in memory.
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

const dir = join(import.meta.dirname, 'ui');
const TYPES: Record<string, string> = { 'index.html': 'text/html; charset=utf-8', 'style.css': 'text/css; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8' };
const cache = new Map<string, Buffer>();

async function load(name: string): Promise<Buffer> {
  const hit = cache.get(name);
  if (hit) return hit;
  let data: Buffer;
  if (name === 'app.js' && !existsSync(join(dir, 'app.js'))) {
    const { build } = await import('esbuild');
    const r = await build({ entryPoints: [join(dir, 'app.ts')], bundle: true, write: false, format: 'esm', target: 'es2022', minify: false, logLevel: 'silent' });
    data = Buffer.from(r.outputFiles[0]!.contents);
  } else data = readFileSync(join(dir, name));
  cache.set(name, data);
  return data;
}

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

export async function uiAsset(res: ServerResponse, name: string): Promise<void> {
  const data = await load(name);
  res.writeHead(200, { 'content-type': TYPES[name]!, 'content-length': data.length, 'cache-control': 'no-cache', 'content-security-policy': CSP });
  res.end(data);
}

export function loginPage(res: ServerResponse, status: number, error = ''): void {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>LiveMR panel — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/style.css"></head>
<body class="login"><form class="login-box" method="post" action="/login">
<h1><span class="logo">◆</span> LiveMR panel</h1>
<p>Paste the panel token (printed at start, stored in <code>&lt;stateDir&gt;/panel.token</code>).</p>
${error ? `<p class="error" role="alert">${error}</p>` : ''}
<input type="password" name="token" id="token" placeholder="token" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form></body></html>`;
  const data = Buffer.from(html);
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': data.length, 'content-security-policy': CSP, 'cache-control': 'no-store' });
  res.end(data);
}
