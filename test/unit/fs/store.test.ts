import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsError } from '../../../src/fs/errors.js';
import { CompositionStore } from '../../../src/fs/store.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-store-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('CompositionStore', () => {
  it('composes, extends, truncates, fills and removes, and replays all of it', () => {
    const s = CompositionStore.open(dir);
    s.compose('a', [
      { file: '/img/one', offset: 100, length: 10 },
      { file: '/img/two', offset: 0, length: 5 },
    ]);
    s.compose('a', [{ file: '/img/two', offset: 5, length: 5 }, { zero: true, length: 20 }]); // extends, merges
    s.fill('a', 25, { file: '/img/one', offset: 7, length: 4 });
    s.compose('b', [{ file: '/img/one', offset: 0, length: 1 }], { directIo: true });
    s.truncate('b', 0);
    s.compose('c', [{ file: '/img/one', offset: 0, length: 1 }]);
    expect(s.remove('c')).toBe(true);
    expect(s.remove('c')).toBe(false);
    const before = { list: s.list(), segs: s.segments('a') };
    expect(before.segs).toEqual([
      { at: 0, file: '/img/one', offset: 100, length: 10 },
      { at: 10, file: '/img/two', offset: 0, length: 10 },
      { at: 20, file: null, offset: 0, length: 5 },
      { at: 25, file: '/img/one', offset: 7, length: 4 },
      { at: 29, file: null, offset: 0, length: 11 },
    ]);
    expect(before.list.map((f) => [f.fileName, f.size, f.directIo])).toEqual([
      ['livemr_a', 40, false],
      ['livemr_b', 0, true],
    ]);
    s.close();
    const r = CompositionStore.open(dir);
    expect(r.list()).toEqual(before.list);
    expect(r.segments('a')).toEqual(before.segs);
    r.close();
  });

  it('announces changes with the first changed offset', () => {
    const s = CompositionStore.open(dir);
    const seen: [string, number][] = [];
    s.on('change', (n, _c, inval) => seen.push([n, inval]));
    s.on('remove', (n) => seen.push([n, -2]));
    s.compose('a', [{ file: '/x', offset: 0, length: 100 }]);
    s.append('a', [{ zero: true, length: 50 }]);
    s.truncate('a', 120);
    s.fill('a', 110, { file: '/x', offset: 0, length: 5 });
    s.remove('a');
    expect(seen).toEqual([
      ['a', -1],
      ['a', 100],
      ['a', 120],
      ['a', 110],
      ['a', -2],
    ]);
    s.close();
  });

  it('replaceFrom: a cut and regrowth in one change and one record (no reader sees the file end at the cut), replayed alike', () => {
    const s = CompositionStore.open(dir);
    s.compose('a', [{ file: '/x', offset: 0, length: 100 }, { file: '/y', offset: 0, length: 50 }]);
    const seen: [number, number][] = [];
    s.on('change', (_n, c, inval) => seen.push([c.segments.size, inval]));
    const shrinks: number[] = [];
    s.get('a')!.segments.onShrink((size) => shrinks.push(size)); // the sendfile path still hears the cut
    const journal = fs.statSync(path.join(dir, 'compositions.journal')).size;
    s.replaceFrom('a', 60, [{ file: '/z', offset: 7, length: 120 }]);
    expect(seen).toEqual([[180, 60]]);
    expect(shrinks).toEqual([60]);
    const want = [{ at: 0, file: '/x', offset: 0, length: 60 }, { at: 60, file: '/z', offset: 7, length: 120 }];
    expect(s.segments('a')).toEqual(want);
    expect(fs.statSync(path.join(dir, 'compositions.journal')).size).toBeGreaterThan(journal);
    expect(() => s.replaceFrom('a', 181, [])).toThrow(FsError);
    expect(() => s.replaceFrom('nope', 0, [])).toThrow(FsError);
    s.close();
    const r = CompositionStore.open(dir);
    expect(r.segments('a')).toEqual(want);
    r.close();
  });

  it('rejects bad input with typed errors and journals nothing', () => {
    const s = CompositionStore.open(dir);
    s.compose('ok', [{ file: '/x', offset: 0, length: 1 }]);
    const size = fs.statSync(path.join(dir, 'compositions.journal')).size;
    const bad: [() => unknown, string][] = [
      [() => s.compose('../etc', [{ file: '/x', offset: 0, length: 1 }]), 'EBADNAME'],
      [() => s.compose('', [{ file: '/x', offset: 0, length: 1 }]), 'EBADNAME'],
      [() => s.compose('a', [{ file: 'relative', offset: 0, length: 1 }]), 'EBADSEGMENT'],
      [() => s.compose('a', [{ file: '/x', offset: -1, length: 1 }]), 'EBADSEGMENT'],
      [() => s.compose('a', [{ file: '/x', offset: 0, length: 0 }]), 'EBADSEGMENT'],
      [() => s.compose('a', [{ file: '/x', offset: 2 ** 53, length: 1 }]), 'EBADSEGMENT'],
      [() => s.compose('a', [{ file: '/x', offset: 2 ** 52, length: 2 ** 52 }]), 'ETOOBIG'],
      [() => s.append('nope', [{ file: '/x', offset: 0, length: 1 }]), 'ENOFILE'],
      [() => s.truncate('ok', -3), 'EBADSEGMENT'],
      [() => s.fill('ok', 0, { file: '/x', offset: 0, length: 1 }), 'ENOTHOLE'],
      [() => s.compose('a', 'nope' as never), 'EBADSEGMENT'],
    ];
    for (const [f, code] of bad) {
      expect(f).toThrow(FsError);
      try {
        f();
      } catch (e) {
        expect((e as FsError).code).toBe(code);
      }
    }
    expect(fs.statSync(path.join(dir, 'compositions.journal')).size).toBe(size);
    expect(s.list().map((f) => f.name)).toEqual(['ok']);
    s.close();
  });

  it('withhold: gone from memory at once, its removal owed to the journal before anything else of the name', () => {
    const s = CompositionStore.open(dir);
    s.compose('w', [{ file: '/img/one', offset: 0, length: 100 }]);
    s.compose('v', [{ file: '/img/one', offset: 0, length: 100 }]);
    const seen: string[] = [];
    s.on('remove', (n) => seen.push(n));
    const held = s.get('w')!;
    expect(s.withhold('w')).toBe(true);
    expect(held.segments.size).toBe(0); // a reader still holding it sees it end
    expect(s.get('w')).toBeUndefined();
    expect(seen).toEqual(['w']);
    expect(s.owedRemovals()).toEqual(['w']);
    s.compose('w', [{ file: '/img/two', offset: 5, length: 7 }]); // shared again: starts afresh
    expect(s.withhold('v')).toBe(true);
    expect(s.remove('v')).toBe(true); // journals the owed removal
    expect(s.owedRemovals()).toEqual([]);
    s.close();
    const r = CompositionStore.open(dir);
    expect(r.list().map((f) => [f.name, f.size])).toEqual([['w', 7]]);
    expect(r.segments('w')).toEqual([{ at: 0, file: '/img/two', offset: 5, length: 7 }]);
    r.close();
  });

  it('is owned by one process at a time; a dead owner lock is taken over', () => {
    const s = CompositionStore.open(dir);
    s.close();
    fs.writeFileSync(path.join(dir, 'lock'), '1\n'); // pid 1 is alive: locked
    expect(() => CompositionStore.open(dir)).toThrow(/in use by pid 1/);
    fs.writeFileSync(path.join(dir, 'lock'), '999999999\n'); // no such process: stale
    CompositionStore.open(dir).close();
    expect(fs.existsSync(path.join(dir, 'lock'))).toBe(false);
  });

  it('survives a torn last record (crash mid-write) and compacts on open', () => {
    const s = CompositionStore.open(dir);
    s.compose('a', [{ file: '/x', offset: 0, length: 10 }]);
    s.compose('a', [{ file: '/y', offset: 0, length: 10 }]);
    s.close();
    const j = path.join(dir, 'compositions.journal');
    fs.truncateSync(j, fs.statSync(j).size - 3);
    const r = CompositionStore.open(dir);
    expect(r.list().map((f) => [f.name, f.size])).toEqual([['a', 10]]);
    r.compose('a', [{ file: '/z', offset: 0, length: 1 }]);
    r.close();
    const r2 = CompositionStore.open(dir);
    expect(r2.segments('a').map((x) => x.file)).toEqual(['/x', '/z']);
    r2.close();
  });

  it('a journal damaged in the middle: nothing it named is served, the copy stays, the next open is clean', () => {
    const s = CompositionStore.open(dir);
    s.compose('kept', [{ file: '/x', offset: 0, length: 10 }]);
    s.compose('other', [{ file: '/x', offset: 0, length: 10 }]);
    s.compose('revoked', [{ file: '/x', offset: 0, length: 10 }]);
    s.remove('revoked');
    s.close();
    const j = path.join(dir, 'compositions.journal');
    const bytes = fs.readFileSync(j);
    const at = bytes.indexOf('"name":"other"') + 9;
    bytes[at] = bytes[at]! ^ 0x01;
    fs.writeFileSync(j, bytes);
    const r = CompositionStore.open(dir);
    expect(r.list()).toEqual([]);
    expect(r.damage).toMatchObject({ reason: 'CRC mismatch', withheld: ['kept', 'revoked'] });
    expect(fs.readFileSync(r.damage!.copy).equals(bytes)).toBe(true);
    r.compose('kept', [{ file: '/y', offset: 0, length: 1 }]);
    r.close();
    const r2 = CompositionStore.open(dir);
    expect(r2.damage).toBeUndefined();
    expect(r2.segments('kept').map((x) => x.file)).toEqual(['/y']);
    r2.close();
  });

  it('stores 10^5 segments and reloads them quickly', () => {
    const s = CompositionStore.open(dir);
    const segs = Array.from({ length: 100_000 }, (_, i) => ({ file: '/img', offset: i * 4096 * 2, length: 4096 }));
    s.compose('big', segs);
    s.close();
    const t0 = performance.now();
    const r = CompositionStore.open(dir);
    expect(r.get('big')!.segments.count).toBe(100_000);
    expect(performance.now() - t0).toBeLessThan(5000);
    r.close();
  });
});
