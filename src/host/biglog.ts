// BigLogs: user-defined composed files fed by shared files of several VMs (the paper's BigLog).
// A BigLog is the arrival-ordered concatenation of the bytes its sources grow by: when a VM's file
// joins, its current content is appended; each later growth of any source appends the new range.
// The BigLog's segments point at the same image bytes as the sources' — still zero-copy.
//
// A source that shrinks or disappears frees guest blocks that may soon hold other data, so the
// chunks it contributed are rebuilt from its current mapping, and whatever it no longer has becomes
// zeros (the BigLog is cut back to the first affected chunk and regrown, which invalidates cached
// pages from there). Definitions and chunk lists persist in <stateDir>/biglogs.json (fsync'd).
import { existsSync, readFileSync } from 'node:fs';
import { LiveMrError } from '../errors/index.js';
import type { CompositionStore, SegmentSpec } from '../fs/index.js';
import type { Logger } from './log.js';
import { compositionName } from './naming.js';
import { sliceSegments } from './publish.js';
import { writeFileAtomic } from '../durable/index.js';

export interface BigLogSource { vm: string; path: string }
export interface BigLogInfo { name: string; sources: BigLogSource[]; chunks: number; size: number }
interface Chunk { source: number; from: number; to: number }
interface BigLogDef { sources: BigLogSource[]; chunks: Chunk[] }

type BigLogErrorCode = 'BIGLOG_BAD_SOURCE' | 'BIGLOG_NAME_TAKEN' | 'HOST_UNKNOWN_VM';

export class BigLogError extends LiveMrError {
  override name = 'BigLogError';
  constructor(override readonly code: BigLogErrorCode, message: string) {
    super(message);
  }
}

export class BigLogs {
  /** a Map, not an object: a BigLog may be named `constructor` or `__proto__` */
  private defs = new Map<string, BigLogDef>();

  constructor(private readonly store: CompositionStore, private readonly file: string, private readonly log: Logger, private readonly vmNames: string[]) {
    if (existsSync(file)) this.defs = new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, BigLogDef>));
  }

  list(): BigLogInfo[] {
    return [...this.defs].map(([name, d]) => ({ name, sources: d.sources, chunks: d.chunks.length, size: this.store.get(name)?.segments.size ?? 0 }));
  }

  /** Creates the BigLog or adds sources to it; each new source's current content is appended. */
  join(name: string, sources: BigLogSource[]): void {
    if (this.vmNames.some((vm) => name.startsWith(`${vm}_`))) throw new BigLogError('BIGLOG_NAME_TAKEN', `names starting with '<vm>_' are reserved for shared files`);
    if (this.store.get(name) && !this.defs.has(name)) throw new BigLogError('BIGLOG_NAME_TAKEN', `${name} exists and is not a BigLog`);
    for (const s of sources) {
      if (!this.vmNames.includes(s.vm)) throw new BigLogError('HOST_UNKNOWN_VM', `unknown VM '${s.vm}'`);
      if (!s.path.startsWith('/')) throw new BigLogError('BIGLOG_BAD_SOURCE', `guest path '${s.path}' must be absolute`);
    }
    let def = this.defs.get(name);
    if (!def) this.defs.set(name, (def = { sources: [], chunks: [] }));
    if (!this.store.get(name)) this.store.compose(name, []);
    for (const s of sources) {
      if (def.sources.some((x) => x.vm === s.vm && x.path === s.path)) continue;
      const idx = def.sources.push(s) - 1;
      const size = this.store.get(compositionName(s.vm, s.path))?.segments.size ?? 0;
      if (size > 0) this.append(name, def, idx, 0, size);
    }
    this.save();
    this.log.info('BigLog defined', { biglog: name, sources: def.sources });
  }

  /** Called after a shared file changed on the mount. */
  sourceChanged(vm: string, path: string, after: number, kind: 'grown' | 'shrunk' | 'remapped' | 'removed' | 'rewritten'): void {
    let dirty = false;
    for (const [name, def] of this.defs) {
      const idx = def.sources.findIndex((s) => s.vm === vm && s.path === path);
      if (idx < 0) continue;
      if (kind === 'grown') {
        const covered = Math.max(0, ...def.chunks.filter((c) => c.source === idx).map((c) => c.to));
        if (after > covered) this.append(name, def, idx, covered, after);
      } else if (kind === 'rewritten') {
        // same image bytes, new content: only the kernel's cached pages are stale
        const first = def.chunks.findIndex((c) => c.source === idx);
        if (first >= 0) this.store.invalidate(name, def.chunks.slice(0, first).reduce((n, c) => n + c.to - c.from, 0));
        continue;
      } else {
        this.rebuild(name, def, idx);
      }
      dirty = true;
    }
    if (dirty) this.save();
  }

  private sourceSegments(def: BigLogDef, idx: number, from: number, to: number): SegmentSpec[] {
    const s = def.sources[idx]!;
    const name = compositionName(s.vm, s.path);
    const have = this.store.get(name) ? this.store.segments(name) : [];
    const size = this.store.get(name)?.segments.size ?? 0;
    const specs: SegmentSpec[] = have.map((r) => (r.file === null ? { zero: true, length: r.length } : { file: r.file, offset: r.offset, length: r.length }));
    const out = sliceSegments(specs, from, Math.min(to, size));
    if (to > Math.max(from, size)) out.push({ zero: true, length: to - Math.max(from, size) });
    return out;
  }

  private append(name: string, def: BigLogDef, idx: number, from: number, to: number): void {
    const segs = this.sourceSegments(def, idx, from, to);
    if (segs.length) this.store.append(name, segs);
    def.chunks.push({ source: idx, from, to });
  }

  /** Rewrites the BigLog from the first chunk of source idx on, using the sources' current mappings. */
  private rebuild(name: string, def: BigLogDef, idx: number): void {
    const first = def.chunks.findIndex((c) => c.source === idx);
    if (first < 0) return;
    let at = 0;
    for (let i = 0; i < first; i++) at += def.chunks[i]!.to - def.chunks[i]!.from;
    const rest = def.chunks.splice(first);
    // cut and regrown in one store change: a reader never sees the BigLog end at `at` in between
    const segs = rest.flatMap((c) => this.sourceSegments(def, c.source, c.from, c.to));
    this.store.replaceFrom(name, at, segs);
    def.chunks.push(...rest);
    this.log.info('BigLog rebuilt after a source shrank or went away', { biglog: name, from: at });
  }

  private save(): void {
    // Object.fromEntries defines own properties, so even `__proto__` round-trips through JSON.parse
    writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(this.defs)), { mode: 0o600 });
  }
}
