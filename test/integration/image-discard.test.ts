// Issue 14 #6, "mappings change without an event": on a qcow2 disk QEMU runs with discard=unmap, a
// guest discard frees the host clusters under a shared file and QEMU reuses them at once — for a
// new L2 table, for another guest write — while the guest helper sends nothing (the file did not
// change as far as its inode is concerned; here the helper is even paused). The agent must notice (the disk's discard counters) and
// re-verify the file against the image as it is now, so that the mount serves what the guest reads
// (zeros where it discarded), never the image's own L2 table or the other write's bytes.
// One real guest, one real qcow2 (4 KiB clusters, so that one L2 table covers 2 MiB of disk and a
// write into a fresh 2 MiB region makes QEMU allocate a table), the real agent and FUSE mount.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { QmpClient, queryBlockstats } from '../../src/qmp/index.js';
import { ensureGuestImage } from '../../vm-images/build.js';
import { parseFilefrag } from '../harness/selfcheck.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const FILE = '/mnt/trim/a.bin';
const SIZE = 512 * 1024;
const BLOCK = 4096;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('a discard under a shared file (discard=unmap, real guest)', () => {
  let dir: string;
  let vm: GuestVm;
  let agent: HostAgent | undefined;
  let cfg: AgentConfig;
  let dev: string;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-discard-'));
    const trim = join(dir, 'trim.qcow2');
    // an overlay on the cached ext4 data disk, with 4 KiB clusters
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-F', 'qcow2', '-b', (await ensureGuestImage()).data, trim]);
    vm = await bootGuest({
      name: 'discard',
      extraArgs: [
        '-blockdev', `driver=file,filename=${trim},node-name=vd-trim-file,cache.direct=off,discard=unmap`,
        '-blockdev', 'driver=qcow2,file=vd-trim-file,node-name=vd-trim-fmt,discard=unmap',
        '-device', 'virtio-blk-pci,drive=vd-trim-fmt,id=vd-trim,serial=trim',
      ],
    });
    dev = '/dev/' + (await vm.sh('for s in /sys/block/vd*/serial; do [ "$(cat $s)" = trim ] && basename $(dirname $s); done')).trim();
    await vm.sh(`head -c ${SIZE} /dev/zero | tr '\\0' A > ${FILE} && sync && setfattr -n user.livemr.share -v 1 ${FILE}`);
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, channel: vm.channelSocket, share: [FILE] }],
    });
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  });

  afterAll(async () => {
    await agent?.stop();
    await vm?.shutdown();
    if (logs.length) console.error(logs.filter((l) => /discard|re-verif|shared file|metadata|guest/.test(l)).slice(-40).join('\n'));
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves what the guest reads after QEMU reused the discarded clusters for an L2 table and another write', async () => {
    const host = join(cfg.mountpoint, 'livemr_vm1_mnt_trim_a.bin');
    await until('the file on the mount', () => existsSync(host) && readFileSync(host).equals(Buffer.alloc(SIZE, 'A')), 60_000);
    const [first] = parseFilefrag(await vm.sh(`filefrag -v -b${BLOCK} ${FILE}`));
    expect(first!.length).toBeGreaterThanOrEqual(SIZE / 2);
    // discard 64 KiB of the file's blocks under the file system (the helper sees no change), then
    // write 64 KiB of other bytes into a 2 MiB region of the disk no L2 table covers yet: QEMU
    // allocates the table and the data in the clusters it just freed
    // the helper is paused: any report of the file would re-lay it out and hide what the agent must
    // notice itself (a discard under the file system leaves nothing for inotify anyway)
    await vm.sh('kill -STOP $(cat /run/livemr-guest.pid)');
    const at = first!.physical + 64 * 1024;
    // util-linux's blkdiscard (the host's, with its library): --force discards on a mounted disk
    // (busybox's opens the device exclusively, which a mounted file system refuses)
    await vm.sh('mkdir -p /tmp/ul');
    await vm.put('/usr/sbin/blkdiscard', '/tmp/ul/blkdiscard', 0o755);
    await vm.put('/lib/x86_64-linux-gnu/libblkid.so.1', '/tmp/ul/libblkid.so.1');
    await vm.sh(`LD_LIBRARY_PATH=/tmp/ul /tmp/ul/blkdiscard --force -o ${at} -l 65536 ${dev}`);
    await vm.sh(`head -c 65536 /dev/zero | tr '\\0' S | dd of=${dev} bs=4096 seek=${(200 << 20) / BLOCK} iflag=fullblock oflag=direct conv=fsync 2>/dev/null`);
    await vm.sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    const guest = await vm.sh(`cat ${FILE} | sha256sum`);
    const want = Buffer.alloc(SIZE, 'A');
    want.fill(0, 64 * 1024, 128 * 1024);
    expect(guest.split(' ')[0]).toBe(sha(want)); // the guest reads zeros where it discarded
    const t0 = Date.now();
    await until('the mount serves what the guest reads', () => sha(readFileSync(host)) === sha(want), 15_000, 50);
    const ms = Date.now() - t0;
    expect(readFileSync(host).includes(Buffer.alloc(64, 'S'))).toBe(false);
    await vm.sh('kill -CONT $(cat /run/livemr-guest.pid)');
    console.error(`[discard] the mount served the guest's view ${ms} ms after the guest's discard + reuse + sync`);
  });

  it('counts the discard in query-blockstats (the image file\'s discards), which the agent reads once a second (its cost measured here)', async () => {
    let qmp: QmpClient | undefined;
    try {
      qmp = await QmpClient.connect(vm.testQmpSocket);
      const stats = await queryBlockstats(qmp);
      const trim = stats.find((s) => s.qdev?.includes('vd-trim'));
      // virtio-blk does not count its discard requests (unmap_operations stays 0 in QEMU 7.2); the
      // discards QEMU passed to the image file for the clusters it freed are counted
      expect(trim?.fileDiscards).toBeGreaterThan(0);
      console.error(`[discard] trim disk: unmap_operations ${trim?.unmapOperations}, image file discards ${trim?.fileDiscards} (${trim?.fileDiscardBytes} bytes)`);
      const n = 50;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await queryBlockstats(qmp);
      const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
      console.error(`[discard] query-blockstats: ${us.toFixed(0)} µs per call (${stats.length} devices), 1 call/s per VM`);
    } finally {
      await qmp?.close();
    }
  });
});
