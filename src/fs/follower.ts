// A read-only view of a composition state directory owned by another process (the `livemr mount`
// daemon), kept current with inotify (fs.watch) on the directory: appended journal records are
// applied as they land, a compacted (renamed-over) journal is re-read whole. This is how a gateway
// that runs apart from the mount sees files grow, without polling and without the store's lock.
//
// Records are read with the journal's own reader and applied with the store's own applyRecord, so
// the follower can only ever see what the store itself would replay.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasMagic, MAGIC, readRecord } from './journal.js';
import { applyRecord, Composition } from './store.js';

/** A change the follower saw: a composition appeared or changed, or went away. */
export type FollowEvent = { type: 'change' | 'remove'; name: string };

const JOURNAL = 'compositions.journal';

/** A read-only, live view of a composition store owned by another process. */
export class JournalFollower {
  private files = new Map<string, Composition>();
  private readonly events = new EventEmitter<{ ev: [FollowEvent] }>();
  private fd = -1;
  private ino = 0;
  private pos = 0;
  private damagedAt = -1;
  private watcher: fs.FSWatcher | undefined;
  private readonly file: string;

  private constructor(
    readonly stateDir: string,
    private readonly log: (line: string) => void,
  ) {
    this.file = path.join(stateDir, JOURNAL);
  }

  /** Reads the state directory's journal and starts following it. */
  static open(stateDir: string, log: (line: string) => void = () => {}): JournalFollower {
    const f = new JournalFollower(stateDir, log);
    f.watcher = fs.watch(stateDir, { persistent: false }, (_type, name) => {
      if (name === null || name === JOURNAL) f.refresh();
    });
    f.watcher.on('error', (e) => log(`watching ${stateDir}: ${e.message}`));
    f.refresh();
    return f;
  }

  names(): string[] {
    return [...this.files.keys()];
  }

  get(name: string): Composition | undefined {
    return this.files.get(name);
  }

  subscribe(listener: (ev: FollowEvent) => void): () => void {
    this.events.on('ev', listener);
    return () => this.events.off('ev', listener);
  }

  close(): void {
    this.watcher?.close();
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Applies whatever is new in the journal (all of it if the file was replaced or cut). */
  refresh(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch {
      return; // not created yet: the directory watch tells us when it is
    }
    if (st.ino !== this.ino || st.size < this.pos) return this.reload();
    this.readNew(this.files, (ev) => this.events.emit('ev', ev));
  }

  private reload(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    try {
      this.fd = fs.openSync(this.file, 'r');
    } catch (e) {
      this.fd = -1;
      this.log(`cannot open ${this.file}: ${(e as Error).message}`);
      return;
    }
    this.ino = fs.fstatSync(this.fd).ino;
    this.pos = 0;
    this.damagedAt = -1;
    const old = this.files;
    const fresh = new Map<string, Composition>();
    this.readNew(fresh, () => {});
    this.files = fresh;
    for (const [name, c] of fresh) {
      const o = old.get(name);
      if (!o || o.segments.size !== c.segments.size || o.mtimeMs !== c.mtimeMs) this.events.emit('ev', { type: 'change', name });
    }
    for (const name of old.keys()) if (!fresh.has(name)) this.events.emit('ev', { type: 'remove', name });
  }

  private readNew(files: Map<string, Composition>, emit: (ev: FollowEvent) => void): void {
    if (this.fd < 0) return this.reload();
    const size = fs.fstatSync(this.fd).size;
    if (this.pos === 0) {
      if (size < MAGIC.length) return;
      if (!hasMagic(this.fd)) return this.log(`${this.file} is not a LiveMR journal`);
      this.pos = MAGIC.length;
    }
    for (;;) {
      const r = readRecord(this.fd, this.pos, size);
      if (r.kind === 'end') return;
      if (r.kind === 'partial' && r.tooLong) return this.withholdAll(files, emit, `bad record length at ${this.pos}`);
      if (r.kind === 'partial') return; // still being written: the next event brings the rest
      if (r.kind === 'bad') return this.withholdAll(files, emit, `bad record CRC at ${this.pos}`);
      this.pos = r.next;
      try {
        const ev = apply(files, r.payload);
        if (ev) emit(ev);
      } catch (e) {
        this.log(`${this.file}: skipping record: ${(e as Error).message}`);
      }
    }
  }

  /**
   * A complete record that fails its CRC is damage, not a write in progress: what it said (maybe a
   * removal) is lost, so nothing of this journal is served until the owner rewrites it (its store
   * withholds everything and starts a fresh journal, which we then re-read).
   */
  private withholdAll(files: Map<string, Composition>, emit: (ev: FollowEvent) => void, why: string): void {
    if (this.damagedAt !== this.pos) this.log(`${this.file}: JOURNAL DAMAGED (${why}): withholding all ${files.size} file(s) until it is rewritten`);
    this.damagedAt = this.pos;
    for (const name of [...files.keys()]) {
      files.delete(name);
      emit({ type: 'remove', name });
    }
  }
}

function apply(files: Map<string, Composition>, payload: Buffer): FollowEvent | undefined {
  const { name, removed } = applyRecord(files, payload);
  if (removed) return { type: 'remove', name };
  return files.has(name) ? { type: 'change', name } : undefined;
}
