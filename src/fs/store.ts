// The composition store: which composed files exist and what they are made of, persisted in an
// fsync'd journal in the state directory (docs/fs.md). One process owns a state directory at a time
// (a pid lock file); the `livemr mount` daemon owns it while it runs and everyone else asks it.
//
// Every change is validated first, then journaled, then applied in memory, then announced through
// the 'change' / 'remove' events (the mount pushes the new table to the kernel side from there), so
// a change that fails loses nothing and a change that returned survives kill -9.

import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsError } from './errors.js';
import { Journal, type JournalDamage } from './journal.js';
import { SegmentList, ZERO_SOURCE, type SegmentTable } from './segments.js';

/** A piece of a composed file: a byte range of a source file, or zeros. */
export type SegmentSpec = { file: string; offset: number; length: number } | { zero: true; length: number };

export interface ComposeOptions {
  /** Serve this file with direct_io (no page cache; mmap then fails). Default false. */
  directIo?: boolean;
}

export interface CompositionInfo {
  name: string;
  /** the file name on the mount: livemr_NAME */
  fileName: string;
  size: number;
  segments: number;
  sources: string[];
  mtimeMs: number;
  directIo: boolean;
}

/** A segment with its source resolved to a path (null for zero fill). */
export interface ResolvedSegment {
  at: number;
  file: string | null;
  offset: number;
  length: number;
}

/** What the native addon receives for one file. */
export interface NativeTable extends SegmentTable {
  mtimeMs: number;
  directIo: boolean;
  sources: string[];
  sourcesJson: string;
}

export const FILE_PREFIX = 'livemr_';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name))
    throw new FsError('EBADNAME', `bad name '${name}': use 1-200 of [A-Za-z0-9._-], not starting with . - or _`);
}

function checkSpec(s: SegmentSpec, i: number): void {
  const where = `segment ${i}`;
  if (typeof s !== 'object' || s === null) throw new FsError('EBADSEGMENT', `${where}: not an object`);
  if (!Number.isSafeInteger(s.length) || s.length <= 0) throw new FsError('EBADSEGMENT', `${where}: bad length ${s.length}`);
  if ('zero' in s) return;
  if (typeof s.file !== 'string' || !path.isAbsolute(s.file) || s.file.includes('\0'))
    throw new FsError('EBADSEGMENT', `${where}: file must be an absolute path (got '${String(s.file)}')`);
  if (!Number.isSafeInteger(s.offset) || s.offset < 0) throw new FsError('EBADSEGMENT', `${where}: bad offset ${s.offset}`);
  if (s.offset + s.length > Number.MAX_SAFE_INTEGER) throw new FsError('ETOOBIG', `${where}: ends beyond 2^53`);
}

export class Composition {
  readonly segments = new SegmentList();
  readonly sources: string[] = [];
  private readonly sourceIdx = new Map<string, number>();
  mtimeMs = 0;
  directIo = false;

  constructor(readonly name: string) {}

  sourceIndex(file: string): number {
    let i = this.sourceIdx.get(file);
    if (i === undefined) {
      i = this.sources.push(file) - 1;
      this.sourceIdx.set(file, i);
    }
    return i;
  }

  info(): CompositionInfo {
    return {
      name: this.name,
      fileName: FILE_PREFIX + this.name,
      size: this.segments.size,
      segments: this.segments.count,
      sources: [...this.sources],
      mtimeMs: this.mtimeMs,
      directIo: this.directIo,
    };
  }

  resolved(): ResolvedSegment[] {
    return [...this.segments].map((s) => ({
      at: s.at,
      file: s.source === ZERO_SOURCE ? null : this.sources[s.source]!,
      offset: s.offset,
      length: s.length,
    }));
  }

  nativeTable(): NativeTable {
    return {
      ...this.segments.table(),
      mtimeMs: this.mtimeMs,
      directIo: this.directIo,
      sources: this.sources,
      sourcesJson: JSON.stringify(this.sources),
    };
  }
}

// --- journal records: u32le json length | json header | n x (u32le source, f64le offset, f64le length)
type Op =
  | { op: 'compose'; name: string; t: number; directIo?: boolean; sources: string[]; n: number; cut?: number }
  | { op: 'fill'; name: string; t: number; at: number; sources: string[]; n: number }
  | { op: 'truncate'; name: string; t: number; length: number }
  | { op: 'remove'; name: string };

const SEG_BYTES = 20;

function encode(op: Op, segs: { src: number; offset: number; length: number }[] = []): Buffer {
  const json = Buffer.from(JSON.stringify(op));
  const buf = Buffer.alloc(4 + json.length + segs.length * SEG_BYTES);
  buf.writeUInt32LE(json.length, 0);
  json.copy(buf, 4);
  let p = 4 + json.length;
  for (const s of segs) {
    buf.writeUInt32LE(s.src, p);
    buf.writeDoubleLE(s.offset, p + 4);
    buf.writeDoubleLE(s.length, p + 12);
    p += SEG_BYTES;
  }
  return buf;
}

function decode(buf: Buffer): { op: Op; segs: Buffer } {
  const jl = buf.readUInt32LE(0);
  const op = JSON.parse(buf.subarray(4, 4 + jl).toString()) as Op;
  const segs = buf.subarray(4 + jl);
  if ('n' in op && segs.length !== op.n * SEG_BYTES) throw new Error('segment count mismatch');
  return { op, segs };
}

/**
 * Decodes one journal record and applies it to `files`. Shared by the store (commit, replay) and by
 * read-only followers of a journal another process owns (follower.ts).
 */
export function applyRecord(files: Map<string, Composition>, record: Buffer): { name: string; removed: boolean } {
  const { op, segs } = decode(record);
  const removed = op.op === 'remove' && files.has(op.name);
  applyOp(files, op, segs);
  return { name: op.name, removed };
}

function applyOp(files: Map<string, Composition>, op: Op, segs: Buffer): void {
  if (op.op === 'remove') {
    // readers that still hold the object (an OPEN streaming it) see it end at once: nothing of a
    // removed file is read after the removal was applied
    files.get(op.name)?.segments.truncate(0);
    files.delete(op.name);
    return;
  }
  let c = files.get(op.name);
  if (op.op === 'compose') {
    if (!c) files.set(op.name, (c = new Composition(op.name)));
    if (op.directIo !== undefined) c.directIo = op.directIo;
  }
  if (!c) throw new Error(`${op.op} of unknown file ${op.name}`);
  if (op.op === 'truncate') c.segments.truncate(op.length);
  else {
    if (op.op === 'compose' && op.cut !== undefined) c.segments.truncate(op.cut);
    const map = op.sources.map((f) => c.sourceIndex(f));
    for (let p = 0; p < segs.length; p += SEG_BYTES) {
      const s = segs.readUInt32LE(p);
      const src = s === ZERO_SOURCE ? ZERO_SOURCE : map[s];
      if (src === undefined) throw new Error(`bad source index ${s}`);
      const offset = segs.readDoubleLE(p + 4);
      const length = segs.readDoubleLE(p + 12);
      if (op.op === 'fill') c.segments.fill(op.at, src, offset, length);
      else c.segments.append(src, offset, length);
    }
  }
  c.mtimeMs = op.t;
}

/** Turns specs into record segments indexed into a per-record source list. */
function toRecord(specs: SegmentSpec[]): { sources: string[]; segs: { src: number; offset: number; length: number }[] } {
  const sources: string[] = [];
  const idx = new Map<string, number>();
  const segs = specs.map((s) => {
    if ('zero' in s) return { src: ZERO_SOURCE, offset: 0, length: s.length };
    let i = idx.get(s.file);
    if (i === undefined) idx.set(s.file, (i = sources.push(s.file) - 1));
    return { src: i, offset: s.offset, length: s.length };
  });
  return { sources, segs };
}

export interface StoreEvents {
  change: [name: string, comp: Composition, invalFrom: number];
  remove: [name: string];
}

/** What a damaged journal cost: the files it named are withheld (not served) until re-created. */
export interface StoreDamage {
  /** the damaged journal as it was */
  copy: string;
  offset: number;
  reason: string;
  /** files the journal named that are not served */
  withheld: string[];
}

export class CompositionStore extends EventEmitter<StoreEvents> {
  private readonly files = new Map<string, Composition>();
  /** withheld in memory while the journal still names them (withhold); their removal is owed */
  private readonly unjournaled = new Set<string>();
  private closed = false;
  /** set when the journal was found damaged at open (see open) */
  damage?: StoreDamage;

  private constructor(
    readonly stateDir: string,
    private readonly journal: Journal,
    private readonly lockFile: string,
  ) {
    super();
  }

  /** Opens the state directory (created if missing), replaying its journal. */
  static open(stateDir: string): CompositionStore {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const lockFile = path.join(stateDir, 'lock');
    acquireLock(lockFile);
    let opened: ReturnType<typeof Journal.open>;
    try {
      opened = Journal.open(path.join(stateDir, 'compositions.journal'));
    } catch (e) {
      releaseLock(lockFile);
      throw e;
    }
    const store = new CompositionStore(stateDir, opened.journal, lockFile);
    if (opened.replay.damage) {
      store.withholdAll(opened.replay.records, opened.replay.damage);
      return store;
    }
    for (const rec of opened.replay.records) {
      try {
        const { op, segs } = decode(rec);
        store.apply(op, segs);
      } catch (e) {
        // a record that passed its CRC but does not apply: keep going, say so
        process.stderr.write(`livemr: skipping journal record: ${(e as Error).message}\n`);
      }
    }
    for (const c of store.files.values()) c.segments.compact();
    if (opened.replay.droppedBytes > 0 || store.journal.size > 2 * store.liveBytes() + (1 << 20)) store.compact();
    return store;
  }

  /**
   * A journal damaged in the middle lost records we cannot read — any of them may have been the
   * removal or shrink of any file — so no file it names is trusted: none is served, the journal
   * starts empty (its copy keeps the evidence) and the loss is said loudly. Guest files come back
   * when their VM's guest shares them again; other compositions must be composed again.
   */
  private withholdAll(before: Buffer[], d: JournalDamage): void {
    const names = new Set<string>();
    for (const rec of [...before, ...d.after]) {
      try { names.add(decode(rec).op.name); } catch { /* undecodable: its name is lost too */ }
    }
    this.damage = { copy: d.copy, offset: d.offset, reason: d.reason, withheld: [...names].sort() };
    this.journal.rewrite([]);
    process.stderr.write(`livemr: JOURNAL DAMAGED: ${this.journal.file} at byte ${d.offset} (${d.reason}), ${d.after.length} valid record(s) after it; ` +
      `a copy is in ${d.copy}; withholding all ${names.size} file(s) it named until they are shared or composed again: ${[...names].sort().join(', ') || '(none)'}\n`);
  }

  get(name: string): Composition | undefined {
    return this.files.get(name);
  }

  list(): CompositionInfo[] {
    return [...this.files.values()].map((c) => c.info()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The segment list of a file with sources as paths. */
  segments(name: string): ResolvedSegment[] {
    return this.must(name).resolved();
  }

  /** Creates livemr_NAME or extends it at its end (the paper's fsmapcreate). */
  compose(name: string, specs: SegmentSpec[], opts: ComposeOptions = {}): CompositionInfo {
    this.open_();
    checkName(name);
    return this.composeFrom(name, specs, this.files.get(name)?.segments.size ?? 0, opts.directIo === undefined ? {} : { directIo: opts.directIo });
  }

  /** Extends an existing file. */
  append(name: string, specs: SegmentSpec[]): CompositionInfo {
    this.must(name);
    return this.compose(name, specs);
  }

  /**
   * Replaces everything from `at` on with `specs`, in one step and one journal record (a remap from
   * `at`): a reader sees the old bytes or the new ones, never the file cut short at `at` in between,
   * which a truncate then an append showed it (and the kernel could cache that short read's zeros).
   */
  replaceFrom(name: string, at: number, specs: SegmentSpec[]): CompositionInfo {
    this.open_();
    const c = this.must(name);
    if (!Number.isSafeInteger(at) || at < 0 || at > c.segments.size) throw new FsError('EBADSEGMENT', `bad offset ${at}`);
    return this.composeFrom(name, specs, at, { cut: at });
  }

  /** Checks `specs` and commits one compose record placing them at `base` (the end, or `cut`). */
  private composeFrom(name: string, specs: SegmentSpec[], base: number, extra: { directIo?: boolean; cut?: number }): CompositionInfo {
    if (!Array.isArray(specs)) throw new FsError('EBADSEGMENT', 'segments must be an array');
    specs.forEach(checkSpec);
    const total = specs.reduce((a, s) => a + s.length, base);
    if (total > Number.MAX_SAFE_INTEGER) throw new FsError('ETOOBIG', `${name} would exceed 2^53 bytes`);
    const { sources, segs } = toRecord(specs);
    const op: Op = { op: 'compose', name, t: Date.now(), sources, n: segs.length, ...extra };
    return this.commit(op, encode(op, segs));
  }

  /** Places a source range into a zero-fill region of an existing file. */
  fill(name: string, at: number, spec: { file: string; offset: number; length: number }): CompositionInfo {
    this.open_();
    checkSpec(spec, 0);
    const c = this.must(name);
    const i = Number.isSafeInteger(at) && at >= 0 && at < c.segments.size ? c.segments.find(at) : -1;
    const seg = i >= 0 ? c.segments.get(i) : undefined;
    if (!seg || seg.source !== ZERO_SOURCE || at + spec.length > seg.at + seg.length)
      throw new FsError('ENOTHOLE', `${name}: ${at}+${spec.length} is not inside one zero-fill segment`);
    const { sources, segs } = toRecord([spec]);
    const op: Op = { op: 'fill', name, t: Date.now(), at, sources, n: 1 };
    return this.commit(op, encode(op, segs));
  }

  /** Shrinks the file to `length` bytes (a guest file got shorter) or extends it with zeros. */
  truncate(name: string, length: number): CompositionInfo {
    this.open_();
    this.must(name);
    if (!Number.isSafeInteger(length) || length < 0) throw new FsError('EBADSEGMENT', `bad length ${length}`);
    const op: Op = { op: 'truncate', name, t: Date.now(), length };
    return this.commit(op, encode(op));
  }

  /**
   * Says that the source bytes behind [from, size) may have changed in place (same mapping): nothing
   * is journaled, the mount drops the kernel's cached pages from `from`.
   */
  invalidate(name: string, from: number): void {
    this.open_();
    const c = this.must(name);
    if (!Number.isSafeInteger(from) || from < 0) throw new FsError('EBADSEGMENT', `bad offset ${from}`);
    if (from < c.segments.size) this.emit('change', name, c, from);
  }

  /**
   * Removes livemr_NAME (the paper's fsmapdelete). False when there was no such file. For a file
   * withheld (withhold()), journals the removal it owes.
   */
  remove(name: string): boolean {
    this.open_();
    checkName(name);
    const op: Op = { op: 'remove', name };
    if (!this.files.has(name)) {
      if (!this.unjournaled.has(name)) return false;
      this.journal.append(encode(op));
      this.unjournaled.delete(name);
      return true;
    }
    this.journal.append(encode(op));
    this.apply(op, Buffer.alloc(0));
    this.emit('remove', name);
    this.maybeCompact();
    return true;
  }

  /**
   * Stops serving livemr_NAME at once, in memory only: for a shrink or removal that could not be
   * journaled (a full state file system), so that the failure never leaves removed bytes served.
   * The journal still names the file: its removal is owed and is journaled before any later record
   * of the name (remove(), compose()), or dropped by a compaction. A restart before that brings the
   * journaled file back, withheld by the agent until its guest confirms it (docs/security.md).
   */
  withhold(name: string): boolean {
    this.open_();
    if (!this.files.has(name)) return false;
    this.apply({ op: 'remove', name }, Buffer.alloc(0));
    this.unjournaled.add(name);
    this.emit('remove', name);
    return true;
  }

  /** Names withheld whose removal is not journaled yet. */
  owedRemovals(): string[] {
    return [...this.unjournaled];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.journal.close();
    releaseLock(this.lockFile);
  }

  private commit(op: Op & { name: string }, record: Buffer): CompositionInfo {
    const before = this.files.get(op.name);
    const oldSize = before?.segments.size ?? -1;
    // a withheld name starts afresh: its owed removal first, or replay would extend the old file
    if (this.unjournaled.has(op.name)) {
      this.journal.append(encode({ op: 'remove', name: op.name }));
      this.unjournaled.delete(op.name);
    }
    this.journal.append(record);
    const { segs } = decode(record);
    this.apply(op, segs);
    const c = this.files.get(op.name)!;
    const inval =
      op.op === 'fill' ? op.at : op.op === 'truncate' ? Math.min(oldSize, op.length)
        : op.op === 'compose' && op.cut !== undefined ? Math.min(oldSize, op.cut) : before ? oldSize : -1;
    this.emit('change', op.name, c, inval);
    this.maybeCompact();
    return c.info();
  }

  /** Applies a (journaled) operation to the in-memory state. Shared by commit and replay. */
  private apply(op: Op, segs: Buffer): void {
    applyOp(this.files, op, segs);
  }

  private liveBytes(): number {
    let b = 0;
    for (const c of this.files.values()) b += 128 + c.segments.count * SEG_BYTES + c.sources.join('').length;
    return b;
  }

  private maybeCompact(): void {
    if (this.journal.size > 64 * 1024 * 1024 && this.journal.size > 4 * this.liveBytes()) this.compact();
  }

  /** Rewrites the journal as one compose record per live file. */
  private compact(): void {
    const journal = this.journal;
    const files = [...this.files.values()];
    function* records(): Generator<Buffer> {
      for (const c of files) {
        // through specs, so sources no longer referenced (after a truncate) are dropped
        const specs = c.resolved().map((s): SegmentSpec => (s.file === null ? { zero: true, length: s.length } : { file: s.file, offset: s.offset, length: s.length }));
        const { sources, segs } = toRecord(specs);
        yield encode({ op: 'compose', name: c.name, t: c.mtimeMs, directIo: c.directIo, sources, n: segs.length }, segs);
      }
    }
    journal.rewrite(records());
    this.unjournaled.clear(); // the rewritten journal does not name them any more
  }

  private must(name: string): Composition {
    checkName(name);
    const c = this.files.get(name);
    if (!c) throw new FsError('ENOFILE', `no composed file '${name}'`);
    return c;
  }

  private open_(): void {
    if (this.closed) throw new FsError('EJOURNAL', 'store is closed');
  }
}

/** Takes the state directory's pid lock; a lock left by a dead process is taken over. */
function acquireLock(file: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new FsError('ELOCKED', `cannot create ${file}: ${(e as Error).message}`);
    }
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
      throw new FsError('ELOCKED', `state directory ${path.dirname(file)} is in use by pid ${pid}`);
    fs.rmSync(file, { force: true }); // stale (crashed owner) or our own
  }
  throw new FsError('ELOCKED', `cannot take ${file}`);
}

function releaseLock(file: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
  } catch {
    /* already gone */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // a killed owner whose parent has not reaped it yet is a zombie: dead for our purpose
    return !/^\d+ \(.*\) Z/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
