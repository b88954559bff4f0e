// Unit tests of the panel's pure parts: guest path checks, consent names, growth rates, config,
// token comparison, the cache view reader, bounded body reads.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/host/config.js';
import { tokenMatches, writeTokenFile, requestToken, newToken } from '../../../src/panel/auth.js';
import { readCacheView } from '../../../src/panel/cache-view.js';
import { parsePanelConfig } from '../../../src/panel/config.js';
import { HttpError, readBody } from '../../../src/http/index.js';
import { consentState, RateTracker } from '../../../src/panel/inventory.js';
import { checkGuestPath } from '../../../src/panel/server.js';

const dir = mkdtempSync(join(tmpdir(), 'livemr-panel-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const agents = [{ socket: '/run/livemr/agent-api.sock' }];
const agent = { mountpoint: '/srv/livemr', stateDir: '/var/lib/livemr', vms: [{ name: 'web1', qmp: '/run/web1.qmp' }] };

describe('checkGuestPath', () => {
  it('accepts absolute normalized paths', () => {
    expect(checkGuestPath('/var/log/app.log')).toBe('/var/log/app.log');
    expect(checkGuestPath('/a/..b/c.')).toBe('/a/..b/c.');
  });
  it.each([
    ['var/log', /absolute/], ['/var/../etc/shadow', /traversal/], ['/var/./x', /traversal/], ['/..', /traversal/],
    ['/a//b', /normalized/], ['/a/', /normalized/], ['/a\0b', /NUL/], ['/a\nb', /newlines/], ['', /non-empty/], [`/${'x'.repeat(5000)}`, /too long/],
  ])('refuses %j', (p, msg) => {
    expect(() => checkGuestPath(p)).toThrow(msg);
    try { checkGuestPath(p); } catch (e) { expect((e as HttpError).status).toBe(400); }
  });
  it('refuses non-strings', () => expect(() => checkGuestPath(42)).toThrow(HttpError));
});

describe('consentState', () => {
  it('names the agent statuses as users think of them', () => {
    expect(['requested', 'pending-consent', 'shared', 'denied', 'not-found', 'deleted', 'revoked', 'weird'].map(consentState))
      .toEqual(['pending', 'pending', 'granted', 'denied', 'not-found', 'not-found', 'revoked', 'error']);
  });
});

describe('RateTracker', () => {
  it('measures growth over its window and starts over after a shrink', () => {
    const r = new RateTracker(10_000);
    expect(r.rate('f', 0, 0)).toBe(0);
    expect(r.rate('f', 500, 500)).toBe(0); // less than a second of history
    expect(r.rate('f', 1000, 1000)).toBe(1000);
    expect(r.rate('f', 3000, 2000)).toBe(1500);
    expect(r.rate('f', 3000, 20_000)).toBeCloseTo(0, 6); // old samples leave the window
    expect(r.rate('f', 100, 21_000)).toBe(0); // shrank
    expect(r.rate('f', 1100, 22_000)).toBe(1000);
  });
});

describe('parsePanelConfig', () => {
  it('defaults: loopback, the panel user\'s own state, a job user that is not the panel\'s, local runner', () => {
    const c = parsePanelConfig({ agents });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8470 });
    expect(c.webhdfs).toEqual({ host: '127.0.0.1', port: 0 });
    expect(c.stateDir).toBe('/var/lib/livemr-panel');
    expect(c.yarn).toBeUndefined();
    expect(c.jobUser).toBe('livemr-job');
    expect(c.jobWorkDir).toBe('/var/lib/livemr-jobs');
    expect([c.maxQueuedJobs, c.maxJars]).toEqual([16, 32]);
    expect(c.token).toBeUndefined();
    expect(c.agents).toEqual([{ socket: '/run/livemr/agent-api.sock' }]);
  });
  it('YARN: hadoopConf (absolute dir) and jobOutput (a cluster URI, not file://)', () => {
    const c = parsePanelConfig({ agents, yarn: 'rm:8032', hadoopConf: '/etc/hadoop/conf', jobOutput: 'hdfs://nn:8020/user/livemr/jobs' });
    expect([c.yarn, c.hadoopConf, c.jobOutput]).toEqual(['rm:8032', '/etc/hadoop/conf', 'hdfs://nn:8020/user/livemr/jobs']);
    expect(() => parsePanelConfig({ agents, hadoopConf: 'conf' })).toThrow(/\$\.hadoopConf/);
    expect(() => parsePanelConfig({ agents, jobOutput: 'file:///tmp/out' })).toThrow(/\$\.jobOutput/);
    expect(() => parsePanelConfig({ agents, jobOutput: '/user/x' })).toThrow(/\$\.jobOutput/);
  });
  it('several agents: a relative socket is relative to the panel config; remote ones name their WebHDFS endpoint', () => {
    const c = parsePanelConfig({ agents: [{ socket: 'a.sock' }, { socket: '/run/livemr-panel/hostb.sock', webhdfs: 'hostb:9870' }], listen: '[::1]:9000' }, dir);
    expect(c.listen).toEqual({ host: '::1', port: 9000 });
    expect(c.agents).toEqual([{ socket: join(dir, 'a.sock') }, { socket: '/run/livemr-panel/hostb.sock', webhdfs: 'hostb:9870' }]);
  });
  it.each([
    [{ agents, listn: 'x' }, /\$\.listn: unknown key/],
    [{ agents, listen: 'localhost' }, /\$\.listen: must be "host:port"/],
    [{ agents, listen: '1.2.3.4:70000' }, /\$\.listen/],
    [{ agents, token: 'short' }, /\$\.token/],
    [{ agents, stateDir: 'rel' }, /\$\.stateDir: must be an absolute path/],
    [{ agents, jobUser: 'bad user' }, /\$\.jobUser/],
    [{ agents, maxJarBytes: -1 }, /\$\.maxJarBytes/],
    [{ agents, jobWorkDir: 'rel' }, /\$\.jobWorkDir: must be an absolute path/],
    [{ agents, maxQueuedJobs: 0 }, /\$\.maxQueuedJobs/],
    [{ agents, maxJars: 1.5 }, /\$\.maxJars/],
    [{ agent }, /\$\.agent: the panel no longer runs its own agent/],
    [{ agents: [{ socket: '/a' }, { socket: '/b' }] }, /at most one agent without "webhdfs"/],
    [{ agents: [{ socket: '/a', webhdfs: 'nope' }] }, /\$\.agents\[0\]\.webhdfs/],
    [{ agents: [{ sock: '/a' }] }, /\$\.agents\[0\]\.sock: unknown key/],
    [{}, /\$\.agents/],
    [[], /\$: must be a JSON object/],
  ])('refuses %j', (raw, msg) => {
    expect(() => parsePanelConfig(raw)).toThrow(ConfigError);
    expect(() => parsePanelConfig(raw)).toThrow(msg);
  });
});

describe('auth', () => {
  it('compares tokens exactly, whatever their length', () => {
    const t = newToken();
    expect(t.length).toBeGreaterThanOrEqual(32);
    expect(tokenMatches(t, t)).toBe(true);
    expect(tokenMatches(`${t}x`, t)).toBe(false);
    expect(tokenMatches(t.slice(1), t)).toBe(false);
    expect(tokenMatches(undefined, t)).toBe(false);
    expect(tokenMatches('', t)).toBe(false);
  });
  it('takes the bearer header first, else the cookie', () => {
    const req = (headers: Record<string, string>) => ({ headers }) as never;
    expect(requestToken(req({ authorization: 'Bearer abc', cookie: 'livemr_panel=def' }))).toBe('abc');
    expect(requestToken(req({ cookie: 'a=1; livemr_panel=d%20f' }))).toBe('d f');
    expect(requestToken(req({ authorization: 'Basic abc' }))).toBeUndefined();
  });
  it('writes the token file 0600', () => {
    const f = join(dir, 'panel.token');
    writeTokenFile(f, 'secret-token-value');
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });
});

describe('readCacheView', () => {
  it('empty states say why', () => {
    expect(readCacheView(undefined)).toMatchObject({ configured: false, decisions: [], empty: expect.stringMatching(/cacheDecisions/) });
    expect(readCacheView(join(dir, 'none.jsonl'))).toMatchObject({ configured: true, empty: expect.stringMatching(/not written/) });
    writeFileSync(join(dir, 'base.jsonl'), JSON.stringify({ at: 'x', step: 0, action: 'baseline', reason: 'r', hysteresis: 0.05 }) + '\n');
    expect(readCacheView(join(dir, 'base.jsonl'))).toMatchObject({ decisions: [{ action: 'baseline' }], empty: expect.stringMatching(/baseline/) });
  });
  it('reads only the tail of a large log, newest first, the latest plan', () => {
    const line = (step: number, ws: number) => JSON.stringify({ at: `t${step}`, step, action: 'applied', reason: 'moved', hysteresis: 0.05,
      plan: { solver: 'closed-form', fitness: 3, rows: [{ name: 'a', app: 'x', ws, wi: 0.5, s: 0, r: 0, d: 0, m: 0 }, { name: 'b', app: 'x', ws: 1 - ws, wi: 0.5, s: 0, r: 0, d: 0, m: 0 }] } });
    const lines = Array.from({ length: 5000 }, (_, i) => line(i, (i % 10) / 10));
    writeFileSync(join(dir, 'big.jsonl'), lines.join('\n') + '\ngarbage{\n');
    const v = readCacheView(join(dir, 'big.jsonl'), 5);
    expect(v.decisions.map((d) => d.step)).toEqual([4999, 4998, 4997, 4996, 4995]);
    expect(v.weights?.rows).toEqual([{ name: 'a', app: 'x', ws: 0.9, wi: 0.5 }, { name: 'b', app: 'x', ws: expect.closeTo(0.1, 9), wi: 0.5 }]);
  });
});

describe('readBody', () => {
  it('refuses a body over the limit with 413, without buffering it', async () => {
    const server = createServer((req, res) => {
      readBody(req, 1000).then((b) => res.end(`ok ${b.length}`), (e: HttpError) => res.writeHead(e.status).end(e.code));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const send = (body: Buffer, chunked: boolean) => new Promise<string>((resolve, reject) => {
      const req = request({ port, method: 'POST', headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length } }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(`${res.statusCode} ${t}`));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(await send(Buffer.alloc(1000), false)).toBe('200 ok 1000');
    expect(await send(Buffer.alloc(5000), false)).toBe('413 too-large');
    expect(await send(Buffer.alloc(5000), true)).toBe('413 too-large');
    server.close();
  });
});
