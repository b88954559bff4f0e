// The agent as its own process (`livemr host`), killed with SIGKILL: its FUSE mount is left stale
// (ENOTCONN). A restart must clean it before anything touches the mountpoint and serve the
// journaled compositions again. Then the journal damaged in the middle (one flipped byte): the
// restarted agent keeps a copy, says so loudly and serves nothing the journal named — above all not
// a file that was removed after the damaged record. No guest needed: compositions of a host file.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
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

  it('a journal damaged in the middle: a copy is kept, the damage is logged, nothing it named is served', async () => {
    const seg = `${join(dir, 'data.txt')}:0:16`;
    const livemr = (...args: string[]) => run('node', ['bin/livemr.mjs', ...args, '--state', state()]);
    await livemr('compose', 'revoked', '--segment', seg);
    await livemr('compose', 'other', '--segment', seg);
    await livemr('decompose', 'revoked');
    await until('livemr_revoked gone', () => !existsSync(join(mnt(), 'livemr_revoked')), 30_000, 100);
    await killAgent('SIGTERM');

    // one flipped byte inside the record that composed 'other' (before the removal of 'revoked')
    const file = join(state(), 'compositions.journal');
    const j = readFileSync(file);
    let pos = 8;
    let hit = -1;
    while (pos + 8 <= j.length) {
      const len = j.readUInt32LE(pos);
      if (j.subarray(pos + 8, pos + 8 + len).includes('"name":"other"')) hit = pos + 8 + len - 3;
      pos += 8 + len;
    }
    expect(hit).toBeGreaterThan(0);
    const damaged = Buffer.from(j);
    damaged[hit] = damaged[hit]! ^ 0x01;
    writeFileSync(file, damaged);

    startAgent();
    await until('the mount to be live again', () => statSync(mnt()).dev !== statSync(dir).dev, 30_000, 100);
    await until('the agent to have started a third time', () => readFileSync(join(dir, 'agent.log'), 'utf8').split('"agent started"').length === 4, 30_000, 100);
    expect(readdirSync(mnt()).filter((f) => f.startsWith('livemr_'))).toEqual([]);
    expect(existsSync(join(mnt(), 'livemr_revoked'))).toBe(false);
    const log = readFileSync(join(dir, 'agent.log'), 'utf8');
    // 'other' is named only by the damaged record: its name is not trusted either
    expect(log).toMatch(/JOURNAL DAMAGED.*withholding all 2 file\(s\).*: kept, revoked$/m);
    const copies = readdirSync(state()).filter((f) => f.startsWith('compositions.journal.damaged-'));
    expect(copies).toHaveLength(1);
    expect(readFileSync(join(state(), copies[0]!)).equals(damaged)).toBe(true);
    // composing again works, and the next restart is clean
    await livemr('compose', 'kept', '--segment', seg);
    await until('livemr_kept again', () => readFileSync(join(mnt(), 'livemr_kept'), 'utf8') === 'journaled bytes\n', 30_000, 100);
  });
});
