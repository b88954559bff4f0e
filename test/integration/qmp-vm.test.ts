// The VM model, throttling, vCPU threads, channel hot-plug and the CLI against a real QEMU that has
// guest devices but runs no guest code: q35, paused before start (-S).

import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { ExecuteError } from '../../src/qmp/protocol/errors.js';
import { queryBlockstats, readIoThrottle, setIoThrottle } from '../../src/qmp/vocab/block.js';
import { addChannel, findVirtioSerialBus, removeChannel } from '../../src/qmp/vocab/channel.js';
import { queryCpusFast, queryStatus } from '../../src/qmp/vocab/machine.js';
import { describeVm, type VmModel } from '../../src/qmp/vm.js';
import { qcow2, startQemu, tempDir, type TestQemu } from '../unit/qmp/support/qemu.js';

const run = promisify(execFile);
const LIVEMR = path.resolve(import.meta.dirname, '../../bin/livemr.mjs');

let dir = '';
let qemu: TestQemu | undefined;
let client: QmpClient | undefined;
const f: Record<string, string> = {};

beforeAll(async () => {
  dir = tempDir('livemr-qmpvm-');
  f.base = qcow2(dir, 'base.qcow2');
  f.mid = qcow2(dir, 'mid.qcow2', { backing: f.base });
  f.top = qcow2(dir, 'top.qcow2', { backing: f.mid });
  f.other = qcow2(dir, 'other.qcow2', { backing: f.base }); // the same base, opened a second time
  f.raw = path.join(dir, 'raw.img');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', f.raw, '16M']);
  qemu = await startQemu(
    dir,
    [
      '-machine', 'q35', '-S',
      '-blockdev', `driver=file,filename=${f.top},node-name=top-file`,
      '-blockdev', 'driver=qcow2,file=top-file,node-name=top-fmt',
      '-device', 'virtio-blk-pci,drive=top-fmt,id=disk0,serial=data',
      '-object', 'throttle-group,id=tg0,x-bps-total=10000000',
      '-blockdev', `driver=file,filename=${f.raw},node-name=raw-file`,
      '-blockdev', 'driver=raw,file=raw-file,node-name=raw-fmt',
      '-blockdev', 'driver=throttle,file=raw-fmt,throttle-group=tg0,node-name=raw-throttle',
      '-device', 'virtio-blk-pci,drive=raw-throttle,serial=anon',
      '-drive', `file=${f.other},if=none,id=drv2,format=qcow2`,
      '-device', 'virtio-blk-pci,drive=drv2,id=disk2',
      '-device', 'virtio-serial-pci,id=vser0',
    ],
    2, // a second monitor for the CLI: each QMP monitor serves one client at a time
  );
  client = await QmpClient.connect(qemu.qmp[0]!);
});

afterAll(async () => {
  await client?.close();
  await qemu?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('VM model from the live block graph', () => {
  let model: VmModel;
  beforeAll(async () => {
    model = await describeVm(client!);
  });

  it('reports the run state', () => {
    expect(model).toMatchObject({ status: 'prelaunch', running: false });
    expect(model.disks).toHaveLength(3);
  });

  it('a -blockdev disk: qdev id, serial, node names, and the whole backing chain', () => {
    const d = model.disks.find((x) => x.qdevId === 'disk0')!;
    expect(d).toMatchObject({
      qomPath: '/machine/peripheral/disk0/virtio-backend',
      device: null,
      serial: 'data',
      nodeName: 'top-fmt',
      fileNodeName: 'top-file',
      format: 'qcow2',
      file: f.top,
      readOnly: false,
      virtualSize: 64 << 20,
    });
    expect(d.chain.map((l) => [l.format, l.file, l.protocol])).toEqual([
      ['qcow2', f.top, 'file'],
      ['qcow2', f.mid, 'file'],
      ['qcow2', f.base, 'file'],
    ]);
    expect(d.chain[0]!.nodeName).toBe('top-fmt');
    expect(d.chain.slice(1).every((l) => l.readOnly && l.nodeName.startsWith('#block'))).toBe(true);
  });

  it('an anonymous device behind a throttle filter: serial from QOM, filter skipped, raw format', () => {
    const d = model.disks.find((x) => x.serial === 'anon')!;
    expect(d.qdevId).toBeNull();
    expect(d.qomPath).toMatch(/^\/machine\/peripheral-anon\/device\[\d+\]\/virtio-backend$/);
    expect(d.chain).toEqual([
      { nodeName: 'raw-fmt', format: 'raw', file: f.raw, fileNodeName: 'raw-file', protocol: 'file', readOnly: false, virtualSize: 16 << 20 },
    ]);
  });

  it('a -drive disk sharing a base image: the chain follows its own nodes, not the other disk\'s', () => {
    const d = model.disks.find((x) => x.qdevId === 'disk2')!;
    expect(d).toMatchObject({ device: 'drv2', serial: null, format: 'qcow2', file: f.other });
    expect(d.chain.map((l) => l.file)).toEqual([f.other, f.base]);
    const base0 = model.disks.find((x) => x.qdevId === 'disk0')!.chain[2]!;
    expect(d.chain[1]!.file).toBe(base0.file);
    expect(d.chain[1]!.nodeName).not.toBe(base0.nodeName); // QEMU opened base.qcow2 twice
  });

  it('livemr vm info prints the same model (JSON and text)', async () => {
    const json = await run(process.execPath, [LIVEMR, 'vm', 'info', qemu!.qmp[1]!, '--json']);
    expect(JSON.parse(json.stdout)).toEqual(model);
    const text = await run(process.execPath, [LIVEMR, 'vm', 'info', qemu!.qmp[1]!]);
    expect(text.stdout).toContain('status: prelaunch');
    expect(text.stdout).toContain(`disk0  serial=data  node=top-fmt  file-node=top-file`);
    expect(text.stdout).toContain(f.base);
  });
});

describe('typed helpers on a VM with devices', () => {
  it('block_set_io_throttle takes effect and reads back through query-block', async () => {
    const d = (await describeVm(client!)).disks.find((x) => x.qdevId === 'disk0')!;
    await setIoThrottle(client!, d.qomPath!, { bps: 1_000_000, iops_wr: 0 });
    expect(await readIoThrottle(client!, d.qomPath!)).toMatchObject({ bps: 1_000_000, bps_rd: 0, iops: 0 });
    await setIoThrottle(client!, d.qomPath!, { bps_rd: 2_000_000, bps_wr: 500_000, iops_wr: 50 });
    expect(await readIoThrottle(client!, d.qomPath!)).toMatchObject({ bps: 0, bps_rd: 2_000_000, bps_wr: 500_000, iops_wr: 50 });
    // Total and read/write limits exclude each other: QEMU says so with a typed error.
    const both = await setIoThrottle(client!, d.qomPath!, { bps: 1, bps_rd: 1 }).catch((e: unknown) => e);
    expect(both).toMatchObject({ name: 'ExecuteError', errorClass: 'GenericError' });
    // The PCI proxy's qdev id has no block backend; the virtio backend's QOM path is what works.
    const proxy = await setIoThrottle(client!, 'disk0', { bps: 1 }).catch((e: unknown) => e);
    expect(proxy).toBeInstanceOf(ExecuteError);
    await setIoThrottle(client!, d.qomPath!, {});
    expect(await readIoThrottle(client!, d.qomPath!)).toMatchObject({ bps: 0, bps_rd: 0, bps_wr: 0, iops_wr: 0 });
  });

  it('query-blockstats has one entry per guest drive', async () => {
    const stats = await queryBlockstats(client!);
    expect(stats).toHaveLength(3);
    expect(stats.map((s) => s.qdev).sort()).toEqual((await describeVm(client!)).disks.map((d) => d.qomPath).sort());
  });

  it('query-cpus-fast gives the host thread of each vCPU', async () => {
    const cpus = await queryCpusFast(client!);
    expect(cpus).toHaveLength(1);
    expect(fs.existsSync(`/proc/${qemu!.pid}/task/${cpus[0]!.threadId}/schedstat`)).toBe(true);
    expect((await queryStatus(client!)).status).toBe('prelaunch');
  });

  it('hot-plugs a virtserialport with a unix-socket chardev, and removes it', async () => {
    expect(await findVirtioSerialBus(client!)).toBe('vser0.0');
    const socketPath = path.join(dir, 'livemr0.sock');
    const ch = await addChannel(client!, { id: 'livemr0', socketPath });
    expect(ch).toMatchObject({ bus: 'vser0.0', name: 'org.livemr.0', chardevId: 'livemr0-chr' });
    expect(await client!.execute('qom-get', { path: '/machine/peripheral/livemr0', property: 'name' })).toBe('org.livemr.0');
    // QEMU listens on the host end.
    const s = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    s.destroy();
    // The same id again is refused, and the failed add leaves no chardev behind.
    await expect(addChannel(client!, { id: 'livemr0', socketPath: `${socketPath}.2` })).rejects.toBeInstanceOf(ExecuteError);
    await removeChannel(client!, ch);
    const chardevs = await client!.execute<{ label: string }[]>('query-chardev');
    expect(chardevs.map((c) => c.label)).not.toContain('livemr0-chr');
    await expect(client!.execute('qom-get', { path: '/machine/peripheral/livemr0', property: 'name' })).rejects.toMatchObject({
      errorClass: 'DeviceNotFound',
    });
  });

  it('livemr qmp sends one command and reports QMP errors by class', async () => {
    const ok = await run(process.execPath, [LIVEMR, 'qmp', qemu!.qmp[1]!, 'qom-get', '{"path":"/machine/peripheral/disk0/virtio-backend","property":"serial"}']);
    expect(JSON.parse(ok.stdout)).toBe('data');
    const bad = await run(process.execPath, [LIVEMR, 'qmp', qemu!.qmp[1]!, 'no-such-command']).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toMatch(/CommandNotFound/);
    const usage = await run(process.execPath, [LIVEMR, 'qmp', qemu!.qmp[1]!, 'query-status', '{not json']).catch((e: { code: number }) => e);
    expect(usage).toMatchObject({ code: 2 });
    const missing = await run(process.execPath, [LIVEMR, 'qmp', path.join(dir, 'nope.sock'), 'query-status']).catch((e: { code: number; stderr: string }) => e);
    expect(missing).toMatchObject({ code: 1 });
    expect((missing as { stderr: string }).stderr).toMatch(/ConnectError.*ENOENT/);
  });
});
