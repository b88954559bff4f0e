// The host agent on a libvirt-managed VM (docs/libvirt.md): the agent starts first with
// `"domains": "*"`, the domain is started after it and discovered; the channel is hot-plugged
// through libvirt; a shared, growing file follows its growth; libvirtd is restarted while the agent
// runs (the VM survives, the agent reconnects); the domain is destroyed and started again (the
// channel is attached again, sharing resumes). In between, the block jobs libvirt runs on a live
// domain: an external disk-only snapshot, an active commit with pivot, a pull, and a guest reboot.
// One domain, booted once (the reboot and destroy+start boot it again); its data disk has no
// <serial> (a Nova-style disk, matched by PCI path, mounted by the image's init at /mnt), the pdata
// disk keeps one. After each step the host file's sha256 equals the guest's, polled (never a sleep).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iopsCaps, libvirtThrottleActuator, LibvirtVms, makePlan, parseLoopConfig, startSession } from '../../src/cache/index.js';
import { HostAgent, statusSocketPath } from '../../src/host/agent.js';
import { parseConfig, vmNameForDomain, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { startLibvirtd, type Libvirtd, type LibvirtGuest } from '../harness/libvirtd.js';
import { until } from '../harness/wait.js';

// the serial-less data disk: the image's init mounts a disk at /mnt/<serial>, so at /mnt
const LOG = '/mnt/app.log';
const PLOG = '/mnt/pdata/p.log';
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

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
  const onHost = (path = LOG) => join(cfg.mountpoint, `livemr_${vmName}_${path.slice(1).replace(/\//g, '_')}`);
  /** the guest's sha256 of the file, then a bounded poll until the host mount serves the same bytes */
  const inSync = async (what: string, timeoutMs = 60_000, path = LOG) => {
    const [want, size] = (await guest.sh(`sync && sha256sum ${path} | cut -d' ' -f1 && stat -c %s ${path}`)).trim().split('\n');
    await until(`${what}: host file's sha256 equals the guest's`, () => existsSync(onHost(path)) && sha256(readFileSync(onHost(path))) === want, timeoutMs);
    return Number(size);
  };
  const vmStatus = () => agent!.status().vms.find((v) => v.name === vmName);
  const dataDisk = () => vmStatus()?.disks.find((d) => d.serial?.startsWith('pci:'));
  const untilChain = (what: string, chain: string[]) =>
    until(`${what}: the agent runs the data disk on ${chain.join(' → ')}`, () => JSON.stringify(dataDisk()?.chain) === JSON.stringify(chain), 30_000);
  /** the agent logged the block job's completion event and remapped on it (guest reports may reload the chain sooner) */
  const untilJobEvent = (event: string) =>
    until(`${event} seen by the agent`, () => logs.some((l) => l.includes('block graph event: remapping') && l.includes(event)), 30_000);
  const append = (tag: string, lines = 2000) =>
    guest.sh(`awk 'BEGIN { for (j = 1; j <= ${lines}; j++) print "${tag}." j " of a growing file" }' >> ${LOG} && sync`);

  beforeAll(async () => {
    lv = await startLibvirtd();
    dir = mkdtempSync(join(tmpdir(), 'livemr-lvhost-'));
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
      libvirt: { uri: lv.uri }, domains: '*', vms: [],
    });
    // the agent first: the domain does not exist yet
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
    guest = await lv.defineAndStart({ name: 'lvhost', dataWithoutSerial: true, guestAgent: true });
    vmName = vmNameForDomain(guest.name);
    await guest.sh(`printf 'line 0\\n' > ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG} && sync`);
    await guest.sh(`printf 'on a disk with a serial\\n' > ${PLOG} && setfattr -n user.livemr.share -v 1 ${PLOG} && sync`);
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
    await post(statusSocketPath(cfg.stateDir), '/shares', { vm: vmName, path: PLOG });
    await inSync('file on the disk with a serial', 60_000, PLOG);
    const st = vmStatus()!;
    expect(st.qmp).toBe('connected');
    expect(st.channel).toBe('connected');
    expect(st.channelSocket).toMatch(/^\/var\/lib\/libvirt\/qemu\/channel\/target\/domain-\d+-.*\/org\.livemr\.0$/);
    // the data disk has no <serial>: the agent and the guest helper both name it by its PCI path
    expect(guest.disks[1]!.serial).toBeNull();
    expect(dataDisk()?.serial).toMatch(/^pci:[0-9a-f]{2}\.[0-7](\/[0-9a-f]{2}\.[0-7])*$/);
    expect(dataDisk()?.chain).toEqual([guest.disks[1]!.overlay, guest.disks[1]!.base]);
    expect(st.disks.find((d) => d.serial === 'pdata')?.chain).toEqual([guest.disks[2]!.overlay, guest.disks[2]!.base]);
    expect(lv.virsh('dumpxml', guest.name)).toContain("name='org.livemr.0'");
    // nothing went through the monitor behind libvirt's back: no custom-monitor taint (the test's
    // qemu.conf runs QEMU as root, which libvirt records as high-privileges)
    expect(readFileSync(`/var/log/libvirt/qemu/${guest.name}.log`, 'utf8')).not.toMatch(/tainted: custom-monitor/);
  });

  it('follows the file as it grows (allocation watched with block thresholds)', async () => {
    for (let i = 1; i <= 3; i++) {
      await append(`line ${i}`);
      expect(await inSync(`growth ${i}`)).toBeGreaterThan(i * 2000 * 20);
    }
  });

  it('the cache loop monitors and actuates the domain through libvirt (blkdeviotune, blkiotune), read back with virsh', async () => {
    const iotune = () => Number(/total_iops_sec\s*:\s*(\d+)/.exec(lv.virsh('blkdeviotune', guest.name, 'vdb'))?.[1]);
    const weight = () => Number(/^\s*weight\s*:\s*(\d+)/m.exec(lv.virsh('blkiotune', guest.name))?.[1]);
    lv.virsh('blkiotune', guest.name, '--weight', '500', '--live');
    expect(iotune()).toBe(0);
    const cfg = parseLoopConfig({
      libvirt: { uri: lv.uri }, capacityIops: 1200,
      vms: [{ name: 'web', app: 'web', domain: guest.name, disks: ['vdb'] }],
      actuators: { qemuThrottle: true, cgroupWeight: true },
    });
    const session = await startSession(cfg);
    const libvirt = new LibvirtVms(lv.uri);
    try {
      expect((await session.loop.step()).action).toBe('baseline');
      await append('cache loop', 500);
      const d = await session.loop.step();
      expect(d.action, JSON.stringify(d.errors)).toBe('applied');
      // the counters came from libvirt's bulk stats: the guest's writes are in them
      expect(d.inputs!.vms[0]!.iops).toBeGreaterThan(0);
      expect(d.inputs!.vms[0]!.cpuTimeNs).toBeGreaterThan(0);
      // one VM: all of the capacity and the top weight
      expect(d.readback).toEqual({ 'libvirt-blkdeviotune': { 'web/vdb': { iops: 1200 } }, 'libvirt-blkiotune': { web: { weight: 1000 } } });
      expect(iotune()).toBe(1200);
      expect(weight()).toBe(1000);
      // a plan where this VM gets a share of two: its cap is that share of the capacity
      const plan = makePlan({ vms: [
        { name: 'web', app: 'web', ioTimeNs: 1e9, cpuTimeNs: 1e9, iops: 100, bandwidth: 1e6 },
        { name: 'db', app: 'db', ioTimeNs: 9e9, cpuTimeNs: 1e8, iops: 900, bandwidth: 9e6 },
      ], flows: [] });
      const [want] = iopsCaps([plan.weights.wi[0]!], 1200);
      expect(want).toBeLessThan(1200);
      await libvirtThrottleActuator({ vms: [{ name: 'web', domain: guest.name, disks: ['vdb'] }], libvirt, capacityIops: 1200 }).apply(plan);
      expect(iotune()).toBe(want);
    } finally {
      await session.close();
      await libvirt.stop();
      // the later steps run unthrottled
      lv.virsh('blkdeviotune', guest.name, 'vdb', '--total-iops-sec', '0', '--live');
    }
    expect(iotune()).toBe(0);
    expect(readFileSync(`/var/log/libvirt/qemu/${guest.name}.log`, 'utf8')).not.toMatch(/tainted: custom-monitor/);
  });

  const snap = () => join(guest.dir, 'data-snap1.qcow2');

  it('follows writes into an external disk-only snapshot (virsh snapshot-create-as --disk-only)', async () => {
    const d = guest.disks[1]!;
    lv.virsh('snapshot-create-as', guest.name, '--disk-only', '--no-metadata', '--atomic',
      '--diskspec', 'vda,snapshot=no', '--diskspec', `vdb,snapshot=external,file=${snap()}`, '--diskspec', 'vdc,snapshot=no');
    await append('after the snapshot');
    await inSync('after the snapshot');
    await untilChain('after the snapshot', [snap(), d.overlay, d.base]);
  });

  it('follows an active commit with pivot (virsh blockcommit --active --pivot), then more writes', async () => {
    const d = guest.disks[1]!;
    await append('before the commit');
    // the agent has seen every write: what follows the commit comes from its events alone
    await inSync('before the commit');
    // --shallow: into the snapshot's backing file only (the base below is the shared test image)
    lv.virsh('blockcommit', guest.name, 'vdb', '--active', '--shallow', '--pivot', '--wait');
    await untilChain('after the commit', [d.overlay, d.base]);
    await untilJobEvent('BLOCK_JOB_ACTIVE_COMMIT_COMPLETED');
    // the committed overlay is out of the chain: emptied, so a mapping still pointing into it would read wrong bytes
    truncateSync(snap(), 0);
    await inSync('after the commit');
    await append('after the commit');
    await inSync('writes after the commit');
  });

  it('follows a pull of the backing image into the top (virsh blockpull)', async () => {
    const d = guest.disks[1]!;
    await append('before the pull');
    await inSync('before the pull');
    lv.virsh('blockpull', guest.name, 'vdb', '--wait');
    await untilChain('after the pull', [d.overlay]);
    await untilJobEvent('BLOCK_JOB_PULL_COMPLETED');
    await inSync('after the pull');
    await append('after the pull');
    await inSync('writes after the pull');
  });

  it('keeps serving across a libvirtd restart: the VM survives, the agent reconnects', async () => {
    const qemu = guest.qemuPid();
    await lv.restart();
    expect(guest.qemuPid()).toBe(qemu);
    await guest.sh(`echo "after the libvirtd restart" >> ${LOG} && sync`);
    await inSync('after libvirtd restart');
    await until('control plane reconnected', () => vmStatus()?.qmp === 'connected', 30_000);
  });

  it('keeps serving across a guest reboot (virsh reboot)', async () => {
    // the image has no shutdown(8), which qemu-ga runs for guest-shutdown: give it one
    await guest.sh(`[ -e /sbin/shutdown ] || { printf '#!/bin/sh\\nsync\\nexec reboot -f\\n' > /sbin/shutdown && chmod 755 /sbin/shutdown; }; touch /run/before-reboot`);
    const qemu = guest.qemuPid();
    lv.virsh('reboot', guest.name, '--mode', 'agent');
    await until('the guest rebooted', async () => {
      await guest.waitReady(60_000);
      return (await guest.exec('test -e /run/before-reboot')).code !== 0;
    }, 120_000, 500);
    expect(guest.qemuPid()).toBe(qemu);
    await append('after the reboot');
    await inSync('after the reboot', 90_000);
    await inSync('file on the disk with a serial after the reboot', 60_000, PLOG);
    await until('run state back to running', () => vmStatus()?.runState === 'running', 30_000);
  });

  it('after destroy and start, plugs the channel again and sharing resumes', async () => {
    guest.destroy();
    await until('link notices the stop', () => vmStatus()?.qmp === 'connecting', 30_000);
    await guest.start();
    await append('after the restart');
    await inSync('after destroy + start', 90_000);
    expect(dataDisk()?.chain).toEqual([guest.disks[1]!.overlay]);
    expect(vmStatus()!.channelSocket).toMatch(/org\.livemr\.0$/);
  });
});
