// The gateway's files read through the FUSE mount instead of the state directory: what an
// unprivileged gateway (the `livemr` user, a member of the mount's group) can see. The agent keeps
// its state directory and the disk images root-only; the mount's group may read the composed files,
// so each livemr_NAME on the mount becomes a composed file of one segment, the mounted file itself.
// FUSE delivers no inotify for changes the daemon makes, so the directory is rescanned every
// `pollMs` (the freshness cost of running unprivileged: up to pollMs more lag for new or grown files).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FILE_PREFIX, SegmentList } from '../fs/index.js';
import type { ComposedFile, CompositionSource, SourceEvent } from './source.js';

interface Entry { name: string; file: string; size: number; mtimeMs: number }

export class MountSource implements CompositionSource {
  private files = new Map<string, Entry>();
  private listeners = new Set<(ev: SourceEvent) => void>();
  private timer: NodeJS.Timeout;

  private constructor(readonly dir: string, private log: (line: string) => void, pollMs: number) {
    this.scan();
    this.timer = setInterval(() => this.scan(), pollMs);
    this.timer.unref();
  }

  static open(dir: string, o: { pollMs?: number; log?: (line: string) => void } = {}): MountSource {
    fs.readdirSync(dir); // fail now, with the reason, if the mount is not readable
    return new MountSource(dir, o.log ?? (() => {}), o.pollMs ?? 500);
  }

  names(): string[] {
    return [...this.files.keys()];
  }

  get(name: string): ComposedFile | undefined {
    const e = this.files.get(name);
    if (!e) return undefined;
    return {
      name,
      // one segment over the mounted file, as long as the file is now (the entry is updated in place)
      get segments() {
        const l = new SegmentList();
        if (e.size > 0) l.append(0, 0, e.size);
        return l;
      },
      sources: [e.file],
      get mtimeMs() {
        return e.mtimeMs;
      },
    };
  }

  subscribe(listener: (ev: SourceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Rereads the directory; emits change for new or changed files, remove for gone ones. */
  scan(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((n) => n.startsWith(FILE_PREFIX) && n.length > FILE_PREFIX.length);
    } catch (e) {
      this.log(`reading ${this.dir}: ${(e as Error).message}`);
      return;
    }
    const seen = new Set<string>();
    for (const fileName of names) {
      const name = fileName.slice(FILE_PREFIX.length);
      const file = path.join(this.dir, fileName);
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        continue; // removed between readdir and stat
      }
      if (!st.isFile()) continue;
      seen.add(name);
      const old = this.files.get(name);
      if (old && old.size === st.size && old.mtimeMs === st.mtimeMs) continue;
      if (old) Object.assign(old, { size: st.size, mtimeMs: st.mtimeMs });
      else this.files.set(name, { name, file, size: st.size, mtimeMs: st.mtimeMs });
      this.emit({ type: 'change', name });
    }
    for (const name of [...this.files.keys()]) {
      if (seen.has(name)) continue;
      this.files.delete(name);
      this.emit({ type: 'remove', name });
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  private emit(ev: SourceEvent): void {
    for (const l of this.listeners) l(ev);
  }
}
