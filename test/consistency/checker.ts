// The history checker (docs/consistency.md, "Invariants"). It replays the guest's operations in
// order on a model of every file and validates every host read against it:
//   (a) each byte equals the guest's byte at that offset at some moment within the read's interval,
//       widened by the clock error and the documented visibility window W;
//   (b) for append-only files, each read is a prefix of the file (its latest state: bytes of an
//       append-only file never change) and the sizes one reader sees never shrink;
//   (c) once the host has published a file's shrink or removal, bytes other files (or later
//       generations) wrote into the freed blocks never appear in it;
//   (d) removed means removed: once the host has published a file's removal (unlink, consent
//       revoked, renamed away) or an agent restart, no read that starts after it returns the file's
//       bytes, and every removal of a file the host showed is published in the end.
// Online: reads are checked in order of their start as soon as the guest log covers their end, and
// their data is dropped, so a soak's memory stays bounded.
import { createHash } from 'node:crypto';
import type { Clock, GuestOp, HostEvent, ReadRecord } from './history.js';
import { FileModel, type Seg } from './model.js';
import { pattern } from './pattern.js';

export const KINDS = ['a-nul', 'a-cached', 'a-wrong', 'a-beyond', 'b-prefix', 'b-shrink', 'c-freed', 'd-removed', 'd-untold'] as const;
export type ViolationKind = (typeof KINDS)[number];

export interface Violation {
  kind: ViolationKind;
  reader: string;
  path: string;
  /** the read: file offset, length, host interval */
  off: number;
  len: number;
  s: number;
  e: number;
  /** first bad file offset and the length of the bad run */
  at: number;
  run: number;
  /** up to 16 bytes read at `at`, and what the file held there at the window's start (if it existed) */
  got: string;
  want?: string;
  candidates: number[];
  /** key:gen@offset whose pattern the bad bytes are, if found */
  identified?: string;
  note?: string;
  /** the guest ops on the candidates that touched the bad bytes or changed the size, last few, with times relative to the read's start */
  ops?: string[];
}

export interface Report {
  reads: number;
  bytes: number;
  readsByKind: Record<string, number>;
  violations: Record<ViolationKind, number>;
  violatingBytes: Record<ViolationKind, number>;
  /** the first violations in full */
  evidence: Violation[];
  /** reads at EOF whose size was older than the guest's at the read's start: the largest, p50, p99 (ms) */
  maxStalenessMs: number;
  /** the read that had it */
  stalest?: string;
  p50StalenessMs: number;
  p99StalenessMs: number;
  staleReads: number;
  /** zero runs that were the file's bytes before a write older than W (the host had not shown it yet): count, largest age */
  staleRuns: number;
  maxStaleValueMs: number;
  stalestValue?: string;
  /** regions past the size of a file truncated/unlinked/renamed away whose shrink the host had not published yet (allowed, counted) */
  windowShrink: number;
  /** reads (not tail) whose bytes only a file renamed away, unlinked or revoked more than W before they started explains, the host not told yet (allowed, counted) */
  windowEnded: number;
  /** truncates whose shrink the host never published (regrown before the helper looked, or lost): counted */
  untoldCuts: number;
  /** agent restarts in the history */
  restarts: number;
  /** reads that returned on a descriptor opened before the host published the removal of its file (EOF fine, data d-removed; the EIO the product gives is the reader's count) */
  heldAcrossRemoval: number;
  /** foreign bytes seen inside the documented truncate/unlink window (allowed, counted) */
  windowForeign: number;
  /** guest truncate/unlink → host published it: the largest seen (ms) */
  maxShrinkLagMs: number;
  /** reads of a name no guest file was bound to (after a removal), with no data: fine */
  ops: number;
  /** workload self-check: files whose model differs from the guest's final sha256 */
  modelMismatches: string[];
}

export interface CheckerOptions {
  /** documented visibility window W (ms): a state the guest left less than W before a read may still be served */
  windowMs: number;
  maxEvidence?: number;
  /** a removal of a file the host showed must be published within this (ms; default 60 s), or by the end of the history */
  untoldGraceMs?: number;
  /** patterns that are no guest file's but may be read if the host maps wrongly (the bytes around a raw window), to name them */
  outside?: { name: string; key: number; gen: number; max: number }[];
}

interface Op {
  op: GuestOp;
  h0: number;
  h1: number;
  /** for writes: the parts of the range that read as zeros before (a hole, unwritten, a gap) */
  wasZero?: { s: number; e: number }[];
}
/** Guest file `key` is at a path from `from` to `to` (host time); `endH0`: when the op that ended it began. */
interface Binding { key: number; from: number; to: number; endH0: number }

const hex = (b: Buffer) => b.toString('hex');

/** The first index of `l` (in time order) whose time is at or after `t`. */
function firstAtOrAfter(l: HostEvent[], t: number): number {
  let lo = 0;
  let hi = l.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (l[mid]!.t < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Checker {
  private readonly ops: Op[] = [];
  private applied = 0; // ops[0..applied) are in `base`
  private dropped = 0; // ops before this index were discarded (index offset)
  private readonly base = new Map<number, FileModel>();
  private readonly latest = new Map<number, FileModel>();
  private readonly appendOnly = new Set<number>();
  private readonly notAppend = new Set<number>();
  private readonly bindings = new Map<string, Binding[]>();
  /** byte ranges the guest freed: truncated away, unlinked, or replaced by a rename over the file's name */
  private readonly frees: { o: Op; key: number; from: number; to: number; kind: 'end' | 'cut' | 'punch' }[] = [];
  /** each key's punched holes, matched to its shrinks (remaps) in order like cuts */
  private readonly punchesByKey = new Map<number, Op[]>();
  private readonly punchToldAt = new WeakMap<Op, number>();
  private readonly timeline = new Map<number, { t: number; size: number }[]>();
  private readonly seen = new Map<string, { k: number; g: number; max: number }>();
  /** host events by path, in time order: shrinks and removals (`ended`), and shows with removals (`shown`) */
  private readonly ended = new Map<string, HostEvent[]>();
  private readonly shown = new Map<string, HostEvent[]>();
  private readonly restartsAt: number[] = [];
  private readonly pending: ReadRecord[] = [];
  private readonly lastSize = new Map<string, { size: number; t: number }>(); // reader:key → size, when
  /** whole-file ends at a path (unlink, revoke, rename away or over): each must be published (d-untold) */
  private readonly ends: { o: Op; key: number; path: string }[] = [];
  /** truncates that cut bytes off: counted at the end if the host never published a shrink after them */
  private readonly cuts: { o: Op; key: number }[] = [];
  private readonly cutsByKey = new Map<number, Op[]>();
  /** when the host published a binding's end / a cut, once found (it never changes after) */
  private readonly endToldAt = new WeakMap<Binding, number>();
  private readonly cutToldAt = new WeakMap<Op, number>();
  private lastHostT = -Infinity;
  private readonly staleness: number[] = [];
  private endOp?: Extract<GuestOp, { op: 'end' }>;
  private horizon = -Infinity;
  private readonly r: Report;

  constructor(private readonly opts: CheckerOptions, private clock: Clock) {
    this.r = {
      reads: 0, bytes: 0, readsByKind: {}, evidence: [], maxStalenessMs: 0, p50StalenessMs: 0, p99StalenessMs: 0, staleReads: 0,
      windowForeign: 0, maxShrinkLagMs: 0, staleRuns: 0, maxStaleValueMs: 0, windowShrink: 0, windowEnded: 0, untoldCuts: 0, restarts: 0, heldAcrossRemoval: 0, ops: 0, modelMismatches: [],
      violations: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>,
      violatingBytes: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>,
    };
  }

  setClock(c: Clock): void { this.clock = c; }

  /** Guest operations, in log order. */
  addOps(ops: GuestOp[]): void {
    for (const op of ops) {
      const a = this.clock.toHost(op.t0);
      const b = this.clock.toHost(op.t1);
      const o: Op = { op, h0: a.t - a.err, h1: b.t + b.err };
      this.ops.push(o);
      this.r.ops++;
      this.horizon = Math.max(this.horizon, b.t - 3 * b.err); // ops not fetched yet start after this, even with the clock error
      this.track(o);
    }
  }

  addHostEvent(ev: HostEvent): void {
    this.lastHostT = Math.max(this.lastHostT, ev.t);
    const into = (m: Map<string, HostEvent[]>) => {
      const l = m.get(ev.path) ?? [];
      let i = l.length;
      while (i > 0 && l[i - 1]!.t > ev.t) i--;
      l.splice(i, 0, ev);
      m.set(ev.path, l);
    };
    if (ev.kind === 'restart') { this.r.restarts++; this.restartsAt.push(ev.t); return; }
    if (ev.kind !== 'shrink') into(this.shown);
    if (ev.kind === 'show') return;
    into(this.ended);
    // lag: the latest shrinking guest op, not matched before, on a key bound to that path
    for (let i = this.ops.length - 1; i >= 0 && i >= this.ops.length - 2000; i--) {
      const o = this.ops[i]!;
      if (o.h0 > ev.t) continue;
      if (ev.t - o.h1 > 60_000 || this.lagMatched.has(o)) break;
      if (this.shrinks(o.op) && this.boundKeys(ev.path, o.h0 - 1, ev.t).includes((o.op as { key: number }).key)) {
        this.lagMatched.add(o);
        this.r.maxShrinkLagMs = Math.max(this.r.maxShrinkLagMs, ev.t - o.h1);
        break;
      }
    }
  }
  private readonly lagMatched = new WeakSet<Op>();

  addRead(r: ReadRecord): void {
    this.lastHostT = Math.max(this.lastHostT, r.e);
    this.pending.push(r);
  }

  /** Checks every pending read that started before `startedBefore` and ended before the log's horizon. */
  drain(startedBefore: number): void {
    for (const r of this.takeReady(startedBefore)) this.check(r);
  }

  /**
   * drain() that yields to the event loop every `sliceMs`: a run's checker shares its process with the
   * agent, FUSE and the gateway, and checking a backlog of 16 MiB reads at once stalled them for 7-18 s.
   */
  async drainYielding(startedBefore: number, sliceMs = 20): Promise<void> {
    let t = performance.now();
    for (const r of this.takeReady(startedBefore)) {
      this.check(r);
      if (performance.now() - t > sliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        t = performance.now();
      }
    }
  }

  /** Pending reads that can be checked now, in order of start; the rest stay pending. */
  private takeReady(startedBefore: number): ReadRecord[] {
    const isReady = (r: ReadRecord) => r.s < startedBefore && r.e < this.horizon;
    const ready = this.pending.filter(isReady);
    if (ready.length === 0) return [];
    const keep = this.pending.filter((r) => !isReady(r));
    this.pending.length = 0;
    this.pending.push(...keep);
    return ready.sort((a, b) => a.s - b.s);
  }

  /** Reads waiting to be checked (the readers' backpressure). */
  get backlog(): number { return this.pending.length; }

  /** All ops are in (the log ended with `end`): check the rest and return the report. */
  finish(): Report {
    this.horizon = Infinity;
    this.drain(Infinity);
    if (this.endOp) {
      for (const f of this.endOp.files) {
        const m = this.latest.get(f.key);
        const sha = m ? createHash('sha256').update(m.bytes(0, m.size)).digest('hex') : '';
        if (!m || m.size !== f.size || sha !== f.sha256) this.r.modelMismatches.push(`${f.path} (key ${f.key}): guest ${f.size} B ${f.sha256.slice(0, 12)}, model ${m?.size} B ${sha.slice(0, 12)}`);
      }
    } else this.r.modelMismatches.push('the workload log has no end record');
    this.judgeUntold();
    const s = [...this.staleness].sort((a, b) => a - b);
    this.r.staleReads = s.filter((x) => x > 0).length;
    this.r.p50StalenessMs = s.length ? s[Math.floor(s.length * 0.5)]! : 0;
    this.r.p99StalenessMs = s.length ? s[Math.floor(s.length * 0.99)]! : 0;
    return this.r;
  }

  get report(): Report { return this.r; }

  private shrinks(op: GuestOp): boolean {
    return op.op === 'unlink' || op.op === 'revoke' || (op.op === 'trunc' && op.size < (this.sizeBefore.get(op) ?? Infinity));
  }

  /**
   * (d) Every whole-file end (unlink, revoke, rename away or over) at a name the host was showing
   * then must be published: a removal of that name (or a restart) after it. Those that end within
   * the grace before the history's last moment are not judged. Truncates are only counted: one
   * regrown before the helper looked never shows the host a shrink (docs/consistency.md).
   */
  private judgeUntold(): void {
    const until = this.lastHostT - (this.opts.untoldGraceMs ?? 60_000);
    for (const x of this.ends) {
      // shown when it began and no restart before it ended (a restart within it withholds the file: nothing owed)
      if (x.o.h1 > until || !this.shownAt(x.path, x.key, x.o.h0) || this.restartIn(x.o.h0, x.o.h1) || this.told(x.path, x.key, x.o, Infinity)) continue;
      const op = x.o.op;
      const v: Violation = {
        kind: 'd-untold', reader: 'host', path: x.path, off: 0, len: 0, s: x.o.h0, e: x.o.h1, at: 0, run: 0, got: '', candidates: [x.key],
        note: `${op.op} of key ${x.key} at ${x.o.h0.toFixed(1)}: the host showed the name and never published its removal`,
      };
      this.r.violations['d-untold']++;
      this.evidence(v);
    }
    for (const c of this.cuts) {
      const path = this.pathOf(c.key, c.o.h0);
      if (path !== undefined && c.o.h1 <= until && this.shownAt(path, c.key, c.o.h0) && !this.toldCut(path, c.key, c.o, Infinity)) this.r.untoldCuts++;
    }
  }

  /** Did the host show `key`'s file at `path` at host time t (its last show/remove there before t was a show of it, and no restart since)? */
  private shownAt(path: string, key: number, t: number): boolean {
    const l = this.shown.get(path) ?? [];
    const i = firstAtOrAfter(l, t) - 1;
    return i >= 0 && l[i]!.kind === 'show' && this.concerns(l[i]!, key) && !this.restartIn(l[i]!.t, t);
  }

  private restartIn(a: number, b: number): boolean {
    return this.restartsAt.some((t) => t > a && t < b);
  }

  /** Did the host publish a removal or a withdrawal to 0 of `key`'s file at `path` at or after `from`, before `s`? */
  private toldAt(path: string, key: number, from: number, s: number): boolean {
    const l = this.ended.get(path) ?? [];
    for (let i = firstAtOrAfter(l, from); i < l.length && l[i]!.t < s; i++) {
      const e = l[i]!;
      if ((e.kind === 'remove' || e.size === 0) && this.concerns(e, key)) return true;
    }
    return false;
  }

  private pathOf(key: number, t: number): string | undefined {
    for (const [p, l] of this.bindings) if (l.some((b) => b.key === key && b.from <= t && b.to >= t)) return p;
    return undefined;
  }
  private readonly sizeBefore = new WeakMap<GuestOp, number>();

  /** Maintains bindings, the latest models, size timelines and the set of (key, gen) seen. */
  private track(o: Op): void {
    const op = o.op;
    const bind = (path: string, key: number) => {
      const l = this.bindings.get(path) ?? [];
      l.push({ key, from: o.h0, to: Infinity, endH0: Infinity });
      this.bindings.set(path, l);
    };
    const unbind = (path: string, key?: number) => {
      for (const b of this.bindings.get(path) ?? []) if (b.to === Infinity && (key === undefined || b.key === key)) { b.to = o.h1; b.endH0 = o.h0; }
    };
    const size = (key: number, m: FileModel) => {
      const l = this.timeline.get(key) ?? [];
      l.push({ t: o.h1, size: m.size });
      while (l.length > 1 && l[0]!.t < o.h1 - 120_000) l.shift();
      this.timeline.set(key, l);
    };
    if (op.op === 'end') { this.endOp = op; return; }
    if (op.op === 'trim') return;
    if (op.op === 'create' || op.op === 'copy') {
      if (op.ino !== undefined) {
        this.inodes.set(op.key, op.ino);
        this.byInode.set(op.ino, [...(this.byInode.get(op.ino) ?? []), op.key]);
      }
      this.born.set(op.key, o.h0);
    }
    if (op.op === 'revoke') { unbind(op.path, op.key); this.ends.push({ o, key: op.key, path: op.path }); return; }
    if (op.op === 'create') {
      const m = new FileModel(op.key);
      this.latest.set(op.key, m);
      if (/\/(app\.log|churn-\d+\.bin|revoke\.log)$/.test(op.path)) this.appendOnly.add(op.key);
      bind(op.path, op.key);
      size(op.key, m);
      return;
    }
    if (op.op === 'copy') {
      const m = this.latest.get(op.from)!.clone(op.key);
      this.latest.set(op.key, m);
      this.appendOnly.add(op.key);
      bind(op.path, op.key);
      size(op.key, m);
      return;
    }
    if (op.op === 'rename') {
      for (const b of this.bindings.get(op.to) ?? []) if (b.to === Infinity && b.key !== op.key) { this.freed(o, b.key, 0, this.latest.get(b.key)?.size ?? 0, 'end'); this.ends.push({ o, key: b.key, path: op.to }); }
      if ((this.bindings.get(op.from) ?? []).some((b) => b.to === Infinity && b.key === op.key)) this.ends.push({ o, key: op.key, path: op.from });
      unbind(op.from, op.key);
      unbind(op.to);
      bind(op.to, op.key);
      return;
    }
    if (op.op === 'unlink') {
      if ((this.bindings.get(op.path) ?? []).some((b) => b.to === Infinity && b.key === op.key)) this.ends.push({ o, key: op.key, path: op.path });
      unbind(op.path, op.key);
      this.freed(o, op.key, 0, this.latest.get(op.key)?.size ?? 0, 'end');
      return;
    }
    const m = this.latest.get(op.key);
    if (!m) throw new Error(`workload log: op on unknown key ${op.key}`);
    this.sizeBefore.set(op, m.size);
    if (op.op === 'write') {
      if (op.off !== m.size) this.notAppend.add(op.key);
      o.wasZero = m.slice(op.off, op.off + op.len).filter((x) => x.k === 0).map((x) => ({ s: x.s, e: x.e }));
      m.put(op.off, op.off + op.len, op.src, op.sgen);
      if (op.src) { // zeros written (src 0) are no pattern to identify
        const id = `${op.src}:${op.sgen}`;
        const s = this.seen.get(id) ?? { k: op.src, g: op.sgen, max: 0 };
        s.max = Math.max(s.max, op.off + op.len);
        this.seen.set(id, s);
      }
    } else if (op.op === 'punch') {
      this.notAppend.add(op.key);
      const e = Math.min(m.size, op.off + op.len);
      if (e > op.off) {
        this.freed(o, op.key, op.off, e, 'punch');
        m.put(op.off, e, 0, 0);
        const l = this.punchesByKey.get(op.key) ?? [];
        l.push(o);
        this.punchesByKey.set(op.key, l);
      }
    } else if (op.op === 'trunc') {
      this.notAppend.add(op.key);
      if (op.size < m.size) {
        this.freed(o, op.key, op.size, m.size, 'cut');
        this.cuts.push({ o, key: op.key });
        const l = this.cutsByKey.get(op.key) ?? [];
        l.push(o);
        this.cutsByKey.set(op.key, l);
      }
      m.setSize(op.size);
    } else if (op.op === 'falloc') {
      this.notAppend.add(op.key);
      if (op.off + op.len > m.size) m.setSize(op.off + op.len);
    }
    if (this.appendOnly.has(op.key) && this.notAppend.has(op.key)) throw new Error(`workload log: append-only key ${op.key} was not appended to`);
    size(op.key, m);
  }

  private freed(o: Op, key: number, from: number, to: number, kind: 'end' | 'cut' | 'punch'): void {
    this.frees.push({ o, key, from, to, kind });
    if (this.frees.length > 20_000) this.frees.splice(0, 10_000);
  }

  /**
   * Has the host published a change of `path` since `o` began, before `s`? (the end of o's window)
   * A restart ends the window of every op that had ended before it: the new agent serves only what
   * the guest reported again.
   */
  /**
   * Was the host told of unlink or rename-away `o` before `s`: the file's removal or its withdrawal
   * to 0, or a restart — not a remap's cut (a re-verify of the file the host still shows, e.g. after a
   * discard, cuts it where its freed blocks were reused and regrows it: the host is not told by that).
   */
  private told(path: string, key: number, o: Op, s: number): boolean {
    return this.toldAt(path, key, o.h0, s) || this.restartIn(o.h1, s);
  }

  /** guest inode of each key (from its create/copy), to tell which file a host event concerns */
  private readonly inodes = new Map<number, number>();

  /**
   * Does host event `e` end the window of `key`? Only an event about that file does: under a host
   * lag, the host may start serving a file (replacing the one before at its name) after the guest
   * has already unlinked it, and that replacement ends the earlier file's window, not this one's.
   */
  private concerns(e: HostEvent, key: number): boolean {
    const ino = this.inodes.get(key);
    if (e.ino === undefined || ino === undefined) return true;
    if (e.ino !== ino) return false;
    const owner = this.ownerOf(e as HostEvent & { ino: number });
    return owner === undefined || owner === key;
  }

  /**
   * ext4 reuses a freed inode number at once (churn: unlink, then create): an event is about the
   * file the host last showed with its inode — the one born last before that show. Undefined: it
   * cannot be told (never shown here). Cached: the shows before an event do not change.
   */
  private ownerOf(e: HostEvent & { ino: number }): number | undefined {
    if (this.owners.has(e)) return this.owners.get(e);
    let show = e.t;
    if (e.kind !== 'show') {
      const l = this.shown.get(e.path) ?? [];
      // the shows before e in arrival order (a removal and the next file's show share a millisecond)
      const at = l.lastIndexOf(e);
      let i = (at >= 0 ? at : firstAtOrAfter(l, e.t)) - 1;
      while (i >= 0 && !(l[i]!.kind === 'show' && l[i]!.ino === e.ino)) i--;
      show = i >= 0 ? l[i]!.t : NaN;
    }
    let owner: number | undefined;
    if (!Number.isNaN(show)) for (const k of this.byInode.get(e.ino) ?? []) if ((this.born.get(k) ?? Infinity) <= show) owner = k;
    this.owners.set(e, owner);
    return owner;
  }

  private readonly owners = new WeakMap<HostEvent, number | undefined>();

  /** keys by inode number, in the order they were born */
  private readonly byInode = new Map<number, number[]>();
  /** when each key's file was created (host time), to tell a reused inode number's files apart */
  private readonly born = new Map<number, number>();

  /**
   * A shrink the host published after `o` (a truncate) ended, before `s`: a withdrawal to 0 (what the
   * helper sends when it sees a file shrink), a removal or a restart — not a remap's cut, which may
   * come from a report taken before the truncate.
   */
  private toldCut(path: string, key: number, o: Op, s: number): boolean {
    let t = this.cutToldAt.get(o);
    if (t === undefined) {
      const evs = (this.ended.get(path) ?? []).filter((e) => (e.kind === 'remove' || e.size === 0) && this.concerns(e, key)).map((e) => e.t);
      t = this.matchTold(o.h0, o.h1, (this.cutsByKey.get(key) ?? []).filter((c) => c !== o).map((c) => c.h0), evs);
      if (t !== Infinity) this.cutToldAt.set(o, t);
    }
    return t < s;
  }

  /** A punched hole's shrink (the remap from its first byte, or a withdrawal) published after it ended, before `s`, matched in order with the file's other cuts and punches. */
  private toldPunch(path: string, key: number, o: Op, s: number): boolean {
    let t = this.punchToldAt.get(o);
    if (t === undefined) {
      const evs = (this.ended.get(path) ?? []).filter((e) => this.concerns(e, key)).map((e) => e.t);
      const others = [...(this.punchesByKey.get(key) ?? []), ...(this.cutsByKey.get(key) ?? [])].filter((x) => x !== o).map((x) => x.h0);
      t = this.matchTold(o.h0, o.h1, others, evs);
      if (t !== Infinity) this.punchToldAt.set(o, t);
    }
    return t < s;
  }

  /**
   * When the host published the end that began at `h0` (ended by `h1`): ends at one path reach the
   * host in order, each published once at most (two seen in one look, once), so an event after it
   * may still be an earlier end's — as many as the earlier ends (`others`, their starts) not
   * published before it began. The first event after those, or a restart after `h1`; Infinity if
   * none yet. Lenient when an earlier end was never published (a file the host never showed).
   */
  private matchTold(h0: number, h1: number, others: number[], evs: number[]): number {
    const marks = [...others.filter((x) => x < h0).map((t) => ({ t, end: true })), ...evs.filter((t) => t < h0).map((t) => ({ t, end: false })), ...this.restartsAt.filter((t) => t < h0).map((t) => ({ t, end: false, restart: true }))]
      .sort((a, b) => a.t - b.t);
    let debt = 0;
    for (const m of marks) debt = 'restart' in m ? 0 : m.end ? debt + 1 : Math.max(0, debt - 1);
    let need = debt + 1;
    let t = Infinity;
    for (const e of evs) if (e > h1 && --need === 0) { t = e; break; }
    for (const r of this.restartsAt) if (r > h1) t = Math.min(t, r);
    return t;
  }

  /**
   * Freed before the host was told: a range of [a, b) that one of `keys` freed (truncated away,
   * unlinked, punched, or replaced by a rename over its name) before `e` — 'open' if the host had
   * not been told before `s` (the documented window: anything may be there), 'told' if it had.
   */
  private freedAt(path: string, keys: number[], a: number, b: number, s: number, e: number): 'open' | 'told' | undefined {
    let hit: 'told' | undefined;
    for (const f of this.frees) {
      if (f.o.h0 > e || !keys.includes(f.key) || f.from >= b || f.to <= a) continue;
      // a truncate's or punch's window ends with its own shrink, which may come after an earlier one's
      const told = f.kind === 'cut' ? this.toldCut(path, f.key, f.o, s) : f.kind === 'punch' ? this.toldPunch(path, f.key, f.o, s) : this.told(path, f.key, f.o, s);
      if (!told) return 'open';
      hit = 'told';
    }
    return hit;
  }

  private boundKeys(path: string, a: number, b: number): number[] {
    return [...new Set((this.bindings.get(path) ?? []).filter((x) => x.from <= b && x.to >= a).map((x) => x.key))];
  }

  /**
   * The files a read of `path` over [s, e] may show: those bound to it within [s − W, e], and those
   * renamed away or unlinked earlier whose end the host had not published before s (docs/host.md,
   * "Freed blocks": the window ends when the host is told, however late that is).
   */
  private candidates(path: string, s: number, e: number): number[] {
    // once the host has published the end (removal, restart), never again — W does not extend it (d)
    return [...new Set((this.bindings.get(path) ?? []).filter((x) => x.from <= e && (x.to === Infinity || !this.toldEnd(path, x, s))).map((x) => x.key))];
  }

  /** Has the host published the end of binding `b` (its removal from `path`, or a restart) before `s`? */
  private toldEnd(path: string, b: Binding, s: number): boolean {
    return this.endTold(path, b) < s;
  }

  /** When the host published the end of binding `b` (Infinity: not yet). */
  private endTold(path: string, b: Binding): number {
    let t = this.endToldAt.get(b);
    if (t === undefined) {
      const removals = (this.ended.get(path) ?? []).filter((e) => e.kind === 'remove');
      const ino = this.inodes.get(b.key);
      // the removal of this very file, at or after its end began; removals that name no inode are
      // matched to the ends at the path in order
      const own = ino === undefined ? undefined : removals.find((e) => e.t >= b.endH0 && e.ino !== undefined && this.concerns(e, b.key));
      const anon = removals.filter((e) => ino === undefined || e.ino === undefined).map((e) => e.t);
      const others = (this.bindings.get(path) ?? []).filter((x) => x !== b && x.to !== Infinity).map((x) => x.endH0);
      t = Math.min(own?.t ?? Infinity, this.matchTold(b.endH0, b.to, others, anon));
      if (t !== Infinity) this.endToldAt.set(b, t);
    }
    return t;
  }

  /** Keys once at `path` whose end the host had published before `s`: their bytes must not be served there (d-removed). */
  private goneKeys(path: string, s: number): number[] {
    return [...new Set((this.bindings.get(path) ?? []).filter((x) => x.from < s && x.to !== Infinity && this.toldEnd(path, x, s)).map((x) => x.key))];
  }

  /** Applies op to a model map (base replay and per-read scratch copies). */
  private apply(models: Map<number, FileModel>, op: GuestOp): FileModel | undefined {
    switch (op.op) {
      case 'create': { const m = new FileModel(op.key); models.set(op.key, m); return m; }
      case 'copy': { const src = models.get(op.from); const m = src ? src.clone(op.key) : new FileModel(op.key); models.set(op.key, m); return m; }
      case 'write': { const m = models.get(op.key); m?.put(op.off, op.off + op.len, op.src, op.sgen); return m; }
      case 'trunc': { const m = models.get(op.key); m?.setSize(op.size); return m; }
      case 'falloc': { const m = models.get(op.key); if (m && op.off + op.len > m.size) m.setSize(op.off + op.len); return m; }
      case 'punch': { const m = models.get(op.key); if (m) m.put(op.off, Math.min(m.size, op.off + op.len), 0, 0); return m; }
      default: return undefined;
    }
  }

  private opAt(i: number): Op { return this.ops[i - this.dropped]!; }

  private check(r: ReadRecord): void {
    const W = this.opts.windowMs;
    const A = r.s - W;
    // advance the base replay to A; drop what no later read can need
    while (this.applied - this.dropped < this.ops.length && this.opAt(this.applied).h1 < A) this.apply(this.base, this.opAt(this.applied++).op);
    const keepFrom = this.applied - this.dropped - 5000;
    if (keepFrom > 5000) { this.ops.splice(0, keepFrom); this.dropped += keepFrom; }
    this.r.reads++;
    this.r.bytes += r.data.length;
    this.r.readsByKind[r.kind] = (this.r.readsByKind[r.kind] ?? 0) + 1;
    const n = r.data.length;
    // case 2's coverage: a read on a descriptor opened before the host published the end of the file it showed
    if (r.opened !== undefined) {
      const opened = r.opened;
      if ((this.bindings.get(r.path) ?? []).some((b) => b.from <= opened && b.to !== Infinity && b.to >= opened - this.opts.windowMs && ((t) => t > opened && t < r.s)(this.endTold(r.path, b)))) this.r.heldAcrossRemoval++;
    }
    // tail's chunks are stamped when they arrive, not when tail read them; tail follows only
    // append-only files, whose bytes never change: any file that was at the path will do
    const cands = r.kind === 'tail' ? this.boundKeys(r.path, -Infinity, r.e) : this.candidates(r.path, r.s, r.e);
    const bound = new Set(this.boundKeys(r.path, A, r.e));
    // files no longer at the path within the window, allowed only because the host was not told yet
    const endedKeys = new Set<number>(r.kind === 'tail' ? [] : cands.filter((k) => !bound.has(k)));
    // layers of possible values: each candidate's state at A, then what each op within [A, e] changed;
    // seq orders them (the base is -1) so that a cut the host published hides the layers before it
    const layers: { key: number; seq: number; segs: Seg[] }[] = [];
    const scratch = new Map<number, FileModel>();
    // the ops that may have happened within [A, e]; copies into a candidate need their source too
    const during: Op[] = [];
    for (let i = this.applied; i - this.dropped < this.ops.length; i++) {
      const o = this.opAt(i);
      if (o.h0 > r.e) break;
      during.push(o);
    }
    const keys = new Set(cands);
    for (const o of during) if (o.op.op === 'copy' && keys.has(o.op.key)) keys.add(o.op.from);
    for (const k of keys) {
      const b = this.base.get(k);
      if (!b) continue;
      scratch.set(k, b.clone());
      if (cands.includes(k)) layers.push({ key: k, seq: -1, segs: b.slice(r.off, r.off + n) });
    }
    // (c)/(d) cuts the host had published before s: bytes past them from before them are gone
    const cuts = new Map<number, { seq: number; from: number; to: number }[]>();
    for (const [seq, o] of during.entries()) {
      const op = o.op;
      if ('key' in op && keys.has(op.key)) {
        const before = scratch.get(op.key)?.size ?? 0;
        if (op.op === 'trunc' && op.size < before && r.kind !== 'tail' && this.toldCut(r.path, op.key, o, r.s)) {
          const l = cuts.get(op.key) ?? [];
          l.push({ seq, from: op.size, to: before });
          cuts.set(op.key, l);
        }
        const m = this.apply(scratch, op);
        if (!m || !cands.includes(op.key)) continue;
        const push = (a: number, b: number) => layers.push({ key: op.key, seq, segs: m.slice(a, b) });
        if (op.op === 'write') push(Math.max(r.off, Math.min(before, op.off)), Math.min(r.off + n, op.off + op.len));
        else if (op.op === 'punch') push(Math.max(r.off, op.off), Math.min(r.off + n, op.off + op.len));
        else if (op.op === 'copy') push(r.off, r.off + n);
        else if (m.size > before) push(Math.max(r.off, before), Math.min(r.off + n, m.size));
      }
    }
    /** [s, e) less the cuts of `key` published after layer `seq` */
    const allowed = (key: number, seq: number, s: number, e: number): [number, number][] => {
      let out: [number, number][] = [[s, e]];
      for (const c of cuts.get(key) ?? []) {
        if (c.seq <= seq) continue;
        out = out.flatMap(([a, b]) => (c.to <= a || c.from >= b ? [[a, b]] : [...(a < c.from ? [[a, c.from]] : []), ...(b > c.to ? [[c.to, b]] : [])]) as [number, number][]);
      }
      return out;
    };
    // resolve every byte against the layers: those of files still at the path first, so that a read
    // counts as one of an ended file only if it needed one
    layers.sort((x, y) => Number(endedKeys.has(x.key)) - Number(endedKeys.has(y.key)));
    const ok = new Uint8Array(n);
    const covered = new Uint8Array(n);
    let left = n;
    let neededEnded = false;
    for (const l of layers) {
      if (left === 0) break;
      for (const x of l.segs) {
        for (const [a, b] of allowed(l.key, l.seq, x.s, x.e)) {
          const i0 = a - r.off;
          const len = b - a;
          if (len <= 0) continue;
          covered.fill(1, i0, i0 + len);
          const want = x.k ? pattern(x.k, x.g, a, len) : Buffer.alloc(len);
          const got = r.data.subarray(i0, i0 + len);
          const before = left;
          if (got.equals(want)) {
            for (let i = i0; i < i0 + len; i++) if (!ok[i]) { ok[i] = 1; left--; }
          } else {
            for (let i = 0; i < len; i++) if (!ok[i0 + i] && got[i] === want[i]) { ok[i0 + i] = 1; left--; }
          }
          if (left < before && endedKeys.has(l.key)) neededEnded = true;
        }
      }
    }
    if (neededEnded && n > 0) this.r.windowEnded++;
    const kinds = new Set<ViolationKind>();
    const foreignBefore = this.r.windowForeign;
    if (left > 0) {
      // bad regions: unresolved bytes of one class (NUL or not, inside a layer or not); a few bytes
      // that match by chance (a pattern byte is one of 128 values) do not split a region
      let i = 0;
      let classified = 0;
      while (i < n) {
        if (ok[i]) { i++; continue; }
        const nul = r.data[i] === 0;
        const cov = covered[i];
        const same = (x: number) => !ok[x] && (r.data[x] === 0) === nul && covered[x] === cov;
        let j = i + 1;
        let bad = 1;
        for (let x = i + 1; x < n && x < j + 32; x++) if (same(x)) { j = x + 1; bad++; } else if (!ok[x]) break;
        const v = this.classify(r, i, j, nul, !!cov, cands, classified++ < 3); // identifying is costly, and the checker shares the agent's event loop
        if (v && !kinds.has(v.kind)) v.ops = this.opsTouching(v.candidates.length ? v.candidates : this.boundKeys(r.path, -Infinity, r.e), r.off + i, r.off + j, r.s);
        if (v) {
          this.r.violatingBytes[v.kind] += bad;
          if (!kinds.has(v.kind)) { kinds.add(v.kind); this.evidence(v); }
        }
        i = j;
      }
    }
    // (b) append-only: a prefix of the file, sizes that never shrink (unless (a) allowed freed blocks' bytes in it)
    if (this.r.windowForeign === foreignBefore && cands.length > 0 && cands.every((k) => this.appendOnly.has(k)) && n > 0) {
      const prefix = cands.some((k) => {
        const m = this.latest.get(k)!;
        return r.off + n <= m.size && m.bytes(r.off, r.off + n).equals(r.data);
      });
      if (!prefix) { kinds.add('b-prefix'); this.evidence(this.violation('b-prefix', r, 0, n, cands, 'not a prefix of the file')); this.r.violatingBytes['b-prefix'] += n; }
    }
    if (r.eof && cands.length === 1 && this.appendOnly.has(cands[0]!)) {
      const id = `${r.reader}:${cands[0]}`;
      const size = r.off + n;
      // a restart makes every composition anew (laid out again, perhaps with a pending tail): sizes start over
      const prev = this.lastSize.get(id);
      const last = prev && !this.restartIn(prev.t, r.s) ? prev.size : 0;
      // once the host has withdrawn the file (removed it, or given its name to another), a read ends
      // early (EIO or end of file) — issue 14's rule for open handles — and that is no shrink
      const since = (this.bindings.get(r.path) ?? []).find((b) => b.key === cands[0])?.from ?? Infinity;
      const withdrawn = (this.ended.get(r.path) ?? []).some((e) => e.kind === 'remove' && e.t >= since && e.t <= r.e && this.concerns(e, cands[0]!));
      if (size < last && !withdrawn) { kinds.add('b-shrink'); this.evidence(this.violation('b-shrink', r, 0, n, cands, `size ${size} after ${last}`)); }
      this.lastSize.set(id, { size: Math.max(last, size), t: r.s });
    }
    for (const k of kinds) this.r.violations[k]++;
    if (r.kind === 'webhdfs' && cands.length === 1 && this.notAppend.has(cands[0]!) && left === 0) this.recordGateway(cands[0]!, r);
    if (r.eof && r.kind !== 'tail' && cands.length > 0) {
      const st = Math.min(...cands.map((k) => this.stale(k, r.off + n, r.s)));
      this.staleness.push(st);
      if (st > this.r.maxStalenessMs) this.r.stalest = `${r.reader} ${r.path} size ${r.off + n} at ${r.s.toFixed(1)}, keys ${cands.join(',')}`;
      this.r.maxStalenessMs = Math.max(this.r.maxStalenessMs, st);
    }
  }

  /**
   * If [a, b) read as zeros before the last write to it that ended before `before`, and that write
   * is the only thing that made it non-zero, how long before `s` it ended.
   */
  private staleZeroAge(cands: number[], a: number, b: number, before: number, s: number): number | undefined {
    let age = 0;
    for (let p = a; p < b;) {
      // the first write to p since the file's last truncate/creation: zeros stopped being its bytes there
      let first: Op | undefined;
      for (let i = this.ops.length - 1; i >= 0; i--) {
        const o = this.ops[i]!;
        const op = o.op;
        if (o.h1 >= before || !('key' in op) || !cands.includes(op.key)) continue;
        if (op.op === 'trunc' || op.op === 'copy' || op.op === 'create') break;
        if (op.op === 'write' && op.off <= p && op.off + op.len > p) first = o;
      }
      const w = first?.op;
      if (!first || w?.op !== 'write') return undefined;
      const z = first.wasZero?.find((x) => x.s <= p && x.e > p);
      if (!z) return undefined;
      const end = Math.min(b, w.off + w.len, z.e);
      age = Math.max(age, s - first.h1);
      p = end;
    }
    return age;
  }

  private readonly gateway = new Map<number, { a: number; b: number; s: number; t: number }[]>();

  /** Remembers where a fully valid gateway read of a non-append file returned non-zero bytes. */
  private recordGateway(key: number, r: ReadRecord): void {
    const l = this.gateway.get(key) ?? [];
    const d = r.data;
    for (let i = 0; i < d.length;) {
      if (d[i] === 0) { i++; continue; }
      let j = i;
      while (j < d.length && d[j] !== 0) j++;
      l.push({ a: r.off + i, b: r.off + j, s: r.s, t: r.e });
      i = j;
    }
    while (l.length > 0 && l[0]!.t < r.e - 120_000) l.shift();
    this.gateway.set(key, l);
  }

  /** When a gateway read within (written, s) showed non-zero bytes inside [a, b), if one did: the written bytes, then. */
  private gatewayShowed(cands: number[], a: number, b: number, written: number, s: number): number | undefined {
    if (cands.length !== 1) return undefined;
    for (const g of this.gateway.get(cands[0]!) ?? []) if (g.s > written && g.t < s && g.a < b && g.b > a) return g.t;
    return undefined;
  }

  private opsTouching(cands: number[], a: number, b: number, s: number): string[] {
    const out: string[] = [];
    for (const o of this.ops) {
      const op = o.op;
      if (!('key' in op) || !cands.includes(op.key)) continue;
      const touches = op.op === 'write' ? op.off < b && op.off + op.len > a : op.op !== 'rename' && op.op !== 'create';
      if (!touches) continue;
      const { t0: _t0, t1: _t1, key: _k, ...rest } = op as GuestOp & { key: number };
      out.push(`${JSON.stringify(rest)} at ${(o.h0 - s).toFixed(0)}..${(o.h1 - s).toFixed(0)} ms`);
    }
    return out.slice(-6);
  }

  /** How long before `t` the guest's file `key` had already grown past `size` (0: it had not). */
  private stale(key: number, size: number, t: number): number {
    const l = this.timeline.get(key) ?? [];
    // the host withdraws a file that shrank and describes it again (docs/protocol.md): after a
    // shrink, smaller sizes are counted from the shrink, not from when the file first grew past them
    let j = -1;
    let from = 0;
    for (let i = 0; i < l.length && l[i]!.t <= t; i++) {
      if (i > 0 && l[i]!.size < l[i - 1]!.size) { from = i; j = i - 1; }
      if (l[i]!.size <= size) j = i;
    }
    const next = l[Math.max(j + 1, from)];
    if (!next || next.t > t || next.size <= size) return 0;
    return Math.max(0, t - next.t);
  }

  private violation(kind: ViolationKind, r: ReadRecord, i: number, j: number, cands: number[], note?: string): Violation {
    return {
      kind, reader: r.reader, path: r.path, off: r.off, len: r.data.length, s: r.s, e: r.e, at: r.off + i, run: j - i,
      got: hex(r.data.subarray(i, Math.min(j, i + 16))), candidates: cands, note,
    };
  }

  private evidence(v: Violation): void {
    // at most 10 of each kind, so one flood of a kind cannot hide the others
    const same = this.r.evidence.filter((x) => x.kind === v.kind).length;
    if (same < 10 && this.r.evidence.length < (this.opts.maxEvidence ?? 50)) this.r.evidence.push(v);
  }

  /** Names a bad run; undefined when it is allowed (anything inside the truncate/unlink window). */
  private classify(r: ReadRecord, i: number, j: number, nul: boolean, covered: boolean, cands: number[], identify: boolean): Violation | undefined {
    const want = () => {
      for (const k of cands) {
        const b = this.base.get(k);
        const at = r.off + i;
        if (b && at < b.size) return hex(b.bytes(at, Math.min(b.size, at + Math.min(16, j - i))));
      }
      return undefined;
    };
    // freed before the host was told — cut off by a truncate, unlinked, punched, replaced by a rename
    // over the name: the range holds whatever its blocks hold now (other files' bytes, zeros,
    // metadata), inside a size the file has or past it (the documented truncate/unlink window)
    const everBound = [...new Set((this.bindings.get(r.path) ?? []).filter((x) => x.from <= r.e).map((x) => x.key))];
    const freed = this.freedAt(r.path, everBound, r.off + i, r.off + j, r.s, r.e);
    if (freed === 'open') {
      if (covered) this.r.windowForeign++;
      else this.r.windowShrink++;
      return undefined;
    }
    // (d) the bytes of a file whose removal (or a restart) the host had published before the read
    const gone = nul ? undefined : this.goneBytes(r, i, j);
    if (gone !== undefined) return { ...this.violation('d-removed', r, i, j, cands, `the bytes of key ${gone}, whose removal from this name the host had published`), want: want(), identified: `${gone}@${r.off + i}` };
    if (!covered) {
      if (cands.length === 0 && (this.restartIn(-Infinity, r.s) || (this.ended.get(r.path) ?? []).some((e) => e.kind === 'remove' && e.t < r.s)))
        return { ...this.violation('d-removed', r, i, j, cands, 'data on a name whose file the host had removed'), want: want() };
      return { ...this.violation('a-beyond', r, i, j, cands, 'past every size the file had in the window'), want: want() };
    }
    if (nul) {
      // zeros the file really had there before a write the host has not shown yet: stale, not wrong
      const age = this.staleZeroAge(cands, r.off + i, r.off + j, r.s - this.opts.windowMs, r.s);
      if (age !== undefined) {
        // the gateway (no page cache) already served the written bytes there: the host knew, the mount's cached page did not
        const seen = r.kind !== 'webhdfs' ? this.gatewayShowed(cands, r.off + i, r.off + j, r.s - age, r.s) : undefined;
        if (seen) return { ...this.violation('a-cached', r, i, j, cands, `stale zeros ${age.toFixed(0)} ms after the write; the gateway served bytes there at ${seen.toFixed(1)}`), want: want() };
        this.r.staleRuns++;
        if (age > this.r.maxStaleValueMs) { this.r.maxStaleValueMs = age; this.r.stalestValue = `${r.reader} ${r.path} [${r.off + i}+${j - i}] at ${r.s.toFixed(1)}`; }
        return undefined;
      }
      return { ...this.violation('a-nul', r, i, j, cands), want: want() };
    }
    const id = identify ? this.identify(r.off + i, r.data.subarray(i, Math.min(j, i + 16)), cands) : undefined;
    if (id && freed) return { ...this.violation('c-freed', r, i, j, cands, 'another file\'s bytes after the host had published the shrink/removal'), want: want(), identified: id };
    return { ...this.violation('a-wrong', r, i, j, cands), want: want(), identified: id };
  }

  /** A key once at the read's path, its end published before the read, whose bytes these are (at the same offsets). */
  private goneBytes(r: ReadRecord, i: number, j: number): number | undefined {
    if (r.kind === 'tail') return undefined;
    const at = r.off + i;
    const got = r.data.subarray(i, Math.min(j, i + 16));
    if (got.length < 2) return undefined;
    for (const k of this.goneKeys(r.path, r.s)) {
      const m = this.latest.get(k);
      if (m && at + got.length <= m.size && m.bytes(at, at + got.length).equals(got)) return k;
    }
    return undefined;
  }

  /**
   * Whose pattern is this? Same offset first, then any block-aligned offset of any (key, gen). A run
   * of 2–3 bytes (a short write) is only looked for as an earlier generation of the read's own files
   * at the same offset: a few dozen candidates, so a chance match is ~1 in 10^3 for 2 bytes, where
   * searching every block of every file would match by chance.
   */
  private identify(at: number, got: Buffer, cands: number[]): string | undefined {
    if (got.length < 2) return undefined;
    if (got.length < 4) {
      for (const s of this.seen.values()) if (cands.includes(s.k) && at + got.length <= s.max && pattern(s.k, s.g, at, got.length).equals(got)) return `${s.k}:${s.g}@${at}`;
      return undefined;
    }
    for (const s of this.seen.values()) if (at + got.length <= s.max && pattern(s.k, s.g, at, got.length).equals(got)) return `${s.k}:${s.g}@${at}`;
    const inBlock = at % 4096;
    for (const s of this.seen.values()) {
      for (let b = inBlock; b + got.length <= s.max; b += 4096) if (pattern(s.k, s.g, b, got.length).equals(got)) return `${s.k}:${s.g}@${b}`;
    }
    for (const x of this.opts.outside ?? []) {
      for (let b = inBlock; b + got.length <= x.max; b += 4096) if (pattern(x.key, x.gen, b, got.length).equals(got)) return `${x.name}@${b}`;
    }
    return undefined;
  }
}

/** The report as the lines a test or bench prints. */
export function formatReport(r: Report): string {
  const kinds = KINDS.map((k) => `${k} ${r.violations[k]}${r.violatingBytes[k] ? ` (${r.violatingBytes[k]} B)` : ''}`).join(', ');
  const lines = [
    `reads checked ${r.reads} (${Object.entries(r.readsByKind).map(([k, v]) => `${k} ${v}`).join(', ')}), bytes checked ${r.bytes}, guest ops ${r.ops}`,
    `violations: ${KINDS.reduce((s, k) => s + r.violations[k], 0)} — ${kinds}`,
    `staleness at EOF: max ${r.maxStalenessMs.toFixed(0)} ms, p50 ${r.p50StalenessMs.toFixed(0)} ms, p99 ${r.p99StalenessMs.toFixed(0)} ms (${r.staleReads} stale reads${r.stalest ? `; stalest: ${r.stalest}` : ''}); largest shrink/unlink→host lag ${r.maxShrinkLagMs.toFixed(0)} ms; inside the truncate/unlink window (host not told yet): foreign ${r.windowForeign}, past the new size ${r.windowShrink}, reads of a file renamed away, unlinked or revoked ${r.windowEnded}`,
    `agent restarts ${r.restarts}; reads on a descriptor held across its file's removal ${r.heldAcrossRemoval}; truncates whose shrink the host never published ${r.untoldCuts}`,
    `stale zeros (a hole the guest wrote more than W before, not shown yet): ${r.staleRuns} runs, oldest ${r.maxStaleValueMs.toFixed(0)} ms${r.stalestValue ? ` (${r.stalestValue})` : ''}`,
  ];
  if (r.modelMismatches.length) lines.push(`MODEL MISMATCH (workload log ≠ guest files): ${r.modelMismatches.join('; ')}`);
  for (const v of r.evidence.slice(0, 10)) lines.push(formatViolation(v));
  return lines.join('\n');
}

/** One violation as the report prints it. */
export function formatViolation(v: Violation): string {
  return `  ${v.kind} ${v.reader} ${v.path} read [${v.off}+${v.len}] @${v.s.toFixed(1)}–${v.e.toFixed(1)}: bad [${v.at}+${v.run}] got ${v.got}${v.want ? ` want ${v.want}` : ''}${v.identified ? ` = ${v.identified}` : ''} cands ${v.candidates.join(',')}${v.note ? ` (${v.note})` : ''}${v.ops?.length ? `\n      ops: ${v.ops.join('\n           ')}` : ''}`;
}
