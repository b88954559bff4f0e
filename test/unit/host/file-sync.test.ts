// The file sync's ordering rule: whatever makes it lay a file out again (a discard on its disk, a
// pending tail, a new backing chain, a store retry) uses the file's newest report, never an older
// copy. A copy queued while a newer report was being applied undid it: the host showed 206299 bytes
// of an append-only log, then 206283 (the consistency soak's b-shrink). On a real qcow2 image and a
// real composition store; the round is held inside its metadata re-read to make the race certain.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/index.js';
import type { GuestFile } from '../../../src/guest/index.js';
import { FileSync } from '../../../src/host/file-sync.js';
import { createLogger } from '../../../src/host/log.js';
import { Metrics } from '../../../src/host/metrics.js';
import { openImage, type ImageMapper } from '../../../src/image/index.js';
import { until } from '../../harness/wait.js';

const C = 65536;

describe('file sync: a re-layout never undoes a newer report', () => {
  let dir: string;
  let mapper: ImageMapper;
  let store: CompositionStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-filesync-unit-'));
    const img = join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, img]);
    mapper = await openImage(img);
    store = CompositionStore.open(join(dir, 'state'));
  });
  afterAll(async () => {
    store?.close();
    await mapper?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const report = (fileId: number, size: number): GuestFile => ({
    fileId, inode: 12 + fileId, generation: 1, path: `/log${fileId}`, disk: 'data', size, changedFrom: Infinity,
    extents: [{ logical: 0, physical: 0, length: 4 * C, flags: 0 }],
  });

  /** A FileSync whose rounds can be held in their metadata re-read (`hold`), and whose next round
   * reports that the backing chain changed when `chainChanged` is set. */
  function sync() {
    let gate: Promise<void> | undefined;
    let release = () => {};
    let inRound = 0;
    let chainChanged = false;
    const s = new FileSync({
      vm: 'vm1', store, log: createLogger({ sink: () => {} }), metrics: new Metrics(), signal: new AbortController().signal,
      disks: { get: () => mapper, invalidate: async () => { inRound++; if (gate) await gate; } },
      reloadIfChanged: async () => { const c = chainChanged; chainChanged = false; return c; },
      flush: () => undefined,
    });
    return {
      s,
      rounds: () => inRound,
      hold() { gate = new Promise((r) => { release = () => { gate = undefined; r(); }; }); },
      release: () => release(),
      changeChain() { chainChanged = true; },
    };
  }

  const served = (id: number) => store.get(`vm1_log${id}`)?.segments.size;

  it('a discard re-verify queued while a newer report is applied', async () => {
    const t = sync();
    t.s.reported(report(1, 2 * C));
    await until('first report', () => served(1) === 2 * C, 3000, 5);
    t.hold();
    const r = t.rounds();
    t.s.reported(report(1, 3 * C + 16)); // the guest's newer report, in a round held in its re-read
    await until('round holds', () => t.rounds() > r, 3000, 5);
    t.s.reverifyDisk('data', 'the guest discarded ranges of the disk');
    t.release();
    await until('newer report served', () => served(1) === 3 * C + 16, 3000, 5);
    await t.s.idle();
    await new Promise((res) => setTimeout(res, 50)); // the re-verify's own round
    await t.s.idle();
    expect(served(1)).toBe(3 * C + 16);
    expect(t.s.status()[0]).toMatchObject({ guestSize: 3 * C + 16, servedSize: 3 * C + 16 });
  });

  it('a chain change seen by the round that applies a newer report', async () => {
    const t = sync();
    t.s.reported(report(2, C));
    await until('first report', () => served(2) === C, 3000, 5);
    t.changeChain();
    t.s.reported(report(2, 2 * C + 100));
    await until('newer report served', () => served(2) === 2 * C + 100, 3000, 5);
    await new Promise((res) => setTimeout(res, 50));
    await t.s.idle();
    expect(served(2)).toBe(2 * C + 100);
  });
});
