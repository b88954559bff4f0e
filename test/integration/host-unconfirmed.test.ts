// After an agent restart the journal brings a VM's files back, but the guest may have freed and
// reused their blocks meanwhile (issue 14 #3): they must not be served until the guest has resynced
// and reported them again (laid out anew), and they must expire if the guest stays silent. A restart
// here is what the agent does: the store reopened from its journal, a new FUSE mount, a new VmLink.
// The guest is played over an in-memory channel speaking the real protocol; the image is a real qcow2.
import { execFileSync } from 'node:child_process';
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
let mnt: string;
let run: { store: CompositionStore; mount: ComposedMount; link: VmLink; guests: FakeGuest[] } | undefined;
const logLines: string[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'livemr-unconfirmed-'));
  img = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${2 * C}`, '-c', `write -P 0x62 ${2 * C} ${2 * C}`, img]);
  mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
});
afterEach(async () => {
  await stopAgent();
  logLines.length = 0;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Starts "the agent": the store from its journal, the mount, the VM's link. */
async function startAgent(state: string, unconfirmedTtlMs?: number) {
  const store = CompositionStore.open(state);
  const mount = await ComposedMount.mount(store, mnt);
  const guests: FakeGuest[] = [];
  const link = new VmLink({ name: 'vm1', qmp: '/unused', share: [] }, {
    store, log: createLogger({ sink: (line) => logLines.push(line) }), metrics: new Metrics(), runDir: join(dir, 'run'), hostId: 'h',
    control: new MemoryControl(oneDiskModel(img, 'qcow2')), channelRetryMs: 10, controlRetryMs: 10,
    dial: async () => { const [host, guest] = duplexPair(); guests.push(new FakeGuest(guest)); return host; },
    ...(unconfirmedTtlMs !== undefined ? { unconfirmedTtlMs } : {}),
  });
  run = { store, mount, link, guests };
  await until('dialed', () => guests.length === 1, 2000, 5);
  return run;
}

async function stopAgent(): Promise<void> {
  if (!run) return;
  const r = run;
  run = undefined;
  await r.link.stop();
  await r.mount.unmount();
  r.store.close();
}

const fileMsg = (fileId: number, path: string, size: number, cluster: number): MessageOf<'fileExtents'> => ({
  type: 'fileExtents', fileId, inode: 100 + fileId, generation: 1, path, disk: 'data', size, from: 0, more: false, rewritten: false,
  extents: [{ logical: 0, physical: cluster * C, length: C, flags: 0 }],
});
const read = (name: string): Buffer | undefined => {
  try {
    return fs.readFileSync(join(mnt, `livemr_${name}`));
  } catch {
    return undefined;
  }
};
/** What a journal names, replayed from a copy of it. */
function journaled(state: string): string[] {
  const copy = fs.mkdtempSync(join(dir, 'replay-'));
  fs.copyFileSync(join(state, 'compositions.journal'), join(copy, 'compositions.journal'));
  const s = CompositionStore.open(copy);
  try {
    return s.list().map((c) => c.name);
  } finally {
    s.close();
  }
}

/** A first run: the guest shares a.log (guest cluster 0, 'a' bytes) and b.log (cluster 2, 'b'). */
async function firstRun(state: string): Promise<void> {
  const { guests } = await startAgent(state);
  const g = guests[0]!;
  await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
  g.send(fileMsg(1, '/a.log', 100, 0));
  g.send(fileMsg(2, '/b.log', 100, 2));
  await until('both served', () => read('vm1_a.log')?.length === 100 && read('vm1_b.log')?.length === 100, 3000, 5);
  await stopAgent();
}

describe('journaled files after an agent restart', () => {
  it('are withheld until the guest resyncs; then served as it reports them now, the rest dropped', async () => {
    const state = join(dir, 'state-resync');
    await firstRun(state);
    expect(journaled(state)).toEqual(['vm1_a.log', 'vm1_b.log']);
    const { guests, link } = await startAgent(state);
    // nothing of the earlier run is served before the guest says so
    expect(read('vm1_a.log')).toBeUndefined();
    expect(read('vm1_b.log')).toBeUndefined();
    expect(fs.readdirSync(mnt)).toEqual([]);
    // meanwhile the guest freed b.log and rewrote a.log elsewhere (cluster 2, once b.log's)
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }], [fileMsg(1, '/a.log', 100, 2)]);
    await until('a.log re-verified', () => read('vm1_a.log')?.equals(Buffer.alloc(100, 0x62)) === true, 3000, 5);
    await until('b.log dropped from the journal', () => !journaled(state).includes('vm1_b.log'), 3000, 20);
    expect(read('vm1_b.log')).toBeUndefined();
    expect(link.status().files.map((f) => [f.path, f.servedSize])).toEqual([['/a.log', 100]]);
    expect(journaled(state)).toEqual(['vm1_a.log']);
  });

  it('expire when the guest stays silent', async () => {
    const state = join(dir, 'state-silent');
    await firstRun(state);
    await startAgent(state, 300);
    expect(read('vm1_a.log')).toBeUndefined();
    // the guest never says hello
    await until('expired', () => logLines.filter((l) => l.includes('withheld file dropped')).length === 2, 3000, 20);
    expect(journaled(state)).toEqual([]);
    expect(fs.readdirSync(mnt)).toEqual([]);
  });
});
