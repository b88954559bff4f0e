// `livemr cache` end to end through the real binary: plan from a metrics file (table and JSON), bad
// input, and `run --dry-run` against two real (guest-less) QEMU processes over QMP.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { untilAccepting } from '../harness/wait.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/livemr.mjs');
const metrics = join(import.meta.dirname, '../fixtures/cache/metrics.json');

async function livemr(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [bin, 'cache', ...args], { timeout: 60_000 });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('livemr cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemr-cache-cli-'));
  const qemus: ChildProcess[] = [];
  afterAll(() => {
    for (const q of qemus) if (q.exitCode === null) q.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('plan --metrics prints the weights table, --json the same numbers', async () => {
    const table = await livemr('plan', '--metrics', metrics, '--solver', 'exact');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^vm\s+app\s+s\s+r\s+d\s+ws\(cache\)\s+wi\(iops\)\s+m$/m);
    expect(table.stdout).toMatch(/^scan\s+logscan\s.*\s0\.3000\s/m); // max share 0.3 binds
    const json = JSON.parse((await livemr('plan', '--metrics', metrics, '--json')).stdout) as { solver: string; vms: { name: string; ws: number; wi: number }[] };
    expect(json.solver).toBe('ga');
    expect(json.vms.map((v) => v.name)).toEqual(['wc-master', 'wc-worker1', 'wc-worker2', 'scan']);
    expect(json.vms.reduce((a, v) => a + v.ws, 0)).toBeCloseTo(1, 9);
    expect(json.vms.every((v) => Math.abs(v.ws * 100 - Math.round(v.ws * 100)) < 1e-9)).toBe(true); // units: 100
    expect(json.vms[0]!.ws).toBeGreaterThanOrEqual(0.1); // min share
  });

  it('bad input: a clear error and a non-zero exit', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ vms: [{ name: 'a', app: 'x', ioTimeNs: -5, cpuTimeNs: 1, iops: 1, bandwidth: 1 }] }));
    const r = await livemr('plan', '--metrics', bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CacheInputError: vms\[0\]\.ioTimeNs must be a number ≥ 0/);
    expect((await livemr('plan')).code).toBe(2);
    expect((await livemr('plan', '--metrics', metrics, '--solver', 'x')).code).toBe(2);
  });

  it('run --dry-run logs each decision with its inputs and changes nothing', async () => {
    const vms = ['m1', 'm2'].map((name) => {
      const sock = join(dir, `${name}.qmp`);
      const q = spawn('qemu-system-x86_64', ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
      qemus.push(q);
      return { name, app: 'job', qmp: sock };
    });
    for (const v of vms) await untilAccepting(v.qmp);
    const cfg = join(dir, 'vms.json');
    writeFileSync(cfg, JSON.stringify({ vms, capacityIops: 1000, actuators: { qemuThrottle: false } }));
    const r = await livemr('run', '--vms', cfg, '--interval', '0.3', '--steps', '3', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; inputs?: { vms: unknown[] }; plan?: { rows: { ws: number }[] } });
    expect(lines.map((l) => l.action)).toEqual(['baseline', 'dry-run', 'held']);
    expect(lines[1]!.inputs!.vms.length).toBe(2);
    expect(lines[1]!.plan!.rows.map((x) => x.ws)).toEqual([0.5, 0.5]); // idle VMs: no information, equal shares

    // plan --vms samples the same live VMs twice and prints the table
    const p = await livemr('plan', '--vms', cfg, '--sample', '0.2', '--json');
    expect(p.code, p.stderr).toBe(0);
    expect((JSON.parse(p.stdout) as { vms: { name: string }[] }).vms.map((v) => v.name)).toEqual(['m1', 'm2']);
  });
});
