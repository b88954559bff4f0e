// Start a real qemu-system-x86_64 for QMP integration tests: no guest code, only what the test puts
// on the command line. Stopped by its PID; its temp directory (images, sockets) removed after.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { untilAccepting } from '../../../harness/wait.js';

export interface TestQemu {
  pid: number;
  dir: string;
  /** QMP unix sockets, one per monitor (QEMU serves one client per monitor at a time) */
  qmp: string[];
  log: () => string;
  stop(): Promise<void>;
}

/** Create a qcow2 image in `dir` (optionally on a backing file); returns its path. */
export function qcow2(dir: string, name: string, opts: { size?: string; backing?: string; backingFormat?: string } = {}): string {
  const file = path.join(dir, name);
  const args = ['create', '-q', '-f', 'qcow2'];
  if (opts.backing) args.push('-b', opts.backing, '-F', opts.backingFormat ?? 'qcow2');
  args.push(file);
  if (!opts.backing || opts.size) args.push(opts.size ?? '64M');
  execFileSync('qemu-img', args);
  return file;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startQemu(dir: string, args: string[], monitors = 1): Promise<TestQemu> {
  const qmp = Array.from({ length: monitors }, (_, i) => path.join(dir, `qmp${i}.sock`));
  const logFile = path.join(dir, 'qemu.log');
  const out = fs.openSync(logFile, 'w');
  const child: ChildProcess = spawn(
    'qemu-system-x86_64',
    ['-nodefaults', '-display', 'none', ...qmp.flatMap((s) => ['-qmp', `unix:${s},server=on,wait=off`]), ...args],
    { stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  // If the test process dies first, take this QEMU (and only this one, by its PID) with it.
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.removeListener('exit', onExit);
      resolve();
    }),
  );
  const log = () => fs.readFileSync(logFile, 'utf8');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 10_000;
  const ready = async () => {
    for (const s of qmp) if (!fs.existsSync(s)) return false;
    for (const s of qmp) await untilAccepting(s, Math.max(1, deadline - Date.now()));
    return true;
  };
  while (!(await ready())) {
    if (child.exitCode !== null) throw new Error(`qemu exited (${child.exitCode}): ${log()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`qemu did not create its QMP socket: ${log()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { pid: child.pid!, dir, qmp, log, stop };
}
