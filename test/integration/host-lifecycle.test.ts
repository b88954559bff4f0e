// The host agent through a VM's whole life, with two real guests and the agent as its own process
// (`livemr host`): a BigLog of both guests' logs, log rotation, an external snapshot followed by
// more writes, the agent killed with SIGKILL and restarted, a guest reboot, and QEMU killed and
// restarted. After each event the composed files must equal the guest files byte for byte.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/index.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const LOG = '/mnt/data/app.log';
const run = promisify(execFile);


describe('host agent lifecycle with two guests', () => {
  let vm1: GuestVm;
  let vm2: GuestVm;
  let dir: string;
  let cfgPath: string;
  let agent: ChildProcess | undefined;
  const mnt = () => join(dir, 'mnt');
  const state = () => join(dir, 'state');
  const onHost = (vm: string, path: string) => join(mnt(), `livemr_${vm}_${path.slice(1).replace(/\//g, '_')}`);
  const livemr = (...args: string[]) => run('node', ['bin/livemr.mjs', ...args], { encoding: 'utf8' });

  const startAgent = () => {
    const log = openSync(join(dir, 'agent.log'), 'a');
    agent = spawn('node', ['bin/livemr.mjs', 'host', '--config', cfgPath], { stdio: ['ignore', log, log] });
    closeSync(log);
  };
  const stopAgent = async (signal: NodeJS.Signals) => {
    const a = agent;
    agent = undefined;
    if (!a || a.exitCode !== null) return;
    const exited = new Promise((r) => a.once('exit', r));
    a.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
  };
  /** waits until the host file equals the guest file */
  const inSync = async (vm: GuestVm, vmName: string, path: string, timeoutMs = 30_000) => {
    const want = await vm.sh(`cat ${path}`);
    await until(`${vmName}:${path} in sync`, () => existsSync(onHost(vmName, path)) && readFileSync(onHost(vmName, path), 'utf8') === want, timeoutMs);
    return want;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-lifecycle-'));
    // one after the other: two TCG boots at once starve each other on 2 cores
    vm1 = await bootGuest({ name: 'lc1', allowReboot: true });
    vm2 = await bootGuest({ name: 'lc2', channel: false });
    for (const [vm, name] of [[vm1, 'vm1'], [vm2, 'vm2']] as const) {
      await vm.sh(`printf '${name} line 0\\n' > ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG} && sync`);
    }
    cfgPath = join(dir, 'agent.json');
    writeFileSync(cfgPath, JSON.stringify({
      mountpoint: mnt(), stateDir: state(), runDir: join(dir, 'run'), metrics: null,
      vms: [
        { name: 'vm1', qmp: vm1.qmpSocket, channel: vm1.channelSocket, share: [LOG] },
        { name: 'vm2', qmp: vm2.qmpSocket, share: [LOG] },
      ],
    }));
    startAgent();
    await inSync(vm1, 'vm1', LOG);
    await inSync(vm2, 'vm2', LOG);
  });

  afterAll(async () => {
    await stopAgent('SIGTERM');
    await vm1?.shutdown();
    await vm2?.shutdown();
    try { execFileSync('fusermount3', ['-uz', mnt()], { stdio: 'ignore' }); } catch { /* not mounted */ }
    try { console.error(readFileSync(join(dir, 'agent.log'), 'utf8').split('\n').slice(-30).join('\n')); } catch { /* none */ }
    rmSync(dir, { recursive: true, force: true });
  });

  it('joins both guests\' logs into a BigLog that follows their growth', async () => {
    await livemr('biglog', 'biglog', `vm1:${LOG}`, '--state', state());
    const a = readFileSync(onHost('vm1', LOG), 'utf8');
    await until('biglog with vm1', () => readFileSync(join(mnt(), 'livemr_biglog'), 'utf8') === a);
    await livemr('biglog', 'biglog', `vm2:${LOG}`, '--state', state()); // the second guest's log joins
    const b = readFileSync(onHost('vm2', LOG), 'utf8');
    expect(readFileSync(join(mnt(), 'livemr_biglog'), 'utf8')).toBe(a + b);
    await vm2.sh(`echo 'vm2 line 1' >> ${LOG}`);
    await until('biglog growth', () => readFileSync(join(mnt(), 'livemr_biglog'), 'utf8') === `${a}${b}vm2 line 1\n`);
    const { stdout } = await livemr('biglog', '--list', '--state', state());
    expect(stdout).toContain('vm1:/mnt/data/app.log vm2:/mnt/data/app.log');
  });

  it('follows log rotation: the old inode keeps its bytes under its new name, the new file is shared', async () => {
    const before = await inSync(vm1, 'vm1', LOG);
    await vm1.sh(`mv ${LOG} ${LOG}.1 && printf 'fresh log\\n' > ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG}`);
    await until('rotated file', () => existsSync(onHost('vm1', `${LOG}.1`)) && readFileSync(onHost('vm1', `${LOG}.1`), 'utf8') === before);
    await vm1.sh(`echo 'after rotation' >> ${LOG}`);
    await inSync(vm1, 'vm1', LOG);
  });

  it('remaps after an external snapshot and keeps serving the guest\'s new writes', async () => {
    const qmp = await QmpClient.connect(vm1.testQmpSocket);
    try {
      await qmp.execute('blockdev-snapshot-sync', {
        'node-name': 'vd-data-fmt', 'snapshot-file': join(vm1.dir, 'data-snap.qcow2'), 'snapshot-node-name': 'vd-data-snap', format: 'qcow2',
      });
    } finally {
      await qmp.close();
    }
    await vm1.sh(`dd if=/dev/urandom bs=64k count=16 2>/dev/null | base64 >> ${LOG}`);
    await inSync(vm1, 'vm1', LOG);
    const xattr = (n: string) => execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', n, onHost('vm1', LOG)], { encoding: 'utf8' });
    const sources = JSON.parse(xattr('user.livemr.sources')) as string[];
    const last = xattr('user.livemr.segments.0').trim().split('\n').pop()!.split(' ');
    // the newest bytes come from the new top image
    expect(sources[Number(last[1])]).toBe(join(vm1.dir, 'data-snap.qcow2'));
  });

  it('survives kill -9 of the agent: a restart cleans the stale mount and brings the files back', async () => {
    await stopAgent('SIGKILL');
    await vm1.sh(`echo 'written while the agent was dead' >> ${LOG}`);
    startAgent();
    await inSync(vm1, 'vm1', LOG);
    await inSync(vm2, 'vm2', LOG);
    expect(existsSync(join(mnt(), 'livemr_biglog'))).toBe(true);
  });

  it('resyncs after a guest reboot', async () => {
    await vm1.sh('sync');
    void vm1.exec('reboot -f').catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    await vm1.waitReady();
    await vm1.sh(`echo 'after reboot' >> ${LOG}`);
    await inSync(vm1, 'vm1', LOG, 60_000);
  });

  it('reconnects after QEMU is killed and restarted (re-plugging the channel)', async () => {
    const before = readFileSync(onHost('vm2', LOG), 'utf8');
    await vm2.sh('sync');
    await vm2.kill();
    // while QEMU is down, what was served stays readable: it lives in the image file
    expect(readFileSync(onHost('vm2', LOG), 'utf8')).toBe(before);
    await vm2.restart();
    await vm2.sh(`echo 'after qemu restart' >> ${LOG}`);
    await inSync(vm2, 'vm2', LOG, 60_000);
  });
});
