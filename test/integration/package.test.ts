// The package as a sysadmin gets it: `npm pack` (which runs `npm run build`), then
// `npm install -g --omit=dev` of the tarball into a scratch prefix (the native FUSE addon is built
// from source by the package's install script), then the installed `livemr` on a real qcow2 image:
// --version, `image map`, and a file composed from the mapped bytes, read through the FUSE mount and
// through the unprivileged WebHDFS gateway (another uid, a member of the mount's group only); and the
// packaged systemd units pass `systemd-analyze verify`.
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../harness/wait.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let tmp: string;
let prefix: string;
let livemrBin: string;
let installed: string;
let daemon: ChildProcess | undefined;
let gateway: ChildProcess | undefined;
let panel: ChildProcess | undefined;
let host: ChildProcess | undefined;
const GROUP = 4242; // the mount's reader group; need not exist in /etc/group
const NOBODY = 65534;
const mp = () => path.join(tmp, 'mnt');

function mounted(dir: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

/** Runs the installed command with a PATH that has the scratch prefix first, as a shell would. */
function livemr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(livemrBin, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PATH: `${path.join(prefix, 'bin')}:${process.env.PATH ?? ''}`, NODE_OPTIONS: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-package-'));
  fs.chmodSync(tmp, 0o755); // the gateway runs as another user
  prefix = path.join(tmp, 'prefix');
  // asynchronous: a minute of blocking the worker would time out vitest's RPC
  const run = promisify(execFile);
  // --ignore-scripts is not used: prepack must build dist/
  const packed = await run('npm', ['pack', '--pack-destination', tmp, '--json', '--loglevel=error'], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
  const tarball = path.join(tmp, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
  expect(path.basename(tarball)).toBe(`livemr-${VERSION}.tgz`);
  await run('npm', ['install', '-g', '--omit=dev', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: tmp, encoding: 'utf8', timeout: 170_000 });
  livemrBin = path.join(prefix, 'bin/livemr');
  installed = path.join(prefix, 'lib/node_modules/livemr');
}, 360_000);

afterAll(async () => {
  if (panel && panel.exitCode === null && panel.signalCode === null) {
    panel.kill('SIGTERM');
    await until('panel exit', () => panel!.exitCode !== null || panel!.signalCode !== null, 15_000).catch(() => panel!.kill('SIGKILL'));
  }
  if (host && host.exitCode === null && host.signalCode === null) {
    host.kill('SIGTERM');
    await until('agent exit', () => host!.exitCode !== null || host!.signalCode !== null, 15_000).catch(() => host!.kill('SIGKILL'));
  }
  const pmnt = tmp && path.join(tmp, 'panel/mnt');
  if (pmnt && mounted(pmnt)) spawnSync('fusermount3', ['-u', '-z', pmnt], { stdio: 'ignore' });
  if (gateway && gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGKILL');
  if (tmp && mounted(mp())) {
    if (daemon?.exitCode === null) daemon.kill('SIGTERM');
    await until('unmounted', () => !mounted(mp()), 10_000).catch(() => {
      if (spawnSync('fusermount3', ['-u', mp()], { stdio: 'ignore' }).status !== 0) spawnSync('fusermount3', ['-u', '-z', mp()], { stdio: 'ignore' });
    });
  }
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the installed package', () => {
  it('has the built code and the addon built on install, and neither sources nor dev dependencies', () => {
    expect(fs.existsSync(path.join(installed, 'dist/cli/main.js'))).toBe(true);
    expect(fs.existsSync(path.join(installed, 'dist/panel/ui/app.js'))).toBe(true);
    expect(fs.existsSync(path.join(installed, 'build/livemr_fuse.node'))).toBe(true);
    expect(fs.existsSync(path.join(installed, 'src/cli/main.ts'))).toBe(false);
    const deps = fs.readdirSync(path.join(installed, 'node_modules'));
    for (const dev of ['tsx', 'esbuild', 'typescript', 'vitest']) expect(deps).not.toContain(dev);
  });

  it('prints its version and help, with usage errors exiting 2', () => {
    const v = livemr('--version');
    expect(v).toMatchObject({ code: 0, stdout: `livemr ${VERSION}\n` });
    expect(livemr('help').code).toBe(0);
    const bad = livemr('image', 'map');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("livemr image: missing IMAGE\n(see 'livemr image map --help')\n");
  });

  it('doctor loads the addon the install built, one verdict per check, exit 1 exactly when one fails', () => {
    const d = livemr('doctor', '--json', '--state', path.join(tmp, 'doctor-state'), '--run-dir', path.join(tmp, 'doctor-run'));
    const results = JSON.parse(d.stdout) as { name: string; verdict: string; detail: string }[];
    expect(results.find((c) => c.name === 'FUSE addon')).toMatchObject({ verdict: 'ok', detail: `loads ${path.join(installed, 'build/livemr_fuse.node')}` });
    expect(new Set(results.map((c) => c.name)).size).toBe(results.length);
    expect(d.code).toBe(results.some((c) => c.verdict === 'fail') ? 1 : 0);
  });

  it('maps a real qcow2 and reads a file composed from the mapped bytes through the FUSE mount', async () => {
    const img = path.join(tmp, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '4M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 1048576 65536', img], { stdio: 'ignore' });
    const map = livemr('image', 'map', img, '--json');
    expect(map.stderr).toBe('');
    expect(map.code).toBe(0);
    const entries = JSON.parse(map.stdout) as { start: number; length: number; data: boolean; offset?: number }[];
    // the same extents qemu-img reports
    const ref = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', img], { encoding: 'utf8' })) as typeof entries;
    const pick = (l: typeof entries) => l.map((e) => ({ start: e.start, length: e.length, data: e.data, offset: e.offset }));
    expect(pick(entries)).toEqual(pick(ref));
    const data = entries.find((e) => e.data && e.start <= 1048576 && e.start + e.length >= 1048576 + 65536);
    expect(data?.offset).toBeTypeOf('number');
    const hostOffset = data!.offset! + (1048576 - data!.start);

    const state = path.join(tmp, 'state');
    fs.mkdirSync(mp());
    let log = '';
    daemon = spawn(livemrBin, ['mount', mp(), '--state', state, '--group', String(GROUP)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    daemon.stdout!.on('data', (d) => (log += d));
    daemon.stderr!.on('data', (d) => (log += d));
    await until(`livemr mount (${log})`, () => mounted(mp()) || daemon!.exitCode !== null, 30_000);
    expect(mounted(mp()), log).toBe(true);

    const c = livemr('compose', 'blk', '--segment', `${img}:${hostOffset}:65536`, '--state', state);
    expect(c.stderr).toBe('');
    expect(c).toMatchObject({ code: 0, stdout: 'livemr_blk 65536 bytes, 1 segments\n' });
    const file = path.join(mp(), 'livemr_blk');
    await until('livemr_blk on the mount', () => fs.existsSync(file), 10_000);
    expect(fs.readFileSync(file).equals(Buffer.alloc(65536, 0xab))).toBe(true);
    expect(JSON.parse(livemr('ls', '--json', '--state', state).stdout)).toMatchObject([{ fileName: 'livemr_blk', size: 65536 }]);

    // the gateway as an unprivileged user that may only read the mount through its group
    let glog = '';
    gateway = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${GROUP}`, livemrBin, 'hdfs', 'serve', '--mount', mp(),
      '--listen', '127.0.0.1:0', '--data-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    gateway.stdout!.on('data', (d) => (glog += d));
    gateway.stderr!.on('data', (d) => (glog += d));
    const base = await until(`gateway listening (${glog})`, () => /at (http:\/\/127\.0\.0\.1:\d+)\/webhdfs\/v1/.exec(glog)?.[1] ?? (gateway!.exitCode !== null && 'exited'), 30_000);
    expect(base, glog).not.toBe('exited');
    expect(glog).toMatch(/serving 1 composed files/);
    const res = await fetch(`${base}/webhdfs/v1/livemr_blk?op=OPEN&user.name=hadoop`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.alloc(65536, 0xab))).toBe(true);
    gateway.kill('SIGTERM');
    await until('gateway exit', () => gateway!.exitCode !== null, 10_000);
    expect(gateway.exitCode).toBe(0);

    const u = livemr('umount', '--state', state);
    expect(u.code, u.stderr).toBe(0);
    await until('daemon exit', () => daemon!.exitCode !== null, 10_000);
    expect(mounted(mp())).toBe(false);
  });

  it('the panel serves the UI bundle prebuilt by npm run build (esbuild is not installed), beside the installed agent', async () => {
    const dir = path.join(tmp, 'panel');
    const token = 'package-test-token-0123456789';
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'agent.json'), JSON.stringify({
      mountpoint: path.join(dir, 'mnt'), stateDir: path.join(dir, 'state'), runDir: path.join(dir, 'run'), metrics: null, apiSocket: path.join(dir, 'agent-api.sock'), vms: [],
    }));
    fs.writeFileSync(path.join(dir, 'panel.json'), JSON.stringify({
      agents: [{ socket: 'agent-api.sock' }], stateDir: path.join(dir, 'panel-state'),
      listen: '127.0.0.1:0', webhdfs: '127.0.0.1:0', token, jobWorkDir: path.join(dir, 'jobs'),
    }));
    let hostLog = '';
    host = spawn(livemrBin, ['host', '--config', path.join(dir, 'agent.json')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    host.stdout!.on('data', (d) => (hostLog += d));
    host.stderr!.on('data', (d) => (hostLog += d));
    await until(`agent API socket (${hostLog})`, () => fs.existsSync(path.join(dir, 'agent-api.sock')) || host!.exitCode !== null, 60_000);
    expect(host.exitCode, hostLog).toBeNull();
    let log = '';
    panel = spawn(livemrBin, ['panel', '--config', path.join(dir, 'panel.json')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    panel.stdout!.on('data', (d) => (log += d));
    panel.stderr!.on('data', (d) => (log += d));
    const url = await until(`panel started (${log})`, () => /^LiveMR panel: (http:\/\/127\.0\.0\.1:\d+)\//m.exec(log)?.[1] ?? (panel!.exitCode !== null && 'exited'), 60_000);
    expect(url, log).not.toBe('exited');
    const res = await fetch(`${url}/app.js`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(fs.readFileSync(path.join(installed, 'dist/panel/ui/app.js')))).toBe(true);
    const inv = (await (await fetch(`${url}/api/v1/inventory`, { headers: { authorization: `Bearer ${token}` } })).json()) as { mountpoint: string; hosts: { connected: boolean }[] };
    expect([inv.mountpoint, inv.hosts.map((h) => h.connected)]).toEqual([path.join(dir, 'mnt'), [true]]);
    panel.kill('SIGTERM');
    await until('panel exit', () => panel!.exitCode !== null, 15_000);
    expect(panel.exitCode, log).toBe(0);
    expect(mounted(path.join(dir, 'mnt'))).toBe(true); // the agent's, not the panel's
    host.kill('SIGTERM');
    await until('agent exit', () => host!.exitCode !== null, 15_000);
    expect(host.exitCode, hostLog).toBe(0);
    expect(mounted(path.join(dir, 'mnt'))).toBe(false);
  });

  it('ships systemd units that systemd-analyze verify accepts', () => {
    const dir = path.join(tmp, 'units');
    fs.mkdirSync(dir);
    const units = fs.readdirSync(path.join(installed, 'systemd')).filter((f) => f.endsWith('.service'));
    expect(units.sort()).toEqual(['livemr-agent.service', 'livemr-aggregator.service', 'livemr-gateway.service', 'livemr-panel.service']);
    for (const u of units) {
      const text = fs.readFileSync(path.join(installed, 'systemd', u), 'utf8');
      expect(text).toMatch(/^ExecStart=\/usr\/local\/bin\/livemr /m); // npm install -g's default prefix
      // verify insists that ExecStart exists: point it at the scratch install
      fs.writeFileSync(path.join(dir, u), text.replaceAll('/usr/local/bin/livemr', livemrBin));
    }
    const v = spawnSync('systemd-analyze', ['verify', ...units.map((u) => path.join(dir, u))], { encoding: 'utf8' });
    expect(v.stderr).toBe('');
    expect(v.status).toBe(0);
    // a unit that verify must reject, so the check above can fail
    fs.writeFileSync(path.join(dir, 'bad.service'), '[Service]\nExecStart=/nonexistent/livemr\n');
    expect(spawnSync('systemd-analyze', ['verify', path.join(dir, 'bad.service')]).status).not.toBe(0);
  });
});
