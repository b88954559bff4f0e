// JournalFollower: a gateway apart from the mount sees the store's changes through inotify on the
// state directory (no polling), including a journal replaced by compaction.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/store.js';
import { JournalFollower } from '../../../src/fs/index.js';
import type { SourceEvent } from '../../../src/hdfs/source.js';

let dir: string;
let img: string;
const open: { close(): void }[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-follow-'));
  img = path.join(dir, 'img');
  fs.writeFileSync(img, Buffer.alloc(1 << 16, 7));
});
afterEach(() => {
  for (const o of open.splice(0)) o.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the next event of the follower matching `pred`. */
function next(f: JournalFollower, pred: (e: SourceEvent) => boolean): Promise<SourceEvent> {
  return new Promise((resolve) => {
    const off = f.subscribe((e) => {
      if (pred(e)) {
        off();
        resolve(e);
      }
    });
  });
}

describe('JournalFollower', () => {
  it('replays the journal, then follows compose, append, fill, truncate and remove as they land', async () => {
    const state = path.join(dir, 'state');
    const store = CompositionStore.open(state);
    open.push(store);
    store.compose('old', [{ file: img, offset: 0, length: 10 }]);
    const f = JournalFollower.open(state);
    open.push(f);
    expect(f.names()).toEqual(['old']);
    expect(f.get('old')!.segments.size).toBe(10);

    let ev = next(f, (e) => e.name === 'log');
    store.compose('log', [{ file: img, offset: 100, length: 1000 }, { zero: true, length: 500 }]);
    expect(await ev).toEqual({ type: 'change', name: 'log' });
    expect(f.get('log')!.segments.size).toBe(1500);

    ev = next(f, (e) => e.name === 'log');
    store.append('log', [{ file: img, offset: 5000, length: 4096 }]);
    await ev;
    expect(f.get('log')!.segments.size).toBe(5596);

    ev = next(f, (e) => e.name === 'log');
    store.fill('log', 1000, { file: img, offset: 9000, length: 200 });
    await ev;
    expect([...f.get('log')!.segments]).toEqual([...store.get('log')!.segments]);
    expect(f.get('log')!.sources).toEqual(store.get('log')!.sources);

    ev = next(f, (e) => e.name === 'log');
    store.truncate('log', 700);
    await ev;
    expect(f.get('log')!.segments.size).toBe(700);

    ev = next(f, (e) => e.type === 'remove');
    store.remove('old');
    expect(await ev).toEqual({ type: 'remove', name: 'old' });
    expect(f.names()).toEqual(['log']);
  });

  it('re-reads a journal replaced by rename (compaction) and reports only the differences', async () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    const sa = CompositionStore.open(a);
    sa.compose('same', [{ file: img, offset: 0, length: 10 }]);
    sa.compose('gone', [{ file: img, offset: 0, length: 10 }]);
    const f = JournalFollower.open(a);
    open.push(f);
    sa.close();
    const sb = CompositionStore.open(b);
    // same name, same content and time is not a change; 'grown' is new
    sb.compose('grown', [{ file: img, offset: 0, length: 99 }]);
    sb.close();
    const events: SourceEvent[] = [];
    f.subscribe((e) => events.push(e));
    const removed = next(f, (e) => e.type === 'remove');
    fs.copyFileSync(path.join(b, 'compositions.journal'), path.join(a, 'compositions.journal.tmp'));
    fs.renameSync(path.join(a, 'compositions.journal.tmp'), path.join(a, 'compositions.journal'));
    await removed;
    expect(f.names().sort()).toEqual(['grown']);
    expect(events).toContainEqual({ type: 'change', name: 'grown' });
    expect(events).toContainEqual({ type: 'remove', name: 'same' });
    expect(events).toContainEqual({ type: 'remove', name: 'gone' });
  });

  it('waits for a state directory whose journal does not exist yet, and ignores a torn tail until it completes', async () => {
    const state = path.join(dir, 'later');
    fs.mkdirSync(state);
    const f = JournalFollower.open(state);
    open.push(f);
    expect(f.names()).toEqual([]);
    const ev = next(f, (e) => e.name === 'x');
    const store = CompositionStore.open(state);
    open.push(store);
    store.compose('x', [{ file: img, offset: 0, length: 5 }]);
    await ev;
    // a record whose bytes are not all there yet is not applied
    const j = path.join(state, 'compositions.journal');
    const before = fs.statSync(j).size;
    fs.appendFileSync(j, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 9]));
    f.refresh();
    expect(f.names()).toEqual(['x']);
    fs.truncateSync(j, before);
  });
  it('a damaged record in the journal it follows: everything is withheld, loudly, until the owner rewrites it', async () => {
    const state = path.join(dir, 'state');
    const store = CompositionStore.open(state);
    store.compose('a', [{ file: img, offset: 0, length: 10 }]);
    store.compose('b', [{ file: img, offset: 0, length: 10 }]);
    store.close();
    const logs: string[] = [];
    const f = JournalFollower.open(state, (l) => logs.push(l));
    open.push(f);
    expect(f.names().sort()).toEqual(['a', 'b']);
    // a record that lands damaged (as if a disk flipped a bit in it)
    const j = path.join(state, 'compositions.journal');
    const rec = Buffer.from('{"op":"remove","name":"a"}');
    const hdr = Buffer.alloc(8);
    hdr.writeUInt32LE(rec.length + 4, 0);
    hdr.writeUInt32LE(0xdeadbeef, 4);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(rec.length, 0);
    fs.appendFileSync(j, Buffer.concat([hdr, len, rec]));
    f.refresh();
    expect(f.names()).toEqual([]);
    expect(logs.join('\n')).toMatch(/JOURNAL DAMAGED \(bad record CRC/);
    // the owner opens it: the same damage, it withholds everything too and starts a fresh journal
    const again = CompositionStore.open(state);
    expect(again.damage?.withheld).toEqual(['a', 'b']);
    again.compose('c', [{ file: img, offset: 0, length: 10 }]);
    again.close();
    f.refresh();
    expect(f.names()).toEqual(['c']);
  });
});
