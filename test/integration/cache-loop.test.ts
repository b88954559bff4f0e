// The closed loop against real guests: two TCG guests whose virtio-net taps sit on a bridge inside a
// network namespace this test creates. The monitor reads query-blockstats, vCPU schedstat and the
// nftables pair counters in that namespace; the executor caps drives with block_set_io_throttle and
// reads the caps back. A third disk of guest A is opened with cache=none (O_DIRECT on the host) and a
// direct-I/O reader in the guest is timed under a cap. Traffic stays inside the namespace. The
// namespace, the VMs and the temp files are removed in afterAll, also after a failure.

import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDriveIops, parseLoopConfig, startSession, type Decision, type Session } from '../../src/cache/index.js';
import { readIoThrottle } from '../../src/qmp/index.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';

function why(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespace, taps, nftables)';
  for (const [cmd, arg] of [['nft', '--version'], ['ip', '-V']] as const) {
    try { execFileSync(cmd, [arg], { stdio: 'ignore' }); } catch { return `${cmd} is not installed`; }
  }
  return null;
}
const skip = why();
if (skip) console.warn(`[cache-loop] skipped: ${skip}`);

const NS = `lmrcache${process.pid}`;
const ns = (...args: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...args], { stdio: 'pipe' }).toString();
const ADDR = { a: '10.77.0.1', b: '10.77.0.2' };

describe.skipIf(skip !== null)('AC-SSD loop on two guests on a bridge', () => {
  const vms: Partial<Record<'a' | 'b', GuestVm>> = {};
  const thrDisk = join(tmpdir(), `livemr-cache-thr-${process.pid}.raw`);
  let session: Session | undefined;
  const log: Decision[] = [];

  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', NS]);
    ns('ip', 'link', 'set', 'lo', 'up');
    ns('ip', 'link', 'add', 'br0', 'type', 'bridge');
    ns('ip', 'link', 'set', 'br0', 'up');
    for (const tap of ['tap0', 'tap1']) {
      ns('ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
      ns('ip', 'link', 'set', tap, 'master', 'br0', 'up');
    }
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', thrDisk, '64M']);
    const net = (tap: string, mac: string) => ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${mac}`];
    const wrapper = ['ip', 'netns', 'exec', NS];
    // One at a time: two TCG boots at once on 2 shared cores can trip the guest kernel's IO-APIC timer check.
    vms.a = await bootGuest({
        name: 'cache-a', wrapper, extraArgs: [
          ...net('tap0', '52:54:00:77:00:01'),
          '-blockdev', `driver=file,filename=${thrDisk},node-name=thr-file,cache.direct=on`,
          '-blockdev', 'driver=raw,file=thr-file,node-name=thr-fmt',
          '-device', 'virtio-blk-pci,drive=thr-fmt,id=vd-thr,serial=thr',
        ],
    });
    vms.b = await bootGuest({ name: 'cache-b', wrapper, extraArgs: net('tap1', '52:54:00:77:00:02') });
    for (const k of ['a', 'b'] as const) {
      await vms[k]!.sh(`ip link set eth0 up && ip addr add ${ADDR[k]}/24 dev eth0`);
    }
  }, 120_000);

  afterAll(async () => {
    await session?.close().catch(() => {});
    await Promise.all(Object.values(vms).map((vm) => vm.shutdown().catch(() => {})));
    try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* not created */ }
    rmSync(thrDisk, { force: true });
  });

  it('monitor → plan → execute: pair counters see the traffic, caps are applied and read back', async () => {
    const cfg = parseLoopConfig({
      vms: [
        { name: 'a', app: 'job', qmp: vms.a!.qmpSocket, address: ADDR.a, disks: ['vd-thr'] },
        { name: 'b', app: 'job', qmp: vms.b!.qmpSocket, address: ADDR.b, disks: ['vd-data'] },
      ],
      network: { netns: NS },
      capacityIops: 400,
      hysteresis: 0.05,
      actuators: { qemuThrottle: true },
    });
    session = await startSession(cfg, { log: (d) => log.push(d) });
    expect((await session.loop.step()).action).toBe('baseline');

    // Traffic a → b over the bridge (2 MiB through a node TCP pair), disk I/O in both guests.
    await vms.b!.sh(`node -e "require('net').createServer(s => s.resume()).listen(5000, '${ADDR.b}', () => require('fs').writeFileSync('/tmp/listening', ''))" >/dev/null 2>&1 &`);
    await vms.b!.sh('for i in $(seq 300); do [ -e /tmp/listening ] && exit 0; sleep 0.1; done; exit 1', { timeoutMs: 40_000 });
    const thr = (await vms.a!.sh('for d in /sys/block/vd*; do [ "$(cat $d/serial)" = thr ] && echo ${d##*/}; done')).trim();
    expect(thr).toMatch(/^vd[a-z]$/);
    await vms.a!.sh(
      `node -e "const s=require('net').connect(5000,'${ADDR.b}',()=>{s.end(Buffer.alloc(2<<20))});s.on('close',()=>process.exit(0))"`,
      { timeoutMs: 30_000 },
    );
    await vms.a!.sh(`dd if=/dev/${thr} of=/dev/null bs=4k count=300 iflag=direct 2>/dev/null`);
    await vms.b!.sh('dd if=/dev/zero of=/mnt/data/f bs=64k count=64 2>/dev/null && sync');

    const d = await session.loop.step();
    expect(d.action).toBe('applied');
    const seconds = d.inputs!.seconds;
    const ab = d.inputs!.flows.find((f) => f.from === 'a' && f.to === 'b')!;
    expect(ab.bytesPerSec * seconds).toBeGreaterThanOrEqual(2 << 20);
    const ba = d.inputs!.flows.find((f) => f.from === 'b' && f.to === 'a')!;
    expect(ba.bytesPerSec * seconds).toBeGreaterThan(0); // ACKs
    const a = d.inputs!.vms.find((v) => v.name === 'a')!;
    expect(a.iops * seconds).toBeGreaterThanOrEqual(300);
    expect(a.cpuTimeNs).toBeGreaterThan(0);
    expect(a.ioTimeNs).toBeGreaterThan(0);
    const rows = d.plan!.rows;
    expect(rows.reduce((s, r) => s + r.ws, 0)).toBeCloseTo(1, 9);
    expect(rows.reduce((s, r) => s + r.wi, 0)).toBeCloseTo(1, 9);

    // What QEMU reports now equals weight × capacity.
    const readback = d.readback!['qemu-throttle'] as Record<string, { iops: number }>;
    for (const [vm, disk] of [['a', 'vd-thr'], ['b', 'vd-data']] as const) {
      const wi = rows.find((r) => r.name === vm)!.wi;
      expect(readback[`${vm}/${disk}`]!.iops).toBe(Math.max(10, Math.round(wi * 400)));
    }
    console.warn(`[cache-loop] plan ${JSON.stringify(rows.map((r) => [r.name, +r.ws.toFixed(3), +r.wi.toFixed(3)]))}, a→b ${(ab.bytesPerSec * seconds / 1048576).toFixed(2)} MiB`);
    expect(log.map((x) => x.action)).toEqual(['baseline', 'applied']);
  }, 120_000);

  it('a cache=none drive under block_set_io_throttle is capped within ±10%', async () => {
    // QEMU serves one QMP client per socket: use the loop's connection.
    const client = session!.monitor.client('a');
    {
      const back = await applyDriveIops(client, 'vd-thr', 50);
      expect(back.iops).toBe(50);
      const thr = (await vms.a!.sh('for d in /sys/block/vd*; do [ "$(cat $d/serial)" = thr ] && echo ${d##*/}; done')).trim();
      const n = 200;
      const t0 = performance.now();
      await vms.a!.sh(`dd if=/dev/${thr} of=/dev/null bs=4k skip=1000 count=${n} iflag=direct 2>/dev/null`, { timeoutMs: 60_000 });
      const iops = n / ((performance.now() - t0) / 1000);
      console.warn(`[cache-loop] cap 50 IOPS on a cache=none drive → measured ${iops.toFixed(1)}`);
      expect(Math.abs(iops - 50) / 50).toBeLessThanOrEqual(0.1);
      await applyDriveIops(client, 'vd-thr', 0);
      const id = (await readIoThrottle(client, '/machine/peripheral/vd-thr/virtio-backend')).iops;
      expect(id).toBe(0);
    }
  }, 120_000);
});
