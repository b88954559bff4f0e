// The panel as it runs on an installed host: its own process (`livemr panel`), an unprivileged uid
// with no capabilities, talking to a real host agent it does not embed through the agent's API
// socket (mode 0660, the mount's group), and serving the agent's real FUSE mount over WebHDFS, which
// it reads through that group. Then with the ambient capabilities its unit grants, running real
// MapReduce jobs as a separate job user that holds none of them. The agent runs in this (root)
// process, without a guest: its VM's QMP socket does not exist, so a share request waits for the
// guest. Users, processes and the mount are removed in afterAll.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, HostAgent, parseConfig, statusSocketPath, type AgentConfig } from '../../src/host/index.js';
import { createTestUser, type TestUser } from '../harness/users.js';

const words = 'one two two three three three\n';
const BIN = resolve('bin/livemr.mjs');
let dir: string;
let agentCfg: AgentConfig;
let agent: HostAgent | undefined;
let panelUser: TestUser;
let jobUser: TestUser;
/** a local user outside the mount's group */
let localUser: TestUser;
let proc: ChildProcess | undefined;
let url = '';
let token = '';
let out = '';
const logs: string[] = [];

/** What livemr-panel.service grants as ambient capabilities (to start and collect jobs). */
const JOB_CAPS = 'setuid,setgid,chown,kill,dac_override';

/** A command as the panel's user: no supplementary groups but its own (the mount's); no capabilities, or the unit's. */
const asPanelUser = (cmd: string[], caps = false) => [
  'setpriv', `--reuid=${panelUser.uid}`, `--regid=${panelUser.gid}`, '--clear-groups',
  ...(caps ? [`--inh-caps=+${JOB_CAPS.replaceAll(',', ',+')}`, `--ambient-caps=+${JOB_CAPS.replaceAll(',', ',+')}`] : ['--inh-caps=-all']), '--', ...cmd,
];

/** Starts `livemr panel` as the panel user and waits for its URL and token. */
async function startPanel(caps: boolean): Promise<void> {
  out = '';
  const home = join(dir, 'panel');
  const [cmd, ...args] = asPanelUser([process.execPath, BIN, 'panel', '--config', join(dir, 'panel.json')], caps);
  // the Hadoop jars this machine's tests already resolved (root's cache: read with CAP_DAC_OVERRIDE)
  const hadoopCache = process.env.LIVEMR_HADOOP_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'livemr');
  proc = spawn(cmd!, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TMPDIR: '/tmp', LIVEMR_HADOOP_CACHE: hadoopCache }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const t0 = Date.now();
  while (!/token: (\S+)/.test(out)) {
    if (proc.exitCode !== null || Date.now() - t0 > 60_000) throw new Error(`the panel did not start: ${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  url = /LiveMR panel: (http:\/\/\S+?)\/?\n/.exec(out)![1]!;
  token = /token: (\S+)/.exec(out)![1]!;
}

async function stopPanel(): Promise<void> {
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const gone = new Promise((r) => proc!.once('exit', r));
    proc.kill('SIGTERM');
    await gone;
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const jobDone = (id: string) => until(`job ${id}`, async () => {
  const j = (await call('GET', `/api/v1/jobs/${id}`)).json;
  return j.state !== 'queued' && j.state !== 'running' && j;
}, 150_000);

/** A jar whose Main-Class reports its credentials and what it can read into its output. */
async function probeJar(): Promise<Buffer> {
  const src = join(dir, 'probe');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'Probe.java'), `
import java.nio.file.*;
public class Probe {
  public static void main(String[] a) throws Exception {
    Path out = Paths.get(java.net.URI.create(a[a.length - 1]));
    Files.createDirectories(out);
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < a.length - 2; i++) {
      try { sb.append("READ ").append(a[i]).append(" ").append(Files.readAllBytes(Paths.get(a[i])).length).append("\\n"); }
      catch (Exception e) { sb.append("DENIED ").append(a[i]).append("\\n"); }
    }
    for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) if (l.matches("^(Uid|Groups|CapPrm|CapEff|CapAmb):.*")) sb.append(l.replace('\\t', ' ').trim()).append("\\n");
    Files.write(out.resolve("part-r-00000"), sb.toString().getBytes());
  }
}
`);
  const run = promisify(execFile);
  await run('javac', ['-d', src, join(src, 'Probe.java')]);
  await run('jar', ['cfe', join(dir, 'probe.jar'), 'Probe', '-C', src, 'Probe.class']);
  return readFileSync(join(dir, 'probe.jar'));
}

async function call(method: string, path: string, body?: unknown) {
  const r = await fetch(url + path, {
    method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-panel-unpriv-'));
  chmodSync(dir, 0o711);
  panelUser = createTestUser('lmrpnl');
  jobUser = createTestUser('lmrjob');
  localUser = createTestUser('lmrloc');
  writeFileSync(join(dir, 'words.txt'), words, { mode: 0o600 }); // root's: only the agent reads it
  agentCfg = parseConfig({
    mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
    group: panelUser.name, apiSocket: join(dir, 'agent-api.sock'), vms: [{ name: 'vm1', qmp: join(dir, 'no-such.qmp') }],
  });
  agent = await HostAgent.start(agentCfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  agent.store.compose('local-words', [{ file: join(dir, 'words.txt'), offset: 0, length: words.length }]);
  // the panel user's own directory: its state and the jobs' parent
  const home = join(dir, 'panel');
  mkdirSync(home, { mode: 0o711 });
  chownSync(home, panelUser.uid, panelUser.gid);
  writeFileSync(join(dir, 'panel.json'), JSON.stringify({
    agents: [{ socket: agentCfg.apiSocket }], listen: '127.0.0.1:0', stateDir: join(home, 'state'),
    jobUser: jobUser.name, jobWorkDir: join(home, 'jobs-work'),
  }), { mode: 0o644 });
  await startPanel(false);
}, 90_000);

afterAll(async () => {
  await stopPanel();
  await agent?.stop();
  try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
  rmSync(dir, { recursive: true, force: true });
  panelUser?.remove();
  jobUser?.remove();
  localUser?.remove();
});

/** Runs a node script as `u` (its own group only, no capabilities); its stdout. */
const asUser = (u: TestUser, script: string): string =>
  execFileSync('setpriv', [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--inh-caps=-all', '--', process.execPath, '-e', script], { encoding: 'utf8' }).trim();

describe('the panel as an unprivileged process, against an agent it does not embed', () => {
  it('runs as the panel user with no capabilities, and reaches the agent only through the group\'s API socket', () => {
    const status = readFileSync(`/proc/${proc!.pid}/status`, 'utf8');
    // setpriv execs node: the pid is the panel's
    expect(/^Uid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/).map(Number)).toEqual([panelUser.uid, panelUser.uid, panelUser.uid, panelUser.uid]);
    expect(/^CapEff:\s+(\S+)$/m.exec(status)![1]).toMatch(/^0+$/);
    const api = statSync(agentCfg.apiSocket!);
    expect([api.mode & 0o777, api.uid, api.gid]).toEqual([0o660, 0, panelUser.gid]);
    // root's own socket (0600) and the agent's state stay out of reach
    const probe = `require('net').connect(${JSON.stringify(statusSocketPath(agentCfg.stateDir))}).on('connect', () => { console.log('CONNECTED'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
    expect(execFileSync(asPanelUser([process.execPath, '-e', probe])[0]!, asPanelUser([process.execPath, '-e', probe]).slice(1), { encoding: 'utf8' }).trim()).toBe('EACCES');
  });

  it('shows the agent\'s VMs and files, and asks the agent for a share (kept by the agent)', async () => {
    const inv = await call('GET', '/api/v1/inventory');
    expect(inv.status).toBe(200);
    expect(inv.json.vms.map((v: any) => [v.name, v.qmp])).toEqual([['vm1', 'connecting']]);
    expect(inv.json.composed.map((c: any) => [c.name, c.size])).toEqual([['local-words', words.length]]);
    expect(inv.json.hosts).toMatchObject([{ socket: agentCfg.apiSocket, connected: true }]);
    const r = await call('POST', '/api/v1/shares', { vm: 'vm1', path: '/var/log/app.log' });
    expect([r.status, r.json.state]).toEqual([202, 'pending']);
    expect(JSON.parse(readFileSync(join(agentCfg.stateDir, 'requests.json'), 'utf8'))).toEqual({ vm1: ['/var/log/app.log'] });
    expect((await call('POST', '/api/v1/shares', { vm: 'nope', path: '/a' })).status).toBe(404);
    const c = await call('POST', '/api/v1/composed', { name: 'logs', sources: [{ vm: 'vm1', path: '/var/log/app.log' }] });
    expect([c.status, c.json.error.message]).toEqual([409, expect.stringMatching(/not granted.*pending/)]);
    const d = await call('GET', '/api/v1/composed/local-words');
    expect(d.json.segmentList).toEqual([{ at: 0, file: join(dir, 'words.txt'), offset: 0, length: words.length }]);
  });

  it('follows the agent live: a file composed on the agent shows up in the panel\'s event stream', async () => {
    const ac = new AbortController();
    const es = await fetch(`${url}/api/v1/events`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
    const reader = es.body!.getReader();
    let seen = '';
    const first = await reader.read();
    seen += new TextDecoder().decode(first.value);
    expect(seen).not.toContain('"name":"late"');
    agent!.store.compose('late', [{ file: join(dir, 'words.txt'), offset: 0, length: 3 }]);
    const t0 = Date.now();
    while (!seen.includes('"name":"late"')) {
      if (Date.now() - t0 > 5000) throw new Error(`no live update: ${seen.slice(-500)}`);
      seen += new TextDecoder().decode((await reader.read()).value);
    }
    ac.abort();
  });

  it('serves the agent\'s mount over WebHDFS as the panel user (the mount\'s group), byte-exact', async () => {
    const inv = (await call('GET', '/api/v1/inventory')).json;
    const c = inv.composed.find((x: any) => x.name === 'local-words');
    const w = new URL(c.webhdfs);
    const r = await fetch(`http://${w.host}/webhdfs/v1${w.pathname}?op=OPEN&user.name=alice`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(words);
  });

  it('a local user the mount refuses cannot read through the panel\'s gateway either; the job user can (peer credentials)', async () => {
    const c = (await call('GET', '/api/v1/inventory')).json.composed.find((x: any) => x.name === 'local-words');
    const w = new URL(c.webhdfs);
    const open = `http://${w.host}/webhdfs/v1${w.pathname}?op=OPEN&user.name=alice`;
    const viaMount = `try { require('fs').readFileSync(${JSON.stringify(join(agentCfg.mountpoint, 'livemr_local-words'))}); console.log('READ'); } catch (e) { console.log(e.code); }`;
    const viaGateway = `fetch(${JSON.stringify(open)}).then(async (r) => console.log(r.status + ' ' + (await r.text()))).catch((e) => console.log('ERR ' + e.message))`;
    expect(asUser(localUser, viaMount)).toBe('EACCES');
    const refused = asUser(localUser, viaGateway);
    expect(refused).toMatch(/^403 .*AccessControlException/);
    expect(refused).toContain(`uid ${localUser.uid}`);
    expect(refused).not.toContain(words.trim());
    // the job user reads the mount only through the gateway
    expect(asUser(jobUser, viaMount)).toBe('EACCES');
    expect(asUser(jobUser, viaGateway)).toBe(`200 ${words.trim()}`);
  });

  it('a malformed login cookie is a 401 that names it, never a 500', async () => {
    const bad = { cookie: 'other=%zz; livemr_panel=%E0%A4%A' };
    const api = await fetch(`${url}/api/v1/inventory`, { headers: bad });
    expect(api.status).toBe(401);
    expect((await api.json()).error).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/livemr_panel cookie is malformed/) });
    const page = await fetch(`${url}/`, { headers: bad });
    expect(page.status).toBe(401);
    expect(page.headers.get('set-cookie')).toMatch(/^livemr_panel=;.*Max-Age=0/);
    expect(await page.text()).toContain('malformed');
    // another cookie's bad encoding is not the panel's business
    expect((await fetch(`${url}/api/v1/inventory`, { headers: { cookie: 'other=%zz', authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('an agent restart: the panel shows it lost, then back with its files, and serves its mount again', async () => {
    await agent!.stop();
    agent = undefined;
    const hosts = async () => (await call('GET', '/api/v1/inventory')).json.hosts as { connected: boolean; error?: string }[];
    await until('the panel to see the agent gone', async () => (await hosts())[0]!.connected === false, 10_000);
    expect((await call('POST', '/api/v1/shares', { vm: 'vm1', path: '/var/log/other.log' })).status).toBe(502); // agent-unreachable
    agent = await HostAgent.start(agentCfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
    await until('the panel to reconnect', async () => (await hosts())[0]!.connected, 10_000);
    const c = (await call('GET', '/api/v1/inventory')).json.composed.find((x: any) => x.name === 'local-words');
    const w = new URL(c.webhdfs);
    const text = await until('the gateway to see the mount again', async () => {
      const r = await fetch(`http://${w.host}/webhdfs/v1${w.pathname}?op=OPEN&user.name=alice`);
      return r.status === 200 && r.text();
    }, 10_000);
    expect(text).toBe(words);
  });

  it('without the job capabilities it says so instead of starting jobs, and never runs one as itself', async () => {
    const p = (await call('GET', '/api/v1/programs')).json;
    expect(p.jobUser).toBe(jobUser.name);
    expect(p.unavailable).toMatch(/without CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_KILL, CAP_SETGID, CAP_SETUID/);
    const j = await call('POST', '/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] });
    expect([j.status, j.json.error.code]).toEqual([503, 'jobs-unavailable']);
  });

  it('with the unit\'s ambient capabilities it runs jobs as the job user, who holds none of them and reads files only over WebHDFS', async () => {
    await stopPanel();
    await startPanel(true);
    expect(/^CapEff:\s+(\S+)$/m.exec(readFileSync(`/proc/${proc!.pid}/status`, 'utf8'))![1]).toBe('00000000000000e3');
    expect((await call('GET', '/api/v1/programs')).json.unavailable).toBeUndefined();
    const up = await fetch(`${url}/api/v1/jars`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/java-archive' }, body: new Uint8Array(await probeJar()) });
    expect(up.status).toBe(201);
    const tries = [join(agentCfg.stateDir, 'requests.json'), join(dir, 'words.txt'), join(agentCfg.mountpoint, 'livemr_local-words'), join(dir, 'panel', 'state', 'panel.token')];
    const probe = await call('POST', '/api/v1/jobs', { program: 'jar', jar: ((await up.json()) as { id: string }).id, args: tries, inputs: ['local-words'] });
    expect(probe.status).toBe(202);
    const done = await jobDone(probe.json.id);
    expect(done.state, done.log?.join('\n')).toBe('succeeded');
    const report = (await call('GET', `/api/v1/jobs/${probe.json.id}/output`)).json.preview as string;
    for (const t of tries) expect(report).toContain(`DENIED ${t}\n`);
    expect(report).toMatch(new RegExp(`^Uid: ${jobUser.uid} ${jobUser.uid} ${jobUser.uid} ${jobUser.uid}$`, 'm'));
    expect(report).toMatch(/^Groups:\s*$/m);
    for (const set of ['CapPrm', 'CapEff', 'CapAmb']) expect(report).toMatch(new RegExp(`^${set}: 0+$`, 'm'));
    const wc = await call('POST', '/api/v1/jobs', { program: 'wordcount', inputs: ['local-words'] });
    const wcDone = await jobDone(wc.json.id);
    expect(wcDone.state, wcDone.log?.join('\n')).toBe('succeeded');
    const out = (await call('GET', `/api/v1/jobs/${wc.json.id}/output`)).json;
    expect(out.preview.split('\n').filter(Boolean).sort()).toEqual(['one\t1', 'three\t3', 'two\t2']);
  }, 400_000);
});
