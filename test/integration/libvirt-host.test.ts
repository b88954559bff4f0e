// The host agent on a libvirt-managed VM (docs/libvirt.md): the agent starts first with
// `"domains": "*"`, the domain is started after it and discovered; the channel is hot-plugged
// through libvirt; a shared, growing file follows its growth; libvirtd is restarted while the agent
// runs (the VM survives, the agent reconnects); the domain is destroyed and started again (the
// channel is attached again, sharing resumes). Bytes are compared with the guest's every time.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, statusSocketPath } from '../../src/host/agent.js';
import { parseConfig, vmNameForDomain, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { startLibvirtd, type Libvirtd, type LibvirtGuest } from '../harness/libvirtd.js';
import { until } from '../harness/wait.js';

const LOG = '/mnt/data/app.log';

function post(socketPath: string, path: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('host agent on a libvirt domain', () => {
  let lv: Libvirtd;
  let guest: LibvirtGuest;
  let agent: HostAgent | undefined;
  let dir: string;
  let cfg: AgentConfig;
  let vmName: string;
  const logs: string[] = [];
  const onHost = () => join(cfg.mountpoint, `livemr_${vmName}_${LOG.slice(1).replace(/\//g, '_')}`);
  const inSync = async (what: string, timeoutMs = 60_000) => {
    const want = await guest.sh(`cat ${LOG}`);
    await until(`${what}: host file equals the guest's`, () => existsSync(onHost()) && readFileSync(onHost(), 'utf8') === want, timeoutMs);
    return want;
  };
  const vmStatus = () => agent!.status().vms.find((v) => v.name === vmName);

  beforeAll(async () => {
    lv = await startLibvirtd();
    dir = mkdtempSync(join(tmpdir(), 'livemr-lvhost-'));
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
      libvirt: { uri: lv.uri }, domains: '*', vms: [],
    });
    // the agent first: the domain does not exist yet
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
    guest = await lv.defineAndStart({ name: 'lvhost' });
    vmName = vmNameForDomain(guest.name);
    await guest.sh(`printf 'line 0\\n' > ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG} && sync`);
  }, 240_000);

  afterAll(async () => {
    await agent?.stop();
    await lv?.stop();
    if (logs.length) console.error(logs.filter((l) => !l.includes('"debug"')).slice(-40).join('\n'));
    if (!dir) return;
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('discovers the domain started after it, plugs the channel through libvirt and shares a requested file', async () => {
    await until('domain discovered', () => vmStatus(), 60_000);
    const r = await post(statusSocketPath(cfg.stateDir), '/shares', { vm: vmName, path: LOG });
    expect(r.status, r.body).toBe(200);
    await inSync('first share');
    const st = vmStatus()!;
    expect(st.qmp).toBe('connected');
    expect(st.channel).toBe('connected');
    expect(st.channelSocket).toMatch(/^\/var\/lib\/libvirt\/qemu\/channel\/target\/domain-\d+-.*\/org\.livemr\.0$/);
    expect(st.disks.find((d) => d.serial === 'data')?.chain).toEqual([guest.disks[1]!.overlay, guest.disks[1]!.base]);
    expect(lv.virsh('dumpxml', guest.name)).toContain("name='org.livemr.0'");
    // nothing went through the monitor behind libvirt's back: no custom-monitor taint (the test's
    // qemu.conf runs QEMU as root, which libvirt records as high-privileges)
    expect(readFileSync(`/var/log/libvirt/qemu/${guest.name}.log`, 'utf8')).not.toMatch(/tainted: custom-monitor/);
  });

  it('follows the file as it grows (allocation watched with block thresholds)', async () => {
    for (let i = 1; i <= 3; i++) {
      await guest.sh(`awk 'BEGIN { for (j = 1; j <= 2000; j++) print "line ${i}." j " of a growing file" }' >> ${LOG} && sync`);
      const want = await inSync(`growth ${i}`);
      expect(want.split('\n').length).toBeGreaterThan(i * 2000);
    }
  });

  it('keeps serving across a libvirtd restart: the VM survives, the agent reconnects', async () => {
    const qemu = guest.qemuPid();
    await lv.restart();
    expect(guest.qemuPid()).toBe(qemu);
    await guest.sh(`echo "after the libvirtd restart" >> ${LOG} && sync`);
    await inSync('after libvirtd restart');
    await until('control plane reconnected', () => vmStatus()?.qmp === 'connected', 30_000);
  });

  it('after destroy and start, plugs the channel again and sharing resumes', async () => {
    guest.destroy();
    await until('link notices the stop', () => vmStatus()?.qmp === 'connecting', 30_000);
    await guest.start();
    await guest.sh(`echo "after the restart" >> ${LOG} && sync`);
    await inSync('after destroy + start', 90_000);
    expect(vmStatus()!.channelSocket).toMatch(/org\.livemr\.0$/);
  });
});
