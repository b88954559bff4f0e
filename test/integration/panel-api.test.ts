// The panel's REST API against a real host agent it talks to over the agent's API socket (real
// FUSE mount, the panel's real WebHDFS gateway over it, real JVM for a job), without a guest: the VM's QMP socket does not exist, so the agent keeps
// connecting and a share request waits for the guest. Every endpoint, and bad input of each kind:
// a clear 4xx JSON error and nothing changed.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePlan, parseMetrics, type Decision } from '../../src/cache/index.js';
import { HostAgent, parseConfig, type AgentConfig } from '../../src/host/index.js';
import { createLogger } from '../../src/host/log.js';
import { parsePanelConfig, type PanelConfig } from '../../src/panel/config.js';
import { Panel } from '../../src/panel/server.js';
import { createTestUser, type TestUser } from '../harness/users.js';

let dir: string;
let panel: Panel | undefined;
let cfg: PanelConfig;
let agentCfg: AgentConfig;
let agent: HostAgent | undefined;
let jobUser: TestUser;
const logs: string[] = [];
const words = 'alpha beta gamma\nbeta gamma\ngamma\n';

async function call(method: string, path: string, opts: { token?: string | null; body?: string | Buffer; type?: string; cookie?: string } = {}) {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? panel!.token : opts.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.type) headers['content-type'] = opts.type;
  if (opts.cookie) headers.cookie = opts.cookie;
  const r = await fetch(panel!.url + path, { method, headers, body: typeof opts.body === 'string' ? opts.body : opts.body && new Uint8Array(opts.body), redirect: 'manual' });
  const text = await r.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, text, headers: r.headers };
}
const post = (path: string, body: unknown, token?: string | null) => call('POST', path, { body: JSON.stringify(body), type: 'application/json', token });

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function expectError(r: { status: number; json: any }, status: number, msg?: RegExp) {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  expect(r.json?.error?.code).toEqual(expect.any(String));
  if (msg) expect(r.json.error.message).toMatch(msg);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-panel-api-'));
  chmodSync(dir, 0o711); // the job user traverses to its work directory, lists nothing
  jobUser = createTestUser('lmrjob');
  // stands for a VM image: root's, 0600
  mkdirSync(join(dir, 'images'), { mode: 0o700 });
  writeFileSync(join(dir, 'images', 'disk.qcow2'), 'QFI\xfb image bytes', { mode: 0o600 });
  writeFileSync(join(dir, 'words.txt'), words);
  // decisions as `livemr cache run --dry-run` prints them: a baseline, then a planned one
  const plan = makePlan(parseMetrics(JSON.parse(readFileSync('test/fixtures/cache/metrics.json', 'utf8'))));
  const ds: Decision[] = [
    { at: new Date().toISOString(), step: 0, action: 'baseline', reason: 'first sample', hysteresis: 0.05 },
    { at: new Date().toISOString(), step: 1, action: 'dry-run', reason: 'would apply', hysteresis: 0.05, move: 0.4, plan: { solver: plan.solver, fitness: plan.fitness, rows: plan.rows } },
  ];
  writeFileSync(join(dir, 'decisions.jsonl'), ds.map((d) => JSON.stringify(d)).join('\n') + '\nnot json\n');
  agentCfg = parseConfig({
    mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null, apiSocket: join(dir, 'agent-api.sock'),
    vms: [{ name: 'vm1', qmp: join(dir, 'no-such.qmp') }],
  });
  agent = await HostAgent.start(agentCfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }).child('host'));
  agent.store.compose('local-words', [{ file: join(dir, 'words.txt'), offset: 0, length: words.length }]);
  cfg = parsePanelConfig({
    agents: [{ socket: agentCfg.apiSocket }], stateDir: join(dir, 'panel'),
    listen: '127.0.0.1:0', cacheDecisions: join(dir, 'decisions.jsonl'), maxJarBytes: 1 << 20,
    jobUser: jobUser.name, jobWorkDir: join(dir, 'jobs-work'), maxJars: 3, maxQueuedJobs: 2,
  });
  panel = await Panel.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
});

afterAll(async () => {
  await panel?.stop();
  await agent?.stop();
  try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
  rmSync(dir, { recursive: true, force: true });
  jobUser?.remove();
});

/**
 * A jar whose Main-Class tries what a hostile job would; it reports into its output directory.
 * Built without blocking: the panel runs in this process, and a blocked event loop lets its idle
 * keep-alive sockets expire under the client's next request (ECONNRESET).
 */
async function probeJar(): Promise<Buffer> {
  const src = join(dir, 'probe');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'Probe.java'), `
import java.nio.file.*;
import java.util.*;
public class Probe {
  public static void main(String[] a) throws Exception {
    // RunJar passes: our args (paths to try), the input URI, the output URI
    Path out = Paths.get(java.net.URI.create(a[a.length - 1]));
    Files.createDirectories(out);
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < a.length - 2; i++) {
      String p = a[i];
      try {
        if (p.startsWith("write:")) { Files.write(Paths.get(p.substring(6)), "x".getBytes()); sb.append("WROTE ").append(p).append("\\n"); }
        else if (Files.isDirectory(Paths.get(p))) { try (var s = Files.list(Paths.get(p))) { long n = s.count(); sb.append("LISTED ").append(p).append(" ").append(n).append("\\n"); } }
        else { int n = Files.readAllBytes(Paths.get(p)).length; sb.append("READ ").append(p).append(" ").append(n).append("\\n"); }
      } catch (Exception e) { sb.append("DENIED ").append(p).append(" ").append(e.getClass().getSimpleName()).append("\\n"); }
    }
    for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) if (l.matches("^(Uid|Gid|Groups):.*")) sb.append(l.replace('\\t', ' ').trim()).append("\\n");
    sb.append("ENV ").append(String.join(",", new TreeSet<>(System.getenv().keySet()))).append("\\n");
    Files.write(out.resolve("part-r-00000"), sb.toString().getBytes());
    // left for the panel (root) to preview: a symlink and a hard link to root's secrets
    Files.createSymbolicLink(out.resolve("part-r-00001"), Paths.get("/etc/shadow"));
    try { Files.createLink(out.resolve("part-r-00002"), Paths.get("/etc/shadow")); } catch (Exception e) { }
  }
}
`);
  const run = promisify(execFile);
  await run('javac', ['-d', src, join(src, 'Probe.java')]);
  await run('jar', ['cfe', join(dir, 'probe.jar'), 'Probe', '-C', src, 'Probe.class']);
  return readFileSync(join(dir, 'probe.jar'));
}

describe('panel REST API', () => {
  it('listens on loopback, writes the token root-only, refuses every request without a valid token', async () => {
    expect(new URL(panel!.url).hostname).toBe('127.0.0.1');
    expect(statSync(join(cfg.stateDir, 'panel.token')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(cfg.stateDir, 'panel.token'), 'utf8').trim()).toBe(panel!.token);
    for (const [m, p] of [['GET', '/api/v1/inventory'], ['GET', '/api/v1/events'], ['GET', '/api/v1/jobs'], ['GET', '/api/v1/cache'], ['POST', '/api/v1/shares'], ['GET', '/api/v1/nope']]) {
      expectError(await call(m!, p!, { token: null }), 401, /Bearer/);
      expectError(await call(m!, p!, { token: 'x'.repeat(32) }), 401);
    }
    // the UI: login page without a cookie, then the app with it
    const page = await call('GET', '/', { token: null });
    expect(page.status).toBe(200);
    expect(page.text).toContain('name="token"');
    expect(page.text).not.toContain('app.js');
    const bad = await call('POST', '/login', { token: null, body: 'token=wrong', type: 'application/x-www-form-urlencoded' });
    expect(bad.status).toBe(401);
    const ok = await call('POST', '/login', { token: null, body: `token=${encodeURIComponent(panel!.token)}`, type: 'application/x-www-form-urlencoded' });
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    expect(ok.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    const app = await call('GET', '/', { token: null, cookie });
    expect(app.text).toContain('/app.js');
    const js = await call('GET', '/app.js', { token: null, cookie });
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.text).toContain('EventSource');
    expect((await call('GET', '/api/v1/inventory', { token: null, cookie })).status).toBe(200);
  });

  it('inventory and VM views', async () => {
    const inv = await call('GET', '/api/v1/inventory');
    expect(inv.status).toBe(200);
    expect(inv.json.vms.map((v: any) => [v.name, v.qmp, v.channel])).toEqual([['vm1', 'connecting', 'none']]);
    expect(inv.json.webhdfs).toBe(panel!.webhdfsBase);
    expect((await call('GET', '/api/v1/vms/vm1')).json.name).toBe('vm1');
    expectError(await call('GET', '/api/v1/vms/nope'), 404, /unknown VM 'nope'/);
    expect((await call('GET', '/api/v1')).json.version).toBe(1);
    expectError(await call('GET', '/api/v1/nope'), 404);
    expectError(await call('DELETE', '/api/v1/inventory'), 405);
    expectError(await call('GET', '/api/v1/vms/%E0%A4%A'), 400, /percent-encoding/);
  });

  it('share requests: bad input is refused with 4xx JSON and changes nothing; a good one is pending and streamed live', async () => {
    const sharesBefore = (await call('GET', '/api/v1/shares')).json;
    expect(sharesBefore).toEqual([]);
    expectError(await post('/api/v1/shares', { vm: 'nope', path: '/var/log/x' }), 404, /unknown VM/);
    expectError(await post('/api/v1/shares', { vm: 'vm1', path: '/var/log/../../etc/shadow' }), 400, /traversal/);
    expectError(await post('/api/v1/shares', { vm: 'vm1', path: 'etc/shadow' }), 400, /absolute/);
    expectError(await post('/api/v1/shares', { vm: 'vm1', path: '/a//b' }), 400, /normalized/);
    expectError(await post('/api/v1/shares', { vm: 'vm1', path: '/a', extra: 1 }), 400, /unknown key 'extra'/);
    expectError(await post('/api/v1/shares', { vm: 'vm1' }), 400, /path/);
    expectError(await call('POST', '/api/v1/shares', { body: '{"vm":', type: 'application/json' }), 400, /not valid JSON/);
    expectError(await call('POST', '/api/v1/shares', { body: 'vm=vm1&path=/a', type: 'application/x-www-form-urlencoded' }), 415);
    expectError(await call('POST', '/api/v1/shares', { body: JSON.stringify({ vm: 'vm1', path: `/${'a'.repeat(100_000)}` }), type: 'application/json' }), 413, /larger than/);
    expect((await call('GET', '/api/v1/shares')).json).toEqual([]);

    // live: the event stream carries the new request
    const ac = new AbortController();
    const es = await fetch(`${panel!.url}/api/v1/events`, { headers: { authorization: `Bearer ${panel!.token}` }, signal: ac.signal });
    expect(es.headers.get('content-type')).toBe('text/event-stream');
    const reader = es.body!.getReader();
    let seen = '';
    const first = await reader.read();
    seen += new TextDecoder().decode(first.value);
    expect(seen).toMatch(/^event: inventory\ndata: /);

    const r = await post('/api/v1/shares', { vm: 'vm1', path: '/mnt/data/app.log' });
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ vm: 'vm1', path: '/mnt/data/app.log', state: 'pending', status: 'requested' });
    const t0 = Date.now();
    while (!/"shares":\[\{"vm":"vm1","path":"\/mnt\/data\/app.log","state":"pending"/.test(seen)) {
      if (Date.now() - t0 > 5000) throw new Error(`no live update: ${seen.slice(-500)}`);
      const c = await reader.read();
      seen += new TextDecoder().decode(c.value);
    }
    ac.abort();
    expect((await call('GET', '/api/v1/shares')).json).toMatchObject([{ vm: 'vm1', path: '/mnt/data/app.log', state: 'pending' }]);
    expect(JSON.parse(readFileSync(join(agentCfg.stateDir, 'requests.json'), 'utf8'))).toEqual({ vm1: ['/mnt/data/app.log'] });
  });

  it('composed files: lists, segments, readable on the mount and over WebHDFS; compose refuses what is not granted', async () => {
    const list = (await call('GET', '/api/v1/composed')).json;
    expect(list).toMatchObject([{ name: 'local-words', fileName: 'livemr_local-words', size: words.length, segments: 1 }]);
    const c = list[0];
    expect(c.mountPath).toBe(join(agentCfg.mountpoint, 'livemr_local-words'));
    expect(readFileSync(c.mountPath, 'utf8')).toBe(words);
    const st = await fetch(`${panel!.gateway.url}/webhdfs/v1/livemr_local-words?op=GETFILESTATUS&user.name=alice`);
    expect(((await st.json()) as any).FileStatus.length).toBe(words.length);
    expect(c.webhdfs).toBe(`${panel!.webhdfsBase}/livemr_local-words`);
    const d = (await call('GET', '/api/v1/composed/local-words')).json;
    expect(d.segmentList).toEqual([{ at: 0, file: join(dir, 'words.txt'), offset: 0, length: words.length }]);
    expectError(await call('GET', '/api/v1/composed/nope'), 404);

    expectError(await post('/api/v1/composed', { name: 'logs', sources: [{ vm: 'vm1', path: '/mnt/data/app.log' }] }), 409, /not granted.*pending/);
    expectError(await post('/api/v1/composed', { name: 'logs', sources: [{ vm: 'vm1', path: '/never/asked' }] }), 409, /never requested/);
    expectError(await post('/api/v1/composed', { name: 'logs', sources: [{ vm: 'vmX', path: '/a' }] }), 404, /unknown VM/);
    expectError(await post('/api/v1/composed', { name: 'logs', sources: [{ vm: 'vm1', path: '/a/../b' }] }), 400, /traversal/);
    expectError(await post('/api/v1/composed', { name: '../etc', sources: [{ vm: 'vm1', path: '/a' }] }), 400, /name/);
    expectError(await post('/api/v1/composed', { name: 'logs', sources: [] }), 400, /1-64/);
    expectError(await post('/api/v1/composed', { name: 'logs', sources: 'vm1:/a' }), 400);
    expect((await call('GET', '/api/v1/composed')).json.map((x: any) => x.name)).toEqual(['local-words']);
  });

  it('jobs: bad submissions are refused; an uploaded jar without a main class runs, fails cleanly and stays in the history', async () => {
    expectError(await post('/api/v1/jobs', { program: 'rm -rf', inputs: ['local-words'] }), 400, /program must be one of/);
    expectError(await post('/api/v1/jobs', { program: 'wordcount', inputs: ['nope'] }), 404, /no composed file 'nope'/);
    expectError(await post('/api/v1/jobs', { program: 'wordcount', inputs: [] }), 400);
    expectError(await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'], args: ['x'] }), 400, /takes no arguments/);
    expectError(await post('/api/v1/jobs', { program: 'grep', inputs: ['local-words'] }), 400, /regex/);
    expectError(await post('/api/v1/jobs', { program: 'jar', inputs: ['local-words'] }), 400, /uploaded jar/);
    expectError(await post('/api/v1/jobs', { program: 'jar', jar: '0123456789abcdef', inputs: ['local-words'] }), 404, /no uploaded jar/);
    expectError(await post('/api/v1/jobs', { program: 'jar', jar: '../../etc/passwd', inputs: ['local-words'] }), 400);
    expectError(await call('POST', '/api/v1/jars', { body: 'not a zip at all, just text....', type: 'application/java-archive' }), 400, /not a jar/);
    expectError(await call('POST', '/api/v1/jars', { body: Buffer.alloc(100), type: 'application/octet-stream' }), 415);
    expectError(await call('POST', '/api/v1/jars', { body: Buffer.alloc(2 << 20), type: 'application/java-archive' }), 413);
    expectError(await call('GET', '/api/v1/jobs/job-nope-000000'), 404);
    expectError(await call('GET', '/api/v1/jobs/..%2F..%2Fetc'), 404);
    expect((await call('GET', '/api/v1/jobs')).json).toEqual([]);

    // a real jar (zip) whose manifest names no main class: RunJar refuses it
    const jarDir = join(dir, 'jar');
    execFileSync('mkdir', ['-p', join(jarDir, 'META-INF')]);
    writeFileSync(join(jarDir, 'META-INF/MANIFEST.MF'), 'Manifest-Version: 1.0\n\n');
    execFileSync('python3', ['-c', 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1],"w"); z.write(sys.argv[2],"META-INF/MANIFEST.MF"); z.close()', join(dir, 'empty.jar'), join(jarDir, 'META-INF/MANIFEST.MF')]);
    const up = await call('POST', '/api/v1/jars', { body: readFileSync(join(dir, 'empty.jar')), type: 'application/java-archive' });
    expect(up.status).toBe(201);
    expect(up.json.id).toMatch(/^[0-9a-f]{16}$/);
    const sub = await post('/api/v1/jobs', { program: 'jar', jar: up.json.id, inputs: ['local-words'] });
    expect(sub.status).toBe(202);
    expect(sub.json).toMatchObject({ state: 'queued', program: 'jar', inputs: [{ name: 'local-words', uri: `${panel!.webhdfsBase}/livemr_local-words` }] });
    const done = await until('the job to end', async () => {
      const j = (await call('GET', `/api/v1/jobs/${sub.json.id}`)).json;
      return j.state !== 'queued' && j.state !== 'running' && j;
    });
    expect(done.state).toBe('failed');
    expect(done.exitCode).not.toBe(0);
    // no Main-Class: RunJar takes the next argument (the input URI) as the class name
    expect(done.message).toMatch(/ClassNotFoundException: webhdfs:/);
    expect(done.log.join('\n')).toMatch(/ClassNotFoundException/);
    expect((await call('GET', `/api/v1/jobs/${sub.json.id}/output`)).json).toEqual({ files: [], preview: '', truncated: false });
    expect((await call('GET', '/api/v1/jobs')).json.map((j: any) => j.id)).toEqual([sub.json.id]);

    // cancel: the second of two jobs while it waits, the first while its JVM runs
    const a = await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] });
    const b = await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] });
    expect((await call('GET', `/api/v1/jobs/${a.json.id}`)).json.state).toBe('running');
    expect((await call('POST', `/api/v1/jobs/${b.json.id}/cancel`)).json).toMatchObject({ state: 'cancelled', message: 'cancelled before it started' });
    expect((await call('POST', `/api/v1/jobs/${a.json.id}/cancel`)).status).toBe(200);
    const ca = await until('the running job to stop', async () => {
      const j = (await call('GET', `/api/v1/jobs/${a.json.id}`)).json;
      return j.state !== 'running' && j;
    });
    expect(ca).toMatchObject({ state: 'cancelled', message: 'cancelled while running' });
    expectError(await call('POST', '/api/v1/jobs/job-nope-000000/cancel'), 404);
    expect((await call('GET', '/api/v1/programs')).json.examples).toHaveProperty('wordcount');
  });

  it('an uploaded jar runs as the unprivileged job user with a minimal environment: no root secrets, state, image or mount', async () => {
    const up = await call('POST', '/api/v1/jars', { body: await probeJar(), type: 'application/java-archive' });
    expect(up.status).toBe(201);
    const token = join(cfg.stateDir, 'panel.token');
    const tries = ['/etc/shadow', token, cfg.stateDir, join(agentCfg.stateDir, 'requests.json'), join(dir, 'images', 'disk.qcow2'),
      join(agentCfg.mountpoint, 'livemr_local-words'), join(cfg.stateDir, 'jobs'), `write:${join(cfg.stateDir, 'jars', 'planted.jar')}`, '/root'];
    const sub = await post('/api/v1/jobs', { program: 'jar', jar: up.json.id, args: tries, inputs: ['local-words'] });
    expect(sub.status).toBe(202);
    const done = await until('the probe job to end', async () => {
      const j = (await call('GET', `/api/v1/jobs/${sub.json.id}`)).json;
      return j.state !== 'queued' && j.state !== 'running' && j;
    }, 120_000);
    expect(done.state, done.log?.join('\n')).toBe('succeeded');
    const out = (await call('GET', `/api/v1/jobs/${sub.json.id}/output`)).json;
    const report = out.preview as string;
    for (const t of tries) expect(report).toContain(`DENIED ${t} `);
    expect(report).not.toMatch(/^(READ|LISTED|WROTE) /m);
    expect(report).toMatch(new RegExp(`^Uid: ${jobUser.uid} ${jobUser.uid} ${jobUser.uid} ${jobUser.uid}$`, 'm'));
    expect(report).toMatch(new RegExp(`^Gid: ${jobUser.gid} ${jobUser.gid} ${jobUser.gid} ${jobUser.gid}$`, 'm'));
    expect(report).toMatch(/^Groups:\s*$/m); // no supplementary groups (root's, the mount's)
    const env = /^ENV (.*)$/m.exec(report)![1]!.split(',');
    expect(env.filter((k) => !['HADOOP_USER_NAME', 'HOME', 'LANG', 'PATH', 'TMPDIR', 'JAVA_HOME'].includes(k))).toEqual([]);
    // the symlink and any hard link the job left are listed at most, never read by the panel
    expect(report).not.toMatch(/root:[^\n]*:\d+:/);
    expect(existsSync(join(cfg.stateDir, 'jars', 'planted.jar'))).toBe(false);
    // nothing of the job is left running as its user
    const left = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return statSync(`/proc/${p}`).uid === jobUser.uid; } catch { return false; }
    });
    expect(left).toEqual([]);
  });

  it('a wordcount runs as the job user and reads the composed file through the gateway', async () => {
    const sub = await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] });
    const done = await until('the wordcount to end', async () => {
      const j = (await call('GET', `/api/v1/jobs/${sub.json.id}`)).json;
      return j.state !== 'queued' && j.state !== 'running' && j;
    }, 150_000);
    expect(done.state, done.log?.join('\n')).toBe('succeeded');
    const out = (await call('GET', `/api/v1/jobs/${sub.json.id}/output`)).json;
    expect(out.preview.split('\n').filter(Boolean).sort()).toEqual(['alpha\t1', 'beta\t2', 'gamma\t3']);
  });

  it('caps: queued jobs and stored jars', async () => {
    // one running + maxQueuedJobs queued; the next is refused and nothing is recorded for it
    const before = (await call('GET', '/api/v1/jobs')).json.length;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] })).json.id);
    expectError(await post('/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] }), 429, /queue/);
    expect((await call('GET', '/api/v1/jobs')).json.length).toBe(before + 3);
    for (const id of ids.reverse()) await call('POST', `/api/v1/jobs/${id}/cancel`);
    await until('the jobs to stop', async () => (await call('GET', '/api/v1/jobs')).json.every((j: any) => j.state !== 'running' && j.state !== 'queued'), 60_000);
    // jars: maxJars distinct jars, then a clear refusal; deleting one makes room
    const jars = (await call('GET', '/api/v1/jars')).json as { id: string }[];
    const zip = (n: number) => { const b = Buffer.alloc(64, n); b.writeUInt32LE(0x04034b50, 0); return b; };
    for (let n = jars.length; n < 3; n++) expect((await call('POST', '/api/v1/jars', { body: zip(n), type: 'application/java-archive' })).status).toBe(201);
    expectError(await call('POST', '/api/v1/jars', { body: zip(9), type: 'application/java-archive' }), 507, /at most 3 jars/);
    const first = (await call('GET', '/api/v1/jars')).json[0].id;
    expect((await call('DELETE', `/api/v1/jars/${first}`)).status).toBe(200);
    expectError(await call('DELETE', `/api/v1/jars/${first}`), 404);
    expect((await call('POST', '/api/v1/jars', { body: zip(9), type: 'application/java-archive' })).status).toBe(201);
  });

  it('cache view: the weights of the last plan and the last decisions (a line that is not JSON is skipped)', async () => {
    const c = (await call('GET', '/api/v1/cache')).json;
    expect(c.configured).toBe(true);
    expect(c.decisions.map((d: any) => d.action)).toEqual(['dry-run', 'baseline']);
    const ws = c.weights.rows.reduce((a: number, r: any) => a + r.ws, 0);
    expect(ws).toBeCloseTo(1, 6);
    expect(c.weights.rows.length).toBeGreaterThan(1);
  });

  it('job history survives a restart of the panel', async () => {
    const before = (await call('GET', '/api/v1/jobs')).json;
    await panel!.stop();
    panel = await Panel.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
    const after = (await call('GET', '/api/v1/jobs')).json;
    expect(after).toEqual(before);
    // the request is kept by the agent (asked again when the guest connects)
    expect(JSON.parse(readFileSync(join(agentCfg.stateDir, 'requests.json'), 'utf8'))).toEqual({ vm1: ['/mnt/data/app.log'] });
  });
});
