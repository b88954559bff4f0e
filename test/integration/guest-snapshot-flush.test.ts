// The guest helper's disk flush after snapshots: a block the host already knows moves when QEMU
// copies its cluster into a new top image (external snapshot) on the next write, and that new place
// is only in QEMU's metadata cache until the guest flushes its disk. Growth inside such a block, or a
// write in place, changes no extent; before src/guest/report.ts needsDiskFlush the helper reported
// it without a flush and the host served the backing image's old copy of the block (NUL bytes for
// appended ones). Every check reads the mount at the moment the host first serves the new size.
// One busybox guest, the real host agent and FUSE mount.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, compositionName, createLogger, parseConfig } from '../../src/host/index.js';
import { QmpClient } from '../../src/qmp/index.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const LOG = '/mnt/data/snap.log';

describe('helper disk flush after a snapshot moved a known block', () => {
  let vm: GuestVm | undefined;
  let agent: HostAgent | undefined;
  let dir: string;
  let snaps = 0;
  const logs: string[] = [];
  const hostFile = () => join(dir, 'mnt', `livemr_${compositionName('vm1', LOG)}`);
  const served = () => agent?.status().vms[0]?.files.find((f) => f.path === LOG);
  /** an external snapshot of the data disk: a new, empty top image */
  const snapshot = async () => {
    const qmp = await QmpClient.connect(vm!.testQmpSocket);
    try {
      snaps++;
      await qmp.execute('blockdev-snapshot-sync', {
        'node-name': snaps === 1 ? 'vd-data-fmt' : `vd-data-snap${snaps - 1}`, 'snapshot-file': join(vm!.dir, `snap${snaps}.qcow2`),
        'snapshot-node-name': `vd-data-snap${snaps}`, format: 'qcow2',
      });
    } finally {
      await qmp.close();
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-snapflush-'));
    vm = await bootGuest({ name: 'snapflush' });
    // no ext4 journal commit (each one flushes the disk) during the test: only the helper's flush may
    // make QEMU write the moved cluster's metadata, so a missing one is seen every time, not by timing
    await vm.sh(`mount -o remount,commit=600 /mnt/data && head -c 100 /dev/zero | tr '\\0' a > ${LOG} && setfattr -n user.livemr.share -v 1 ${LOG} && sync`);
    const cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, channel: vm.channelSocket, share: [LOG] }],
    });
    agent = await HostAgent.start(cfg, createLogger({ level: 'info', sink: (l) => logs.push(l) }));
    await until('the log served', () => served()?.servedSize === 100, 90_000, 20);
    expect(readFileSync(hostFile(), 'latin1')).toBe('a'.repeat(100));
  }, 240_000);

  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await vm?.shutdown();
    if (dir) {
      try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('an append inside the tail block right after an external snapshot is served as written, not as the backing\'s copy', async () => {
    await snapshot();
    await vm!.sh(`head -c 100 /dev/zero | tr '\\0' b >> ${LOG}`);
    await until('200 B served', () => served()?.servedSize === 200, 30_000, 2);
    expect(readFileSync(hostFile(), 'latin1')).toBe('a'.repeat(100) + 'b'.repeat(100));
  });

  it('a write in place after another snapshot is served as written (the host re-reads the image when told; nothing else reports)', async () => {
    await snapshot();
    await vm!.sh(`printf 'cccc' | dd of=${LOG} bs=1 seek=10 conv=notrunc 2>/dev/null`);
    const want = `${'a'.repeat(10)}cccc${'a'.repeat(86)}${'b'.repeat(100)}`;
    let last = '';
    // without the flush the host kept serving the backing's 'aaaa' until some later report
    await until('the rewrite served', () => (last = readFileSync(hostFile(), 'latin1')) === want, 30_000, 20)
      .catch((e: Error) => { throw new Error(`${e.message}; served ${JSON.stringify(last.slice(0, 20))}…`); });
  });
});
