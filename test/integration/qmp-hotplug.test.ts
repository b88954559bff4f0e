// Hot-plugging the LiveMR channel into a booted guest that started without it, exchanging bytes both
// ways through it, and unplugging it again — all through QMP. Also checks the VM model of a real guest.

import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { queryBlockstats } from '../../src/qmp/vocab/block.js';
import { addChannel, removeChannel } from '../../src/qmp/vocab/channel.js';
import { describeVm } from '../../src/qmp/vm.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';

let vm: GuestVm | undefined;
let client: QmpClient | undefined;

beforeAll(async () => {
  vm = await bootGuest({ channel: false, name: 'qmp-hotplug' });
  client = await QmpClient.connect(vm.qmpSocket);
});

afterAll(async () => {
  await client?.close();
  await vm?.shutdown();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Name of the guest's port device (vportXpY) called `name`, or '' if there is none. */
async function guestPort(name: string): Promise<string> {
  return (
    await vm!.sh(`for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name 2>/dev/null)" = ${name} ] && basename $p; done; true`)
  ).trim();
}

describe('QMP on a booted guest', () => {
  it('the VM model shows each guest disk with its serial and overlay → base chain', async () => {
    const model = await describeVm(client!);
    expect(model.running).toBe(true);
    for (const disk of vm!.disks) {
      const d = model.disks.find((x) => x.serial === disk.serial);
      expect(d, disk.serial).toBeDefined();
      expect(d).toMatchObject({ qdevId: disk.id, format: 'qcow2', file: disk.overlay, nodeName: `${disk.id}-fmt`, fileNodeName: `${disk.id}-file` });
      expect(d!.chain.length).toBeGreaterThanOrEqual(2);
      expect(d!.chain.slice(1).every((l) => l.readOnly)).toBe(true);
    }
  });

  it('query-blockstats counts the guest\'s writes on its disk', async () => {
    const disk = vm!.disks.find((d) => d.serial === 'data')!;
    const qomPath = (await describeVm(client!)).disks.find((d) => d.serial === 'data')!.qomPath;
    const before = (await queryBlockstats(client!)).find((s) => s.qdev === qomPath)!;
    await vm!.sh(`dd if=/dev/zero of=/mnt/${disk.serial}/qmp-stats bs=64k count=16 conv=fsync 2>/dev/null`);
    const after = (await queryBlockstats(client!)).find((s) => s.qdev === qomPath)!;
    expect(after.wrBytes - before.wrBytes).toBeGreaterThanOrEqual(1 << 20);
    expect(after.flushOperations).toBeGreaterThan(before.flushOperations);
    expect(after.wrHighestOffset).toBeGreaterThan(0);
  });

  it('hot-plugs org.livemr.0, exchanges bytes both ways, and unplugs it', async () => {
    // The image's LiveMR guest helper waits for this port and would open it first (a virtio port
    // has one opener): park it, so this test talks to the port itself.
    await vm!.sh('touch /run/livemr-guest.disabled; [ -f /run/livemr-guest.pid ] && kill $(cat /run/livemr-guest.pid) 2>/dev/null; true');
    expect(await guestPort('org.livemr.0')).toBe('');
    const socketPath = path.join(vm!.dir, 'hotplug.sock');
    const channel = await addChannel(client!, { id: 'livemr-hp', socketPath });
    expect(channel.bus).toBe('vser0.0');

    let port = '';
    for (let i = 0; i < 50 && !port; i++) {
      port = await guestPort('org.livemr.0');
      if (!port) await new Promise((r) => setTimeout(r, 100));
    }
    expect(port).toMatch(/^vport\d+p\d+$/);

    const host = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => host.once('connect', resolve).once('error', reject));
    const received: Buffer[] = [];
    host.on('data', (d: Buffer) => received.push(d));

    const toGuest = randomBytes(65536);
    host.write(toGuest); // held in the socket until the guest opens the port
    const out = await vm!.sh(
      [
        `exec 3<>/dev/${port}`,
        'head -c 65536 <&3 > /tmp/in',
        'sha256sum /tmp/in',
        'dd if=/dev/urandom of=/tmp/out bs=4096 count=16 2>/dev/null',
        'sha256sum /tmp/out',
        'cat /tmp/out >&3',
        'exec 3>&-',
      ].join('\n'),
      { timeoutMs: 60_000 },
    );
    const [inSum, outSum] = out.trim().split('\n').map((l) => l.split(/\s+/)[0]);
    expect(inSum).toBe(sha(toGuest));

    const deadline = Date.now() + 10_000;
    while (Buffer.concat(received).length < 65536 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const fromGuest = Buffer.concat(received);
    expect(fromGuest.length).toBe(65536);
    expect(sha(fromGuest)).toBe(outSum);
    host.destroy();

    await removeChannel(client!, channel);
    expect(await guestPort('org.livemr.0')).toBe('');
    const chardevs = await client!.execute<{ label: string }[]>('query-chardev');
    expect(chardevs.map((c) => c.label)).not.toContain(channel.chardevId);
  });
});
