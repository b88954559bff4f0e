// Unit tests of the host agent's pure parts, on real images (qemu-img) and a real composition store.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/index.js';
import type { GuestFile } from '../../../src/guest/index.js';
import { EXTENT_UNMAPPABLE, EXTENT_UNWRITTEN } from '../../../src/guest/protocol.js';
import { openImage, type ImageMapper } from '../../../src/image/index.js';
import { ConfigError, parseConfig } from '../../../src/host/config.js';
import { FileSync } from '../../../src/host/file-sync.js';
import { layoutFile, LayoutError, type FileLayout } from '../../../src/host/layout.js';
import { Metrics } from '../../../src/host/metrics.js';
import { BigLogs } from '../../../src/host/biglog.js';
import { createLogger } from '../../../src/host/log.js';
import { compositionName, escapePath, unescapePath } from '../../../src/host/naming.js';
import { firstDifference, publish, sliceSegments } from '../../../src/host/publish.js';
import { until } from '../../harness/wait.js';

describe('naming', () => {
  it('escapes reversibly and stays inside the composition alphabet', () => {
    for (const p of ['/var/log/app.log', '/a_b/c-d/e__f', '/x/ü y%/_-_-', '/a/b/c.1', '/-x-/_u']) {
      const e = escapePath(p);
      expect(e).toMatch(/^[A-Za-z0-9._-]*$/);
      expect(unescapePath(e)).toBe(p);
    }
    expect(compositionName('web1', '/var/log/app_1.log')).toBe('web1_var_log_app-u1.log');
    expect(escapePath('/a_/b')).not.toBe(escapePath('/a/_b'));
  });
});

describe('config', () => {
  const base = { mountpoint: '/m', stateDir: '/s', vms: [{ name: 'vm1', qmp: '/q' }] };
  it('accepts a minimal config with defaults', () => {
    const c = parseConfig(base);
    expect(c.metrics).toBe('127.0.0.1:9477');
    expect(c.runDir).toBe('/run/livemr');
    expect(c.vms[0]!.share).toEqual([]);
  });
  it('names the path of every error', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...base, extra: 1 }, /\$\.extra: unknown key/],
      [{ ...base, mountpoint: 'rel' }, /\$\.mountpoint: must be an absolute path/],
      [{ ...base, vms: [{ name: 'bad name', qmp: '/q' }] }, /\$\.vms\[0\]\.name/],
      [{ ...base, vms: [{ name: 'a', qmp: '/q' }, { name: 'a', qmp: '/r' }] }, /duplicate VM name/],
      [{ ...base, vms: [{ name: 'a', qmp: '/q', share: ['x'] }] }, /\$\.vms\[0\]\.share\[0\]/],
      [{ ...base, metrics: 'nope' }, /\$\.metrics/],
      [[], /\$: must be a JSON object/],
    ];
    for (const [cfg, re] of bad) expect(() => parseConfig(cfg)).toThrow(re);
    expect(() => parseConfig([])).toThrow(ConfigError);
  });
});

describe('layout and publish on a real qcow2 image', () => {
  let dir: string;
  let img: string;
  let mapper: ImageMapper;
  let store: CompositionStore;
  const C = 65536;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-host-unit-'));
    img = join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    // clusters 0-3 data, cluster 4 a zero cluster, clusters 5.. unallocated
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, '-c', `write -z ${4 * C} ${C}`, img]);
    mapper = await openImage(img);
    store = CompositionStore.open(join(dir, 'state'));
  });
  afterAll(async () => {
    store?.close();
    await mapper?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maps data, holes, unwritten and zero clusters', async () => {
    const l = await layoutFile(5 * C, [
      { logical: 0, physical: 0, length: C, flags: 0 },
      // hole from C to 2C
      { logical: 2 * C, physical: C, length: C, flags: EXTENT_UNWRITTEN },
      { logical: 3 * C, physical: 2 * C, length: C, flags: 0 },
      { logical: 4 * C, physical: 4 * C, length: C, flags: 0 }, // zero cluster
    ], mapper);
    expect(l.servable).toBe(5 * C);
    expect(l.pending).toEqual([]);
    expect(l.segments.map((s) => ('zero' in s ? `z${s.length / C}` : `d${s.offset === undefined ? '?' : 'ok'}${s.length / C}`))).toEqual(['dok1', 'z2', 'dok1', 'z1']);
 
    // and each data segment points at the host bytes qemu-img map gives for its guest cluster
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', img], { encoding: 'utf8' })) as { start: number; length: number; data: boolean; offset?: number }[];
    const hostOf = (guest: number) => {
      const e = map.find((m) => m.data && m.offset !== undefined && m.start <= guest && guest < m.start + m.length)!;
      return e.offset! + (guest - e.start);
    };
    const data = l.segments.filter((s): s is { file: string; offset: number; length: number } => !('zero' in s));
    expect(data.map((s) => [s.file, s.offset, s.length])).toEqual([[img, hostOf(0), C], [img, hostOf(2 * C), C]]);
  });

  it('stops at clusters QEMU has not allocated (pending) and never serves past them', async () => {
    const l = await layoutFile(3 * C, [
      { logical: 0, physical: 0, length: C, flags: 0 },
      { logical: C, physical: 8 * C, length: C, flags: 0 }, // unallocated in the image
      { logical: 2 * C, physical: 2 * C, length: C, flags: 0 },
    ], mapper);
    expect(l.servable).toBe(C);
    expect(l.pending).toEqual([{ why: 'image', at: C, length: C, start: 8 * C }]);
  });

  it('refuses extents outside the disk and unmappable data', async () => {
    await expect(layoutFile(C, [{ logical: 0, physical: 16 * 1024 * 1024 - 4096, length: C, flags: 0 }], mapper)).rejects.toThrow(LayoutError);
    await expect(layoutFile(C, [{ logical: 0, physical: -4096, length: C, flags: 0 }], mapper)).rejects.toThrow(LayoutError);
    const l = await layoutFile(C, [{ logical: 0, physical: 0, length: C, flags: EXTENT_UNMAPPABLE }], mapper);
    expect(l.refused).toMatch(/not a plain disk range/);
  });

  it('publishes grow-only, truncates only on shrink, remaps from the first difference', async () => {
    const seg = (o: number, n: number) => ({ file: img, offset: o, length: n });
    const lay = (segments: ReturnType<typeof seg>[], servable: number, after: FileLayout['after'] = []) => ({ segments, servable, pending: [], after });
    expect(publish(store, 'f', 100, lay([seg(0, 100)], 100))).toBe('created');
    expect(publish(store, 'f', 300, lay([seg(0, 300)], 300))).toBe('grown');
    expect(store.get('f')!.segments.size).toBe(300);
    // a pending tail: servable shrinks but the guest file did not — what is served stays while the
    // image still maps it to the same place...
    expect(publish(store, 'f', 400, lay([seg(0, 200)], 200, [seg(200, 100), { pending: true, length: 100 }]))).toBe('unchanged');
    expect(store.get('f')!.segments.size).toBe(300);
    // ...and is cut where it does not (a discarded cluster, perhaps reused by now)
    expect(publish(store, 'f', 400, lay([seg(0, 200)], 200, [seg(200, 50), { pending: true, length: 150 }]))).toBe('remapped');
    expect(store.get('f')!.segments.size).toBe(250);
    expect(publish(store, 'f', 300, lay([seg(0, 300)], 300))).toBe('grown');
    expect(publish(store, 'f', 150, lay([seg(0, 150)], 150))).toBe('truncated');
    expect(store.get('f')!.segments.size).toBe(150);
    const remap = { at: -1 };
    expect(publish(store, 'f', 200, lay([seg(0, 100), seg(5000, 100)], 200), Infinity, remap)).toBe('remapped');
    // where it began, what was served there (image offset 100), what is now (image offset 5000)
    expect(remap).toMatchObject({ at: 100, was: { at: 0, offset: 0, length: 150 }, now: { offset: 5000, length: 1 } });
    expect(store.segments('f').map((s) => [s.at, s.offset, s.length])).toEqual([[0, 0, 100], [100, 5000, 100]]);
    // a remap is one change of the store: the mount never shows the file cut at the remap point
    const sizes: number[] = [];
    const onChange = (_n: string, c: { segments: { size: number } }) => sizes.push(c.segments.size);
    store.on('change', onChange);
    expect(publish(store, 'f', 200, lay([seg(0, 50), seg(9000, 150)], 200))).toBe('remapped');
    store.off('change', onChange);
    expect(sizes).toEqual([200]);
    expect(publish(store, 'f', 200, { segments: [], servable: 0, pending: [], after: [], refused: 'x' })).toBe('refused');
    expect(store.get('f')).toBeUndefined();
  });

  it('slices and compares segment lists', () => {
    const segs = [{ file: '/a', offset: 10, length: 10 }, { zero: true as const, length: 5 }, { file: '/b', offset: 0, length: 10 }];
    expect(sliceSegments(segs, 5, 22)).toEqual([{ file: '/a', offset: 15, length: 5 }, { zero: true, length: 5 }, { file: '/b', offset: 0, length: 7 }]);
    const cur = [{ at: 0, file: '/a', offset: 10, length: 10 }, { at: 10, file: null, offset: 0, length: 5 }];
    expect(firstDifference(cur, segs, 15)).toBe(15);
    expect(firstDifference(cur, [{ file: '/a', offset: 10, length: 7 }, { file: '/a', offset: 99, length: 8 }], 15)).toBe(7);
  });

  // FileSync's ordering rule: whatever makes it lay a file out again (a discard on its disk, a
  // pending tail, a new backing chain, a store retry) uses the file's newest report, never an older
  // copy. A copy queued while a newer report was being applied undid it: the host showed 206299 bytes
  // of an append-only log, then 206283 (the consistency soak's b-shrink). The round is held inside its
  // metadata re-read to make the race certain.
  describe('file sync: a re-layout never undoes a newer report', () => {
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
});

describe('BigLogs', () => {
  it('takes any composition name, `constructor` and `toString` too, and keeps them across a reload', () => {
    const dir = mkdtempSync(join(tmpdir(), 'livemr-biglog-unit-'));
    const store = CompositionStore.open(join(dir, 'state'));
    try {
      store.compose('vm1_a', [{ file: '/img/x', offset: 0, length: 10 }]);
      const file = join(dir, 'biglogs.json');
      const log = createLogger({ sink: () => {} });
      const b = new BigLogs(store, file, log, ['vm1']);
      for (const name of ['constructor', 'toString', 'hasOwnProperty']) b.join(name, [{ vm: 'vm1', path: '/a' }]);
      b.sourceChanged('vm1', '/a', 0, 'removed');
      const again = new BigLogs(store, file, log, ['vm1']);
      expect(again.list().map((x) => [x.name, x.sources.length, x.chunks])).toEqual([['constructor', 1, 1], ['toString', 1, 1], ['hasOwnProperty', 1, 1]]);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics', () => {
  it('renders Prometheus text with escaped labels', () => {
    const m = new Metrics();
    m.set('livemr_x', 'an x', { vm: 'a"b' }, 3);
    m.inc('livemr_y_total', 'a y', {}, 2);
    m.inc('livemr_y_total', 'a y', {}, 1);
    expect(m.render()).toBe('# HELP livemr_x an x\n# TYPE livemr_x gauge\nlivemr_x{vm="a\\"b"} 3\n# HELP livemr_y_total a y\n# TYPE livemr_y_total counter\nlivemr_y_total 3\n');
  });
});
