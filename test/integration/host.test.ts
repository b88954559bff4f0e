// The live path end to end: a real guest under QEMU, the real guest helper, the host agent with
// QMP, the image mapper and the FUSE mount. A file written inside the running VM must be readable
// on the host mount, byte-exact, moments later; truncation and deletion must follow promptly.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, statusSocketPath } from '../../src/host/agent.js';
import { parseConfig, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const LOG = '/mnt/data/app.log';
const PLOG = '/mnt/pdata/part.log';
const SECRET = '/mnt/data/secret.log';
const hostFile = (mnt: string, guestPath: string) =>
  join(mnt, `livemr_vm1_${guestPath.slice(1).replace(/\//g, '_')}`);


function httpGet(opts: { socketPath?: string; port?: number; path: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...opts, host: opts.port ? '127.0.0.1' : undefined, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('host agent with a live guest', () => {
  let vm: GuestVm;
  let agent: HostAgent | undefined;
  let dir: string;
  let cfg: AgentConfig;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-host-'));
    vm = await bootGuest({ name: 'host', channel: false }); // the agent hot-plugs the channel
    // the files' owner (alice) consents to two of them, not to the third
    await vm.sh(`for f in ${LOG} ${PLOG} ${SECRET}; do printf 'first line of %s\\n' $f > $f; chown alice $f; done`);
    await vm.sh(`su alice -c 'setfattr -n user.livemr.share -v 1 ${LOG}' 2>/dev/null || setfattr -n user.livemr.share -v 1 ${LOG}`);
    await vm.sh(`setfattr -n user.livemr.share -v 1 ${PLOG}`);
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, share: [LOG, PLOG, SECRET] }],
    });
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  });

  afterAll(async () => {
    await agent?.stop();
    await vm?.shutdown();
    if (logs.length) console.error(logs.slice(-40).join('\n'));
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  });

  it('hot-plugs the channel and serves consented files byte-exact', async () => {
    const f = await until('app.log on the mount', () => existsSync(hostFile(cfg.mountpoint, LOG)) && hostFile(cfg.mountpoint, LOG));
    await until('app.log content', () => readFileSync(f, 'utf8') === `first line of ${LOG}\n`);
    const p = await until('part.log on the mount', () => existsSync(hostFile(cfg.mountpoint, PLOG)) && hostFile(cfg.mountpoint, PLOG));
    expect(readFileSync(p, 'utf8')).toBe(`first line of ${PLOG}\n`);
    const names = await vm.sh('cat /sys/class/virtio-ports/*/name');
    expect(names).toContain('org.livemr.0');
  });

  it('does not expose a file without its owner\'s consent', async () => {
    // the agent asked and the guest answered that the owner has not consented: only then is the
    // file's absence evidence (a sleep would pass even if the agent never asked)
    const rec = await until('the secret file waits for consent', () => agent!.status().vms[0]!.shares.find((r) => r.path === SECRET && r.status === 'pending-consent'));
    expect(rec.message).toMatch(/waiting for the owner/);
    expect(existsSync(hostFile(cfg.mountpoint, SECRET))).toBe(false);
    expect(readdirSync(cfg.mountpoint).some((n) => n.includes('secret'))).toBe(false);
  });

  it('follows appends inside the running VM (and the host cat matches the guest cat)', async () => {
    const f = hostFile(cfg.mountpoint, LOG);
    await vm.sh(`i=0; while [ $i -lt 2000 ]; do echo "line $i $(date +%s%N) some log text here" >> ${LOG}; i=$((i+1)); done`);
    const t0 = Date.now();
    const want = await vm.sh(`cat ${LOG}`);
    await until('the appended lines', () => statSync(f).size === Buffer.byteLength(want));
    const lag = Date.now() - t0;
    expect(readFileSync(f, 'utf8')).toBe(want);
    // a big append that spans many clusters, written with dd (direct I/O on the guest side too)
    await vm.sh(`dd if=/dev/urandom of=/tmp/blob bs=1M count=6 2>/dev/null; cat /tmp/blob >> ${LOG}`);
    const sum = (await vm.sh(`sha256sum ${LOG}`)).split(' ')[0];
    const size = Number(await vm.sh(`stat -c %s ${LOG}`));
    await until('the 6 MiB append', () => statSync(f).size === size);
    expect(execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0]).toBe(sum);
    console.error(`[host] 2000 appended lines visible on the host ${lag} ms after the guest finished writing`);
  });

  it('shrinks on truncate and removes on unlink, promptly', async () => {
    const f = hostFile(cfg.mountpoint, LOG);
    const t0 = Date.now();
    await vm.sh(`truncate -s 100 ${LOG}`);
    await until('the truncation', () => statSync(f).size === 100, 10_000);
    const truncMs = Date.now() - t0;
    expect(readFileSync(f, 'utf8')).toBe((await vm.sh(`cat ${LOG}`)));
    const t1 = Date.now();
    await vm.sh(`rm ${PLOG}`);
    await until('the removal', () => !existsSync(hostFile(cfg.mountpoint, PLOG)), 10_000);
    const rmMs = Date.now() - t1;
    console.error(`[host] freed-block window: truncate visible after ${truncMs} ms, unlink after ${rmMs} ms`);
    expect(truncMs).toBeLessThan(5000);
    expect(rmMs).toBeLessThan(5000);
  });

  it('reports status and metrics', async () => {
    const st = JSON.parse((await httpGet({ socketPath: statusSocketPath(cfg.stateDir), path: '/status' })).body);
    expect(st.vms[0].name).toBe('vm1');
    expect(st.vms[0].qmp).toBe('connected');
    expect(st.vms[0].channel).toBe('connected');
    expect(st.vms[0].files.map((x: { path: string }) => x.path)).toContain(LOG);
    expect((statSync(statusSocketPath(cfg.stateDir)).mode & 0o777)).toBe(0o600);
    const port = agent!.metricsAddress()!.port;
    const m = await httpGet({ port, path: '/metrics' });
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^livemr_vm_qmp_connected\{vm="vm1"\} 1$/m);
    expect(m.body).toMatch(/^livemr_vm_shared_files\{vm="vm1"\} 1$/m);
    // async: the agent answering it runs in this process
    const { stdout: cli } = await promisify(execFile)('node', ['bin/livemr.mjs', 'status', '--state', cfg.stateDir], { encoding: 'utf8' });
    expect(cli).toContain('livemr_vm1_mnt_data_app.log');
  });

  it('comes back after an agent restart with the same files, and keeps following', async () => {
    await agent!.stop();
    agent = undefined;
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
    const f = hostFile(cfg.mountpoint, LOG);
    await until('app.log after restart', () => existsSync(f) && statSync(f).size === 100);
    await vm.sh(`echo after-restart >> ${LOG}`);
    const want = await vm.sh(`cat ${LOG}`);
    await until('append after restart', () => readFileSync(f, 'utf8') === want);
  });
});
