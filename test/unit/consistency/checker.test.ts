// The history checker can fail: recorded histories with planted violations of each kind, and the
// same histories without them (docs/consistency.md, "Self-test").
import { describe, expect, it } from 'vitest';
import { Checker, clockFrom, FileModel, pattern, type CheckerOptions, type GuestOp, type HostEvent, type ReadRecord, type Report } from '../../consistency/index.js';

const clock = clockFrom([{ t: 0, offset: 0, err: 0 }]); // guest time = host time, exactly
const W = 300;

/** A tiny history: ops at given times, reads built from the model as of a given moment. */
class H {
  ops: GuestOp[] = [];
  models = new Map<number, FileModel>();
  gens = new Map<number, number>();
  create(t: number, key: number, path: string, ino?: number) {
    this.ops.push({ op: 'create', t0: t, t1: t + 1, key, path, disk: 'data', ...(ino === undefined ? {} : { ino }) });
    this.models.set(key, new FileModel(key));
    this.gens.set(key, 0);
  }
  append(t: number, key: number, len: number) {
    const m = this.models.get(key)!;
    this.ops.push({ op: 'write', t0: t, t1: t + 1, key, off: m.size, len, src: key, sgen: this.gens.get(key)!, how: 'buf' });
    m.put(m.size, m.size + len, key, this.gens.get(key)!);
  }
  writeAt(t: number, key: number, off: number, len: number) {
    this.ops.push({ op: 'write', t0: t, t1: t + 1, key, off, len, src: key, sgen: this.gens.get(key)!, how: 'buf' });
    this.models.get(key)!.put(off, off + len, key, this.gens.get(key)!);
  }
  trunc(t: number, key: number, size: number) {
    this.ops.push({ op: 'trunc', t0: t, t1: t + 1, key, size });
    this.models.get(key)!.setSize(size);
    this.gens.set(key, this.gens.get(key)! + 1);
  }
  rename(t: number, key: number, from: string, to: string) {
    this.ops.push({ op: 'rename', t0: t, t1: t + 1, key, from, to });
  }
  unlink(t: number, key: number, path: string) {
    this.ops.push({ op: 'unlink', t0: t, t1: t + 1, key, path });
  }
  revoke(t: number, key: number, path: string) {
    this.ops.push({ op: 'revoke', t0: t, t1: t + 1, key, path });
  }
  punch(t: number, key: number, off: number, len: number) {
    this.ops.push({ op: 'punch', t0: t, t1: t + 1, key, off, len });
    this.models.get(key)!.put(off, off + len, 0, 0);
  }
  zero(t: number, key: number, off: number, len: number) {
    this.ops.push({ op: 'write', t0: t, t1: t + 1, key, off, len, src: 0, sgen: 0, how: 'zero' });
    this.models.get(key)!.put(off, off + len, 0, 0);
  }
  /** the file's bytes now (in op-building order) */
  snap(key: number, off = 0, end?: number): Buffer {
    const m = this.models.get(key)!;
    return m.bytes(off, end ?? m.size);
  }
  end(t: number) {
    this.ops.push({ op: 'end', t0: t, t1: t + 1, files: [] });
  }
}

const read = (path: string, off: number, data: Buffer, s: number, e = s + 5, over: Partial<ReadRecord> = {}): ReadRecord =>
  ({ reader: 'r1', kind: 'read', path, off, data, eof: true, s, e, ...over });

function check(h: H, reads: ReadRecord[], events: HostEvent[] = [], opts: Partial<CheckerOptions> = {}): Report {
  const c = new Checker({ windowMs: W, ...opts }, clock);
  c.addOps(h.ops);
  for (const ev of events) c.addHostEvent(ev);
  for (const r of reads) c.addRead(r);
  return c.finish();
}
const total = (r: Report) => Object.values(r.violations).reduce((a, b) => a + b, 0);

describe('byte format', () => {
  it('is never NUL, depends on key, generation and offset, and is the same at any alignment', () => {
    const a = pattern(1, 0, 0, 1 << 16);
    expect(a.includes(0)).toBe(false);
    expect(pattern(2, 0, 0, 64).equals(a.subarray(0, 64))).toBe(false);
    expect(pattern(1, 1, 0, 64).equals(a.subarray(0, 64))).toBe(false);
    expect(pattern(1, 0, 4096, 64).equals(a.subarray(0, 64))).toBe(false);
    expect(pattern(1, 0, 13, 1000).equals(a.subarray(13, 1013))).toBe(true);
  });
});

describe('history checker', () => {
  const LOG = '/mnt/data/cons/app.log';
  const appendHistory = () => {
    const h = new H();
    h.create(0, 1, LOG);
    for (let i = 0; i < 20; i++) h.append(100 + i * 100, 1, 1000 + i * 37);
    h.end(5000);
    return h;
  };
  /** the model of key 1 after the first n appends */
  const prefixAfter = (n: number) => {
    const h = new H();
    h.create(0, 1, LOG);
    for (let i = 0; i < n; i++) h.append(100 + i * 100, 1, 1000 + i * 37);
    return h.snap(1);
  };

  it('passes a clean history: prefixes read during appends, preads, an exact last read', () => {
    const h = appendHistory();
    const reads = [
      read(LOG, 0, prefixAfter(3), 450),
      read(LOG, 0, prefixAfter(8), 950),
      read(LOG, 500, prefixAfter(8).subarray(500, 900), 960, 965, { kind: 'pread', eof: false }),
      read(LOG, 0, h.snap(1), 4000),
    ];
    const r = check(h, reads);
    expect(total(r), JSON.stringify(r.evidence)).toBe(0);
    expect(r.reads).toBe(4);
    expect(r.bytes).toBe(reads.reduce((s, x) => s + x.data.length, 0));
    expect(r.modelMismatches).toEqual([]); // no files listed at the end
  });

  it('(a) finds NULs in the tail of a read (the append race), as a-nul', () => {
    const h = appendHistory();
    const d = Buffer.from(prefixAfter(8));
    d.fill(0, d.length - 183); // 183 NULs where the guest had written bytes
    const r = check(h, [read(LOG, 0, d, 950)]);
    expect(r.violations['a-nul']).toBe(1);
    expect(r.violatingBytes['a-nul']).toBe(183);
    expect(r.evidence[0]).toMatchObject({ kind: 'a-nul', at: d.length - 183, run: 183 });
  });

  it('(a) finds bytes the guest never had at that offset, as a-wrong (and b-prefix: append-only)', () => {
    const h = appendHistory();
    const d = Buffer.from(prefixAfter(8));
    pattern(1, 0, 6096, 50).copy(d, 2000); // the file's own bytes from another block: a mapping error
    const r = check(h, [read(LOG, 0, d, 950)]);
    expect(r.violations['a-wrong']).toBe(1);
    expect(r.violatingBytes['a-wrong']).toBeGreaterThanOrEqual(45);
    expect(r.violations['b-prefix']).toBe(1);
    expect(r.evidence.find((v) => v.kind === 'a-wrong')?.identified).toBe('1:0@6096');
  });

  it('(a) finds bytes past every size the file had within the interval, as a-beyond', () => {
    const h = appendHistory();
    // at 450 (window from 150) the file has 3 appends; bytes of the 12th do not exist until 1200
    const d = prefixAfter(12);
    const r = check(h, [read(LOG, 0, d, 450, 455)]);
    expect(r.violations['a-beyond']).toBe(1);
    // with the window W the same read at 1250 is fine
    expect(total(check(h, [read(LOG, 0, d, 1250)]))).toBe(0);
  });

  it('(b) finds a size one reader saw shrink, as b-shrink; other readers are separate', () => {
    const h = appendHistory();
    const r = check(h, [read(LOG, 0, prefixAfter(8), 950), read(LOG, 0, prefixAfter(5), 1000), read(LOG, 0, prefixAfter(4), 1100, 1105, { reader: 'r2' })]);
    expect(r.violations['b-shrink']).toBe(1);
    expect(r.evidence[0]).toMatchObject({ kind: 'b-shrink', reader: 'r1' });
    // a read that ends early because the host withdrew the file (end of file on an open handle) is no shrink
    const h2 = appendHistory();
    h2.unlink(3000, 1, LOG);
    const early = [read(LOG, 0, prefixAfter(8), 950), read(LOG, 0, Buffer.alloc(0), 3200, 3300, { off: 3000 } as Partial<ReadRecord>)];
    expect(check(h2, early, [{ t: 3250, path: LOG, kind: 'remove', size: 0 }]).violations['b-shrink']).toBe(0);
    expect(check(h2, early, [{ t: 3400, path: LOG, kind: 'remove', size: 0 }]).violations['b-shrink']).toBe(1);
  });

  it('measures staleness: a read at EOF older than the guest\'s file', () => {
    const h = appendHistory();
    const r = check(h, [read(LOG, 0, prefixAfter(3), 1000)]); // the 4th append ended at 401
    expect(total(r)).toBe(0); // stale sizes are allowed (a prefix), and measured
    expect(r.maxStalenessMs).toBe(599);
  });

  it('measures staleness after a shrink from the shrink (the host withdraws the file to 0 and describes it again)', () => {
    const X = '/mnt/data/cons/trunc.log';
    const h = new H();
    h.create(0, 1, X);
    h.append(100, 1, 1000);
    h.append(200, 1, 1000);
    h.trunc(1000, 1, 500);
    h.append(1100, 1, 500);
    h.end(9000);
    const r = check(h, [read(X, 0, Buffer.alloc(0), 2000)], [{ t: 1050, path: X, kind: 'shrink', size: 0 }]);
    expect(total(r)).toBe(0);
    expect(r.maxStalenessMs).toBe(2000 - 1001); // from the truncate, not from the first append (1899)
  });

  it('(b) accepts the renamed-away file under its old name until the host is told, and not after', () => {
    // logrotate: app.log (key 1) is renamed to app.log.1 at 2500, a new app.log (key 2) is created
    const h = new H();
    h.create(0, 1, LOG);
    for (let i = 0; i < 20; i++) h.append(100 + i * 100, 1, 1000 + i * 37);
    h.rename(2500, 1, LOG, `${LOG}.1`);
    h.create(2502, 2, LOG);
    h.append(2600, 2, 500);
    h.end(6000);
    const old = read(LOG, 0, h.snap(1), 4000, 4005, { kind: 'webhdfs' }); // 1500 ms after the rename, W = 300
    const fresh = read(LOG, 0, h.snap(2), 4100, 4105, { kind: 'webhdfs' });
    const late = check(h, [old, fresh], [{ t: 4050, path: LOG, kind: 'remove', size: 500 }]);
    expect(total(late), JSON.stringify(late.evidence)).toBe(0); // neither b-prefix nor b-shrink
    expect(late.windowEnded).toBe(1);
    // once the host had switched the name over, the old file there is wrong
    const told = check(h, [old, fresh], [{ t: 3000, path: LOG, kind: 'remove', size: 500 }]);
    expect(told.violations['b-prefix']).toBe(1);
    expect(told.violations['d-removed']).toBe(1); // the old file's own bytes, after the host had switched the name
    expect(told.evidence.find((v) => v.kind === 'd-removed')?.identified).toBe('1@0');
  });

  it('(c) names a 3-byte run of the file\'s previous generation, inside the truncate window and after it', () => {
    // sparse.bin: a 3-byte write, then truncated to 0 and regrown at once (the host sees no shrink)
    const S = '/mnt/data/cons/sparse.bin';
    const h = new H();
    h.create(0, 5, S);
    h.trunc(10, 5, 65536);
    h.writeAt(100, 5, 1000, 3);
    h.trunc(200, 5, 0);
    h.trunc(202, 5, 65536);
    h.end(9000);
    const d = Buffer.alloc(65536);
    pattern(5, 1, 1000, 3).copy(d, 1000);
    const late = check(h, [read(S, 0, d, 2000)]);
    expect(total(late), JSON.stringify(late.evidence)).toBe(0);
    expect(late.windowForeign).toBe(1);
    const told = check(h, [read(S, 0, d, 2000)], [{ t: 1000, path: S, kind: 'shrink', size: 0 }]);
    expect(told.violations['c-freed']).toBe(1);
    expect(told.evidence[0]?.identified).toBe('5:1@1000');
  });

  it('(c) allows anything in a range freed before the host was told (zeros, unknown bytes), and not after', () => {
    // copytruncate: cp.log (key 9) truncated to 0 at 1000 and regrown; the host still shows the old 8 KiB
    const CP = '/mnt/data/cons/cp.log';
    const h = new H();
    h.create(0, 9, CP);
    h.append(100, 9, 8192);
    h.trunc(1000, 9, 0);
    h.append(1100, 9, 8192); // regrown past the old size before the host looked: it never sees a shrink
    h.end(9000);
    const d = Buffer.from(pattern(9, 0, 0, 8192));
    d.fill(0, 4096, 4200); // the freed block was zeroed or reused
    const early = check(h, [read(CP, 0, d, 5000, 5005, { kind: 'pread' })]);
    expect(total(early), JSON.stringify(early.evidence)).toBe(0);
    expect(early.windowForeign).toBe(3); // the old bytes, the zeros, the old bytes
    const told = check(h, [read(CP, 0, d, 5000, 5005, { kind: 'pread' })], [{ t: 3000, path: CP, kind: 'shrink', size: 0 }]);
    expect(told.violations['a-nul']).toBe(1);
    expect(told.violations['c-freed']).toBe(1); // the previous generation's bytes
  });

  it('(c) a rename over a name frees the replaced file: its blocks\' new bytes are allowed until the host shows the new file', () => {
    const L1 = `${LOG}.1`;
    const h = new H();
    h.create(0, 1, L1);
    h.append(100, 1, 8192);
    h.create(200, 2, LOG);
    h.append(300, 2, 4096);
    h.rename(1000, 2, LOG, L1); // key 1's blocks are free now; key 3 gets one of them
    h.create(1100, 3, '/mnt/data/cons/trunc.log');
    h.append(1200, 3, 4096);
    h.end(9000);
    const d = Buffer.concat([pattern(1, 0, 0, 4096), pattern(3, 0, 0, 4096)]); // key 1's second block now holds key 3's bytes
    const early = check(h, [read(L1, 0, d, 5000, 5005, { kind: 'webhdfs' })]);
    expect(total(early), JSON.stringify(early.evidence)).toBe(0);
    expect(early.windowForeign).toBe(1);
    // once the host showed the new file there, the old file's bytes are wrong, and key 3's are past its size
    const told = check(h, [read(L1, 0, d, 5000, 5005, { kind: 'webhdfs' })], [{ t: 3000, path: L1, kind: 'remove', size: 4096 }]);
    expect(told.violations['d-removed'], JSON.stringify(told.evidence)).toBe(1); // key 1's own bytes under the name it left
    expect(told.violations['a-beyond']).toBe(1);
  });

  it('(b) tail may show any file that was at its path (its chunks are stamped on arrival)', () => {
    const h = new H();
    h.create(0, 1, LOG);
    h.append(100, 1, 5000);
    h.rename(1000, 1, LOG, `${LOG}.1`);
    h.create(1001, 2, LOG);
    h.append(1100, 2, 100);
    h.end(9000);
    const r = check(h, [read(LOG, 4000, h.snap(1, 4000), 5000, 5000, { kind: 'tail', eof: false })], [{ t: 1500, path: LOG, kind: 'remove', size: 100 }]);
    expect(total(r), JSON.stringify(r.evidence)).toBe(0);
    const bad = check(h, [read(LOG, 4000, pattern(7, 0, 4000, 1000), 5000, 5000, { kind: 'tail', eof: false })]);
    expect(bad.violations['b-prefix']).toBe(1);
  });

  describe('(c) freed blocks', () => {
    const X = '/mnt/data/cons/trunc.log';
    const Y = '/mnt/data/cons/churn-0.bin';
    // X grows to 64 KiB, is truncated to 0 at 1000 (host told at 1100) and regrows 16 KiB (gen 1);
    // Y is written at 1010 into (what the test pretends are) X's freed blocks
    const hist = () => {
      const h = new H();
      h.create(0, 1, X);
      h.append(10, 1, 65536);
      h.trunc(1000, 1, 0);
      h.create(1005, 2, Y);
      h.append(1010, 2, 65536);
      h.append(1020, 1, 16384);
      h.end(9000);
      return h;
    };
    const leaked = () => {
      const d = Buffer.from(pattern(1, 1, 0, 16384));
      pattern(2, 0, 8192, 4096).copy(d, 4096); // Y's block at Y offset 8192 where X has offset 4096
      return d;
    };

    it('finds another file\'s bytes after the host published the truncate, as c-freed', () => {
      const r = check(hist(), [read(X, 0, leaked(), 1500)], [{ t: 1100, path: X, kind: 'shrink', size: 0 }]);
      expect(r.violations['c-freed']).toBe(1);
      expect(r.violatingBytes['c-freed']).toBeGreaterThan(3900); // less the bytes that match X's by chance
      expect(r.violations['a-wrong']).toBe(0);
      expect(r.evidence[0]).toMatchObject({ kind: 'c-freed', at: 4096, identified: '2:0@8192' });
    });

    it('allows them inside the documented window (the host not told yet) and counts them', () => {
      const r = check(hist(), [read(X, 0, leaked(), 1050)], [{ t: 1100, path: X, kind: 'shrink', size: 0 }]);
      expect(total(r)).toBe(0);
      expect(r.windowForeign).toBe(1);
    });

    it('finds data of an unlinked file served after the host published its removal', () => {
      const h = hist();
      h.unlink(2000, 2, Y);
      const r = check(h, [read(Y, 0, pattern(2, 0, 0, 4096), 5000)], [{ t: 2100, path: Y, kind: 'remove', size: 0 }]);
      expect(r.violations['d-removed']).toBe(1);
      expect(r.evidence[0]).toMatchObject({ kind: 'd-removed', identified: '2@0' });
      // before the host published the removal, the old file is the documented window, however late
      const unpublished = check(h, [read(Y, 0, pattern(2, 0, 0, 4096), 5000)], [{ t: 5100, path: Y, kind: 'remove', size: 0 }]);
      expect(total(unpublished)).toBe(0);
      expect(unpublished.windowEnded).toBe(1);
      // and the same read inside the window is fine
      expect(total(check(h, [read(Y, 0, pattern(2, 0, 0, 4096), 2050)], [{ t: 2100, path: Y, kind: 'remove', size: 0 }]))).toBe(0);
    });

    it('an unlinked file\'s window is not ended by a remap\'s cut: only its removal (or a withdrawal to 0) tells the host (soak: a re-verify remapped a file already unlinked)', () => {
      // key 2 at Y (inode 22) unlinked at 2000; its freed blocks are reused (zeros now) and a discard
      // re-verify remaps the file the host still shows, cutting it back to 4096 and regrowing it (3000)
      const h = hist();
      h.unlink(2000, 2, Y);
      const served = Buffer.from(pattern(2, 0, 0, 16384));
      served.fill(0, 8192); // the reused blocks
      const remap = { t: 3000, path: Y, kind: 'shrink' as const, size: 4096 };
      const before = check(h, [read(Y, 0, served, 3500)], [remap, { t: 5000, path: Y, kind: 'remove', size: 0 }]);
      expect(total(before), JSON.stringify(before.evidence)).toBe(0);
      // once the host removed it, the same bytes are wrong
      expect(total(check(h, [read(Y, 0, served, 5500)], [remap, { t: 5000, path: Y, kind: 'remove', size: 0 }]))).toBeGreaterThan(0);
    });

    it('a host event ends only the window of the inode it names (a lagging host starts serving a file already unlinked)', () => {
      // churn: key 1 (inode 11) at Y unlinked, key 2 (inode 12) created there and unlinked too, all
      // before the host switched the name from key 1 to key 2 (4500: key 1 removed, key 2 shown) and removed key 2 (9000)
      const h = new H();
      h.create(0, 1, Y, 11);
      h.append(10, 1, 8192);
      h.unlink(1000, 1, Y);
      h.create(1100, 2, Y, 12);
      h.append(1110, 2, 8192);
      h.unlink(4000, 2, Y);
      h.end(10_000);
      const events: HostEvent[] = [
        { t: 4500, path: Y, kind: 'remove', size: 0, ino: 11 }, { t: 4500, path: Y, kind: 'show', size: 8192, ino: 12 },
        { t: 9000, path: Y, kind: 'remove', size: 0, ino: 12 },
      ];
      const served = read(Y, 0, pattern(2, 0, 0, 4096), 6000, 6005, { kind: 'mmap' });
      expect(total(check(h, [served], events)), JSON.stringify(check(h, [served], events).evidence)).toBe(0);
      // after the host removed key 2 itself, its bytes there are wrong
      expect(check(h, [{ ...served, s: 9500, e: 9505 }], events).violations['d-removed']).toBe(1);
      // key 1's bytes once the host had replaced it and removed key 2 are wrong too
      expect(total(check(h, [read(Y, 0, pattern(1, 0, 0, 4096), 9500, 9505, { kind: 'mmap' })], events))).toBeGreaterThan(0);
      // ext4 reuses the inode number at once: key 2 gets inode 11 too. The removal at 4500 is key 1's
      // (the host had not shown key 2 yet), so it does not end key 2's window
      const reuse = new H();
      reuse.create(0, 1, Y, 11);
      reuse.append(10, 1, 8192);
      reuse.unlink(1000, 1, Y);
      reuse.create(1100, 2, Y, 11);
      reuse.append(1110, 2, 8192);
      reuse.unlink(4000, 2, Y);
      reuse.end(10_000);
      const reused: HostEvent[] = [
        { t: 500, path: Y, kind: 'show', size: 8192, ino: 11 },
        { t: 4500, path: Y, kind: 'remove', size: 0, ino: 11 }, { t: 4501, path: Y, kind: 'show', size: 8192, ino: 11 },
        { t: 9000, path: Y, kind: 'remove', size: 0, ino: 11 },
      ];
      expect(total(check(reuse, [served], reused)), JSON.stringify(check(reuse, [served], reused).evidence)).toBe(0);
      const after = check(reuse, [{ ...served, s: 9500, e: 9505 }], reused);
      expect(after.violations["d-removed"], JSON.stringify(after.evidence)).toBe(1);
      // events that name no inode are matched to the ends in order: the removal at 4500 may be key
      // 1's (unlinked first), so key 2's window is open until the next one (9000)
      const anon = events.map(({ ino: _, ...e }) => e);
      expect(total(check(h, [served], anon))).toBe(0);
      expect(check(h, [{ ...served, s: 9500, e: 9505 }], anon).violations['d-removed']).toBe(1);
    });

    it('accepts old-generation bytes within W of the truncate and not after it', () => {
      const h = hist();
      const old = pattern(1, 0, 0, 16384); // X's bytes before the truncate, at X's offsets
      expect(total(check(h, [read(X, 0, old, 1200, 1205, { eof: false })]))).toBe(0);
      const late = check(h, [read(X, 0, old, 1600, 1605, { eof: false })], [{ t: 1100, path: X, kind: 'shrink', size: 0 }]);
      expect(late.violations['c-freed']).toBe(1);
    });
  });

  it('reads within holes: zeros are valid there, NULs over written bytes are not', () => {
    const S = '/mnt/pdata/cons/sparse.bin';
    const h = new H();
    h.create(0, 1, S);
    h.trunc(1, 1, 1 << 20);
    h.gens.set(1, 0);
    h.writeAt(100, 1, 4096, 8192);
    h.end(9000);
    const good = h.snap(1, 0, 16384);
    expect(total(check(h, [read(S, 0, good, 1000, 1005, { eof: false })]))).toBe(0);
    const zeros = Buffer.alloc(16384); // the write not yet visible: within W fine, later stale (counted, not wrong)
    expect(total(check(h, [read(S, 0, zeros, 300, 305, { eof: false })]))).toBe(0);
    const late = check(h, [read(S, 0, zeros, 1000, 1005, { eof: false })]);
    expect(total(late)).toBe(0);
    expect(late.staleRuns).toBe(1);
    expect(late.maxStaleValueMs).toBe(1000 - 101);
    // but once the gateway (no page cache) served the written bytes, zeros on the mount are a cached page: a-cached
    const gw = read(S, 4096, h.snap(1, 4096, 12288), 500, 505, { kind: 'webhdfs', reader: 'gw', eof: false });
    const cached = check(h, [gw, read(S, 0, zeros, 1000, 1005, { eof: false })]);
    expect(cached.violations['a-cached']).toBe(1);
    // a gateway read from before the write says nothing
    const early = read(S, 0, zeros, 50, 55, { kind: 'webhdfs', reader: 'gw', eof: false });
    expect(total(check(h, [early, read(S, 0, zeros, 1000, 1005, { eof: false })]))).toBe(0);
  });

  it('NULs over bytes that never were zero (appended, or written over a write) are a-nul, however old', () => {
    const S = '/mnt/pdata/cons/sparse.bin';
    const h = new H();
    h.create(0, 1, S);
    h.append(10, 1, 8192); // data from the start: offsets [0, 8192) were never zero
    h.trunc(20, 1, 1 << 20);
    h.gens.set(1, 0);
    h.writeAt(100, 1, 4096, 8192); // half over data, half into the hole
    h.end(9000);
    const d = h.snap(1, 0, 16384);
    d.fill(0, 5000, 6000); // over bytes appended at 10: never zero
    const r = check(h, [read(S, 0, d, 2000, 2005, { eof: false })]);
    expect(r.violations['a-nul']).toBe(1);
    expect(r.violatingBytes['a-nul']).toBe(1000);
    const d2 = h.snap(1, 0, 16384);
    d2.fill(0, 9000, 10000); // inside the part that was a hole before the write at 100: stale
    const r2 = check(h, [read(S, 0, d2, 2000, 2005, { eof: false })]);
    expect(total(r2)).toBe(0);
    expect(r2.staleRuns).toBe(1);
  });

  describe('(d) removed means removed (issue 14: 2 revocation and unlink, 3 restart, 4 store errors, 5 journal damage)', () => {
    const R = '/mnt/data/cons/revoke.log';
    // revoke.log (key 4) grows to 8 KiB, its consent is revoked at 1000 (host removal at 1100), and it grows on unshared
    const revoked = () => {
      const h = new H();
      h.create(0, 4, R);
      h.append(100, 4, 8192);
      h.revoke(1000, 4, R);
      h.append(1200, 4, 4096);
      h.end(90_000);
      return h;
    };
    const gone: HostEvent = { t: 1100, path: R, kind: 'remove', size: 0 };

    it('a revoked file\'s bytes after the host published the revocation are d-removed, even within W of it', () => {
      const h = revoked();
      const d = pattern(4, 0, 0, 8192);
      expect(total(check(h, [read(R, 0, d, 1050)], [gone])), 'before the host was told').toBe(0);
      const r = check(h, [read(R, 0, d, 1150, 1155, { kind: 'webhdfs' })], [gone]); // 150 ms after the revoke, W = 300
      expect(r.violations['d-removed']).toBe(1);
      expect(r.evidence[0]).toMatchObject({ kind: 'd-removed', identified: '4@0', candidates: [] });
      // the growth after the revocation was never shared: its bytes are d-removed too
      expect(check(h, [read(R, 8192, pattern(4, 0, 8192, 4096), 5000, 5005, { kind: 'pread', eof: false })], [gone]).violations['d-removed']).toBe(1);
    });

    it('a pread issued on a held descriptor after the removal is d-removed; one issued before it is fine', () => {
      const h = revoked();
      const before = read(R, 4096, pattern(4, 0, 4096, 1000), 1090, 1300, { kind: 'hold', reader: 'hold', eof: false }); // in flight across the removal
      const after = read(R, 4096, pattern(4, 0, 4096, 1000), 1101, 1102, { kind: 'hold', reader: 'hold', eof: false });
      expect(total(check(h, [before], [gone]))).toBe(0);
      expect(check(h, [after], [gone]).violations['d-removed']).toBe(1);
      expect(check(h, [{ ...after, opened: 900 }], [gone]).heldAcrossRemoval).toBe(1);
      expect(check(h, [{ ...after, opened: 1100.5 }], [gone]).heldAcrossRemoval).toBe(0); // opened after the removal
      // EOF (no bytes) is what it must return
      expect(total(check(h, [read(R, 4096, Buffer.alloc(0), 1101, 1102, { kind: 'hold', reader: 'hold' })], [gone]))).toBe(0);
    });

    it('after an agent restart, a file unlinked while it was down is not served (d-removed): the restart ends every window', () => {
      const Y = '/mnt/data/cons/churn-0.bin';
      const h = new H();
      h.create(0, 2, Y);
      h.append(10, 2, 65536);
      h.unlink(1000, 2, Y); // the agent is down; no removal is published
      h.end(90_000);
      const d = pattern(2, 0, 0, 4096);
      const restart: HostEvent = { t: 1500, path: '*', kind: 'restart', size: 0 };
      expect(total(check(h, [read(Y, 0, d, 1400)], [restart])), 'before the restart: the window').toBe(0);
      const r = check(h, [read(Y, 0, d, 1600)], [restart]);
      expect(r.violations['d-removed']).toBe(1);
      expect(r.restarts).toBe(1);
      // an unlink after the restart began is still inside its own window
      const h2 = new H();
      h2.create(0, 2, Y);
      h2.append(10, 2, 65536);
      h2.unlink(1550, 2, Y);
      h2.end(90_000);
      expect(total(check(h2, [read(Y, 0, d, 1600)], [restart]))).toBe(0);
    });

    it('journal damage across a restart: a revoked file whose removal the damaged journal lost is d-removed once the agent is back', () => {
      const h = revoked();
      // the agent was told (1100) but its journal lost that removal; it restarts at 3000 and must not revive the file
      const restart: HostEvent = { t: 3000, path: '*', kind: 'restart', size: 0 };
      const r = check(h, [read(R, 0, pattern(4, 0, 0, 8192), 3100)], [restart]);
      expect(r.violations['d-removed']).toBe(1);
      // a read of a file the guest re-reported after the restart is fine
      const h2 = new H();
      h2.create(0, 4, R);
      h2.append(100, 4, 8192);
      h2.end(90_000);
      expect(total(check(h2, [read(R, 0, h2.snap(4), 3100)], [restart]))).toBe(0);
    });

    it('sizes one reader sees start over after a restart (a new composition), not across a rotation', () => {
      const h = appendHistory();
      const reads = [read(LOG, 0, prefixAfter(8), 950), read(LOG, 0, prefixAfter(5), 1000)];
      expect(check(h, reads).violations['b-shrink']).toBe(1);
      expect(check(h, reads, [{ t: 990, path: '*', kind: 'restart', size: 0 }]).violations['b-shrink']).toBe(0);
    });

    it('a removal of a name the host showed must be published: d-untold when it never is (a store error dropped it)', () => {
      // case 4: churn-0 is unlinked in the same batch as a file the host refuses (a name too long)
      const Y = '/mnt/data/cons/churn-0.bin';
      const LONG = `/mnt/data/cons/long-${'l'.repeat(200)}.log`;
      const h = new H();
      h.create(0, 2, Y);
      h.append(10, 2, 65536);
      h.create(900, 3, LONG);
      h.append(901, 3, 100);
      h.unlink(1000, 2, Y);
      h.end(90_000);
      const shown: HostEvent = { t: 500, path: Y, kind: 'show', size: 65536 };
      const late: HostEvent = { t: 9000, path: '/mnt/data/cons/app.log', kind: 'show', size: 1 }; // the history goes on
      const r = check(h, [], [shown, late], { untoldGraceMs: 5000 });
      expect(r.violations['d-untold']).toBe(1);
      expect(r.evidence[0]).toMatchObject({ kind: 'd-untold', path: Y, candidates: [2] });
      expect(total(check(h, [], [shown, late, { t: 1100, path: Y, kind: 'remove', size: 0 }], { untoldGraceMs: 5000 }))).toBe(0);
      // not judged: a name the host never showed (the refused file), or a removal within the grace before the end
      expect(total(check(h, [], [late], { untoldGraceMs: 5000 }))).toBe(0);
      expect(total(check(h, [], [shown, late], { untoldGraceMs: 8500 }))).toBe(0);
      // nor one an agent restart overlapped (the new agent withholds the file and never shows it: soak)
      expect(total(check(h, [], [shown, late, { t: 1000.5, path: '*', kind: 'restart', size: 0 }], { untoldGraceMs: 5000 }))).toBe(0);
    });
  });

  describe('(c) cuts and discards (issue 14: 6 discard)', () => {
    const X = '/mnt/data/cons/trunc.log';
    it('once the host published a truncate\'s shrink, the old bytes past the cut are c-freed even within W', () => {
      const h = new H();
      h.create(0, 1, X);
      h.append(10, 1, 65536);
      h.trunc(1000, 1, 8192);
      h.append(1010, 1, 8192); // gen 1 from 8192
      h.end(9000);
      const old = pattern(1, 0, 0, 16384); // gen 0 all through: the cut's old bytes at [8192, 16384)
      expect(total(check(h, [read(X, 0, old, 1200, 1205, { eof: false })])), 'host not told: the window').toBe(0);
      const r = check(h, [read(X, 0, old, 1200, 1205, { eof: false })], [{ t: 1100, path: X, kind: 'shrink', size: 0 }]);
      expect(r.violations['c-freed']).toBe(1);
      expect(r.evidence[0]).toMatchObject({ kind: 'c-freed', at: 8192, identified: '1:0@8192' });
      // the new bytes are fine, and a remap's cut (size > 0) does not count as the truncate's: it may predate it
      expect(total(check(h, [read(X, 0, h.snap(1), 1200, 1205)], [{ t: 1100, path: X, kind: 'shrink', size: 0 }]))).toBe(0);
      expect(total(check(h, [read(X, 0, old, 1200, 1205, { eof: false })], [{ t: 1100, path: X, kind: 'shrink', size: 4096 }]))).toBe(0);
    });

    it('two truncates in flight: the first one\'s withdrawal, published after the second began, does not end the second\'s window (soak, discard run)', () => {
      const h = new H();
      h.create(0, 1, X);
      h.append(10, 1, 350_000);
      h.trunc(1000, 1, 192_059); // the helper's look sees this one …
      h.trunc(3000, 1, 21_585); // … and this one only on its next look
      h.end(90_000);
      const d = pattern(1, 0, 30_000, 4096); // bytes past the second cut, still served
      const first: HostEvent = { t: 5000, path: X, kind: 'shrink', size: 0 }; // published after the second truncate began
      const second: HostEvent = { t: 8000, path: X, kind: 'shrink', size: 0 };
      const r = check(h, [read(X, 30_000, d, 6000, 6005, { kind: 'pread', eof: false })], [first, second]);
      expect(total(r), JSON.stringify(r.evidence)).toBe(0);
      expect(r.windowShrink).toBe(1);
      expect(total(check(h, [read(X, 30_000, d, 8100, 8105, { kind: 'pread', eof: false })], [first, second]))).toBe(1);
    });

    it('a punched hole reads zeros; its old bytes are allowed until the host is told, then not', () => {
      const S = '/mnt/data/cons/sparse.bin';
      const h = new H();
      h.create(0, 5, S);
      h.append(10, 5, 262144);
      h.punch(1000, 5, 65536, 65536);
      h.end(9000);
      expect(total(check(h, [read(S, 0, h.snap(5), 2000)]))).toBe(0);
      const old = pattern(5, 0, 0, 262144);
      const early = check(h, [read(S, 0, old, 2000)]);
      expect(total(early)).toBe(0);
      expect(early.windowForeign).toBe(1);
      const told = check(h, [read(S, 0, old, 2000)], [{ t: 1200, path: S, kind: 'shrink', size: 65536 }]);
      expect(told.violations['c-freed'] + told.violations['a-wrong'], JSON.stringify(told.evidence)).toBe(1);
    });

    it('zeros written over data (a discard under detect-zeroes=unmap) are the data; the old bytes after W, or another cluster\'s, are wrong', () => {
      const S = '/mnt/data/cons/sparse.bin';
      const h = new H();
      h.create(0, 5, S);
      h.append(10, 5, 262144);
      h.zero(1000, 5, 65536, 65536);
      h.end(9000);
      expect(total(check(h, [read(S, 0, h.snap(5), 2000)]))).toBe(0);
      expect(total(check(h, [read(S, 0, pattern(5, 0, 0, 262144), 1100)])), 'within W').toBe(0);
      const stale = check(h, [read(S, 0, pattern(5, 0, 0, 262144), 2000)]);
      expect(stale.violations['a-wrong']).toBe(1);
      // an L2 table (metadata, no pattern) served as the file's cluster
      const meta = h.snap(5);
      for (let i = 65536; i < 131072; i += 8) meta.writeBigUInt64BE(0x8000000000050000n + BigInt(i), i);
      const r = check(h, [read(S, 0, meta, 2000)]);
      expect(r.violations['a-wrong']).toBe(1);
      expect(r.evidence[0]).toMatchObject({ kind: 'a-wrong', at: 65536 });
    });

    it('(a) names bytes from outside a raw window (another tenant\'s) served as a file\'s', () => {
      const h = appendHistory();
      const d = Buffer.from(prefixAfter(8));
      pattern(0x7e4a47, 0, 3 * 4096 + 100, 64).copy(d, 100); // the host mapped guest offset 12 KiB to the file's start, not the window's
      const r = check(h, [read(LOG, 0, d, 950)], [], { outside: [{ name: 'outside the raw window', key: 0x7e4a47, gen: 0, max: 1 << 24 }] });
      expect(r.violations['a-wrong']).toBe(1);
      expect(r.evidence.find((v) => v.kind === 'a-wrong')?.identified).toBe(`outside the raw window@${3 * 4096 + 100}`);
    });
  });

  it('counts a read of an ended file only when its bytes needed that file, and never a tail chunk', () => {
    const h = new H();
    h.create(0, 1, LOG);
    h.append(100, 1, 5000);
    h.rename(1000, 1, LOG, `${LOG}.1`);
    h.create(1001, 2, LOG);
    h.append(1100, 2, 100);
    h.end(9000);
    const fresh = check(h, [read(LOG, 0, h.snap(2), 4000)], [{ t: 4100, path: LOG, kind: 'remove', size: 0 }]);
    expect(total(fresh)).toBe(0);
    expect(fresh.windowEnded).toBe(0); // key 1 was a candidate, but the bytes are key 2's
    const tail = check(h, [read(LOG, 0, h.snap(1, 0, 4000), 5000, 5000, { kind: 'tail', eof: false })], [{ t: 4100, path: LOG, kind: 'remove', size: 0 }]);
    expect(total(tail)).toBe(0);
    expect(tail.windowEnded).toBe(0);
    const old = check(h, [read(LOG, 0, h.snap(1), 4000)], [{ t: 4100, path: LOG, kind: 'remove', size: 0 }]);
    expect(old.windowEnded).toBe(1);
  });

  it('checks the workload log against the guest\'s final files', () => {
    const h = appendHistory();
    h.ops.pop();
    const sha = 'ff'.repeat(32);
    h.ops.push({ op: 'end', t0: 5000, t1: 5001, files: [{ key: 1, path: LOG, size: h.snap(1).length, sha256: sha }] });
    expect(check(h, []).modelMismatches).toHaveLength(1);
  });
});

describe('tail -F notes in the data stream', () => {
  it('holds back a note the chunk does not finish, and nothing else', async () => {
    const { splitNote } = await import('../../consistency/readers.js');
    const data = pattern(1, 0, 0, 100);
    expect(splitNote(data)).toBe(-1);
    expect(splitNote(Buffer.concat([data, Buffer.from("tail: '/x' has been repl")]))).toBe(100);
    expect(splitNote(Buffer.concat([data, Buffer.from('tai')]))).toBe(100);
    expect(splitNote(Buffer.concat([data, Buffer.from("tail: '/x' has been replaced\n"), data]))).toBe(-1);
  });
});
