// Store errors are handled per file and fail closed (issue 14 #4): a guest path too long for a
// composition name, and a full state file system (ENOSPC, a real tmpfs), must not drop the other
// files' truncates and removals in the same batch; a shrink or removal that cannot be journaled is
// withdrawn from the real FUSE mount at once and journaled once there is room again. The guest is
// played over an in-memory channel speaking the real protocol; the image is a real qcow2.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ComposedMount, CompositionStore } from '../../src/fs/index.js';
import type { MessageOf } from '../../src/guest/protocol.js';
import { createLogger } from '../../src/host/log.js';
import { Metrics } from '../../src/host/metrics.js';
import { VmLink } from '../../src/host/vm-link.js';
import { until } from '../harness/wait.js';
import { duplexPair, FakeGuest, MemoryControl, oneDiskModel } from '../unit/host/support/memory.js';

const C = 65536;
let dir: string;
let img: string;
let stateFs: string;
let mnt: string;
let store: CompositionStore;
let mount: ComposedMount;
let link: VmLink | undefined;
const logLines: string[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(join(tmpdir(), 'livemr-store-errors-'));
  img = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, img]);
  // the state directory on its own small file system, so that it can be filled up for real
  stateFs = join(dir, 'statefs');
  fs.mkdirSync(stateFs);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'livemr-test-state', stateFs]);
  store = CompositionStore.open(join(stateFs, 'state'));
  mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
  mount = await ComposedMount.mount(store, mnt);
});
afterEach(async () => {
  await link?.stop();
  link = undefined;
  logLines.length = 0;
  fs.rmSync(join(stateFs, 'filler'), { force: true });
});
afterAll(async () => {
  await mount?.unmount();
  store?.close();
  spawnSync('umount', [stateFs]);
  fs.rmSync(dir, { recursive: true, force: true });
});

function start(): { guests: FakeGuest[]; l: VmLink } {
  const guests: FakeGuest[] = [];
  const l = new VmLink({ name: 'vm1', qmp: '/unused', share: [] }, {
    store, log: createLogger({ sink: (line) => logLines.push(line) }), metrics: new Metrics(), runDir: join(dir, 'run'), hostId: 'h',
    control: new MemoryControl(oneDiskModel(img, 'qcow2')), channelRetryMs: 10, controlRetryMs: 10,
    dial: async () => { const [host, guest] = duplexPair(); guests.push(new FakeGuest(guest)); return host; },
  });
  link = l;
  return { guests, l };
}

const fileMsg = (fileId: number, path: string, size: number, cluster = 0): MessageOf<'fileExtents'> => ({
  type: 'fileExtents', fileId, inode: 100 + fileId, generation: 1, path, disk: 'data', size, from: 0, more: false, rewritten: false,
  extents: [{ logical: 0, physical: cluster * C, length: C, flags: 0 }],
});
const served = (name: string) => {
  try {
    return fs.statSync(join(mnt, `livemr_${name}`)).size;
  } catch {
    return -1;
  }
};

/** Fills the state file system up to the last byte, the journal's last page too. */
function fillStateFs(): void {
  fillFile();
  // the journal's last page has room for a few more records: use it up through the store itself
  for (let i = 0; ; i++) {
    try {
      store.compose('pad', [{ file: img, offset: 0, length: 1 }]);
    } catch (e) {
      if ((e as { code?: string }).code === 'EJOURNAL') break;
      throw e;
    }
    if (i > 10_000) throw new Error('the state file system does not fill up');
  }
}

function fillFile(): void {
  const fd = fs.openSync(join(stateFs, 'filler'), 'w');
  const chunk = Buffer.alloc(64 << 10);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    for (;;) {
      try { fs.writeSync(fd, chunk, 0, 1); } catch { break; }
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function connected(): Promise<FakeGuest> {
  const { guests } = start();
  await until('dialed', () => guests.length === 1, 2000, 5);
  const g = guests[0]!;
  await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
  return g;
}

describe('store errors, per file', () => {
  it('a guest path over the name limit is refused on its own; the truncate in the same batch is applied', async () => {
    const g = await connected();
    g.send(fileMsg(1, '/a.log', C));
    await until('a published', () => served('vm1_a.log') === C, 3000, 5);
    // one batch: the over-long path first, then a.log's shrink
    g.send(fileMsg(2, '/' + 'x'.repeat(250), C, 1));
    g.send({ type: 'truncate', fileId: 1, size: 100 });
    await until('a truncated', () => served('vm1_a.log') === 100, 3000, 5);
    const long = link!.status().files.find((f) => f.fileId === 2);
    expect(long?.refused).toMatch(/cannot store this file/);
    expect(store.list().map((c) => c.name)).toEqual(['vm1_a.log']);
    g.send({ type: 'remove', fileId: 1, reason: 'deleted' });
    await until('a removed', () => served('vm1_a.log') === -1, 3000, 5);
  });

  it('ENOSPC: a shrink and a removal are withdrawn from the mount at once, then journaled when there is room', async () => {
    const g = await connected();
    g.send(fileMsg(1, '/shrinks.log', C));
    g.send(fileMsg(2, '/goes.log', C, 1));
    g.send(fileMsg(3, '/grows.log', 1000, 2));
    await until('published', () => served('vm1_shrinks.log') === C && served('vm1_goes.log') === C && served('vm1_grows.log') === 1000, 3000, 5);
    fillStateFs();
    // one batch: a growth that cannot be journaled either, a shrink; then a removal
    g.send(fileMsg(3, '/grows.log', 2000, 2));
    g.send({ type: 'truncate', fileId: 1, size: 100 });
    g.send({ type: 'remove', fileId: 2, reason: 'deleted' });
    await until('withdrawn', () => served('vm1_shrinks.log') === -1 && served('vm1_goes.log') === -1, 3000, 5);
    expect(served('vm1_grows.log')).toBe(1000); // still right: kept while its growth waits
    expect(link!.status().files.find((f) => f.fileId === 1)?.storeError).toMatch(/ENOSPC|no space/i);
    expect(logLines.some((l) => l.includes('withheld'))).toBe(true);
    // room again: the retries journal everything
    fs.rmSync(join(stateFs, 'filler'));
    await until('stored', () => served('vm1_shrinks.log') === 100 && served('vm1_grows.log') === 2000, 10_000, 20);
    expect(served('vm1_goes.log')).toBe(-1);
    expect(store.owedRemovals()).toEqual([]);
    store.remove('pad');
    expect(link!.status().files.every((f) => f.storeError === undefined)).toBe(true);
    // what the journal says now is what was served: a second store on a copy of it replays that
    const copy = join(dir, 'replay');
    fs.mkdirSync(copy);
    fs.copyFileSync(join(stateFs, 'state', 'compositions.journal'), join(copy, 'compositions.journal'));
    const replayed = CompositionStore.open(copy);
    try {
      expect(replayed.list().map((c) => [c.name, c.size])).toEqual([['vm1_grows.log', 2000], ['vm1_shrinks.log', 100]]);
    } finally {
      replayed.close();
    }
  });
});
