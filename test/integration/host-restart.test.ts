// The agent as its own process (`livemr host`), killed with SIGKILL: its FUSE mount is left stale
// (ENOTCONN). A restart must clean it before anything touches the mountpoint and serve the
// journaled compositions again. No guest needed: a composition of a host file is enough.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../harness/wait.js';

const run = promisify(execFile);
let dir: string;
let agent: ChildProcess | undefined;
const mnt = () => join(dir, 'mnt');
const state = () => join(dir, 'state');

function startAgent(): ChildProcess {
  const log = openSync(join(dir, 'agent.log'), 'a');
  const a = spawn('node', ['bin/livemr.mjs', 'host', '--config', join(dir, 'agent.json')], { stdio: ['ignore', log, log] });
  closeSync(log);
  agent = a;
  return a;
}

async function killAgent(signal: NodeJS.Signals): Promise<void> {
  const a = agent;
  agent = undefined;
  if (!a || a.exitCode !== null || a.signalCode !== null) return;
  const exited = new Promise((r) => a.once('exit', r));
  a.kill(signal);
  await exited;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-host-restart-'));
  writeFileSync(join(dir, 'data.txt'), 'journaled bytes\n');
  writeFileSync(join(dir, 'agent.json'), JSON.stringify({ mountpoint: mnt(), stateDir: state(), runDir: join(dir, 'run'), metrics: null, vms: [] }));
});

afterAll(async () => {
  await killAgent('SIGTERM');
  try { execFileSync('fusermount3', ['-uz', mnt()], { stdio: 'ignore' }); } catch { /* not mounted */ }
  rmSync(dir, { recursive: true, force: true });
});

describe('agent restart', () => {
  it('after kill -9 the stale mount is cleaned and the journaled files come back', async () => {
    startAgent();
    await until('the mount to be live', () => statSync(mnt()).dev !== statSync(dir).dev, 30_000, 100);
    await run('node', ['bin/livemr.mjs', 'compose', 'kept', '--segment', `${join(dir, 'data.txt')}:0:16`, '--state', state()]);
    await until('livemr_kept', () => readFileSync(join(mnt(), 'livemr_kept'), 'utf8') === 'journaled bytes\n', 30_000, 100);

    await killAgent('SIGKILL');
    expect(() => statfsSync(mnt())).toThrow(/ENOTCONN/); // the stale mount the kernel keeps
    // stat too, once the kernel's 1 s attribute cache of the dead mount's root has expired (a
    // supervisor restarts later than that)
    await until('stat to see the stale mount', () => { try { statSync(mnt()); return false; } catch (e) { return (e as NodeJS.ErrnoException).code === 'ENOTCONN'; } }, 10_000, 100);

    const a = startAgent();
    let exit: number | null = null;
    a.once('exit', (code) => { exit = code; });
    await until('livemr_kept after the restart', () => {
      if (exit !== null) throw new Error(`the agent exited with ${exit}: ${readFileSync(join(dir, 'agent.log'), 'utf8').slice(-500)}`);
      return readFileSync(join(mnt(), 'livemr_kept'), 'utf8') === 'journaled bytes\n';
    }, 30_000, 100);
    expect(exit).toBeNull();
  });
});
