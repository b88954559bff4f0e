// The package as a sysadmin gets it: `npm pack` (which runs `npm run build`), then
// `npm install -g --omit=dev` of the tarball into a scratch prefix (the native FUSE addon is built
// from source by the package's install script), then the installed `livemr` on a real qcow2 image:
// --version, `image map`, and a file composed from the mapped bytes, read through the FUSE mount.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../harness/wait.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let tmp: string;
let prefix: string;
let livemrBin: string;
let installed: string;
let daemon: ChildProcess | undefined;
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

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-package-'));
  prefix = path.join(tmp, 'prefix');
  // --ignore-scripts is not used: prepack must build dist/
  const packed = execFileSync('npm', ['pack', '--pack-destination', tmp, '--json', '--loglevel=error'], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
  const tarball = path.join(tmp, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  expect(path.basename(tarball)).toBe(`livemr-${VERSION}.tgz`);
  execFileSync('npm', ['install', '-g', '--omit=dev', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball], {
    cwd: tmp, encoding: 'utf8', timeout: 170_000, stdio: ['ignore', 'pipe', 'inherit'],
  });
  livemrBin = path.join(prefix, 'bin/livemr');
  installed = path.join(prefix, 'lib/node_modules/livemr');
}, 360_000);

afterAll(async () => {
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
    daemon = spawn(livemrBin, ['mount', mp(), '--state', state], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
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

    const u = livemr('umount', '--state', state);
    expect(u.code, u.stderr).toBe(0);
    await until('daemon exit', () => daemon!.exitCode !== null, 10_000);
    expect(mounted(mp())).toBe(false);
  });
});
