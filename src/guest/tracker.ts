// Keeps the host's picture of every shared file current: which paths the host wants, which inodes are
// shared (with consent), and their extents. inotify (fs.watch) on each shared inode and on the
// directories of wanted paths says *when* to look; FIEMAP says *what* changed. Updates are batched as
// in the paper: an update is sent when it has waited `batchMs`, when `batchBytes` are queued, or at
// once when it is not contiguous with the file's previous extent. Truncation and removal go at once.
// A periodic rescan backs inotify up (missed events, consent granted with setfattr, request answers).
import { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import { ConsentSpool, hasConsent } from './consent.js';
import { resolveFileDisk, UnsupportedDeviceError, type FileDisk } from './disks.js';
import { firstDifference, mapFile, runsFrom } from './extents.js';
import { native } from './native.js';
import { EXTENT_UNMAPPABLE, splitFileExtents, type Extent, type Message, type ShareStatus } from './protocol.js';
import { alignDown, firstPending, needsDiskFlush, planReport, type ReportPlan } from './report.js';
import { QuietWatch } from './watch.js';
import { writeFileAtomic } from '../durable/index.js';

const fsyncFd = promisify(fs.fsync);

export interface TrackerOptions {
  /** T: an update is sent at the latest this long after it was seen */
  batchMs: number;
  /** S: queued bytes (new or changed file data awaiting a report) that trigger a send */
  batchBytes: number;
  /** send at once when an update is not contiguous with the file's previous extent */
  sendOnGap: boolean;
  /**
   * flush the disk (a cache flush QEMU answers by writing its qcow2 metadata) before reporting new
   * blocks; off only when the host makes its own consistency points (QMP stop, or a `flush` request)
   */
  diskFlush: boolean;
  /** inotify wakes the helper at most this often per file or directory (QuietWatch) */
  settleMs: number;
  /** backstop rescan of wanted paths and pending requests */
  rescanMs: number;
  /** where the wanted paths survive restarts */
  stateFile: string;
  spool: ConsentSpool;
  log: (msg: string) => void;
}

export const DEFAULT_TRACKER_OPTIONS: Omit<TrackerOptions, 'spool' | 'log'> = {
  batchMs: 0,
  batchBytes: 8 << 20,
  sendOnGap: true,
  diskFlush: true,
  settleMs: 250,
  rescanMs: 1000,
  stateFile: '/var/lib/livemr/shares.json',
};

interface SharedFile {
  id: number;
  fd: number;
  key: string; // dev:ino
  ino: number;
  generation: number;
  path: string;
  disk: FileDisk;
  watcher?: QuietWatch;
  /** what the host has been told */
  reported: Extent[];
  reportedSize: number;
  /**
   * how often the file was withdrawn out of band (a shrink seen by discover): a report planned
   * before a withdrawal describes the file relative to what the host no longer has, so it is dropped
   */
  withdrawals: number;
  /**
   * queued update: earliest changed offset, when it was first seen, bytes concerned, whether a
   * frame goes even without a visible change (renamed; or written: dirty pages in unwritten extents
   * show up only after writeback, which the send forces), and whether the file was written (where,
   * inotify does not say: the host drops its cached pages of the whole file)
   */
  queued?: { from: number; since: number; bytes: number; force: boolean; rewritten: boolean };
  /** inotify saw a write since the last look */
  modified: boolean;
}

interface Wanted {
  path: string;
  /** last status told to the host, so rescans do not repeat it */
  status?: ShareStatus;
  fileId: number;
  pendingId?: string;
  pendingUid?: number;
}

export class Tracker {
  private files = new Map<number, SharedFile>();
  private byKey = new Map<string, SharedFile>();
  private wanted = new Map<string, Wanted>();
  private dirWatchers = new Map<string, QuietWatch>();
  private nextId = 1;
  private batchTimer?: NodeJS.Timeout;
  private rescanTimer?: NodeJS.Timeout;
  private sending: Promise<void> = Promise.resolve();
  requester = 'host';

  constructor(private readonly o: TrackerOptions, private readonly emit: (m: Message) => void) {}

  start(): void {
    for (const path of this.loadWanted()) this.wanted.set(path, { path, fileId: 0 });
    for (const w of this.wanted.values()) this.evaluate(w.path, 0, false);
    const tick = () => { this.rescan(); this.rescanTimer = setTimeout(tick, this.o.rescanMs); };
    this.rescanTimer = setTimeout(tick, this.o.rescanMs);
  }

  stop(): void {
    clearTimeout(this.rescanTimer);
    clearTimeout(this.batchTimer);
    for (const f of [...this.files.values()]) this.drop(f);
    for (const w of this.dirWatchers.values()) w.close();
    this.dirWatchers.clear();
  }

  get sharedCount(): number { return this.files.size; }
  get pendingCount(): number { return [...this.wanted.values()].filter((w) => w.status === 'pending-consent').length; }

  // ------------------------------------------------------------------ host requests

  share(path: string, refSeq: number): void {
    if (!isAbsolute(path) || path.includes('\0')) {
      this.emit({ type: 'shareStatus', refSeq, path, status: 'not-found', fileId: 0, message: 'path must be absolute' });
      return;
    }
    path = normalize(path);
    if (!this.wanted.has(path)) {
      this.wanted.set(path, { path, fileId: 0 });
      this.saveWanted();
    }
    this.watchDir(dirname(path));
    this.evaluate(path, refSeq, true);
  }

  unshare(fileId: number): void {
    const f = this.files.get(fileId);
    if (!f) return;
    for (const w of this.wanted.values()) if (w.fileId === fileId) { this.wanted.delete(w.path); }
    this.saveWanted();
    this.removeFile(f, 'unshared');
  }

  /** Everything the host must know after a (re)connect: every shared file from offset 0. */
  async resync(): Promise<void> {
    await this.serial(async () => {
      for (const f of this.files.values()) { f.reported = []; f.reportedSize = 0; f.queued = { from: 0, since: Date.now(), bytes: 0, force: true, rewritten: false }; }
      await this.sendQueued(true);
      for (const w of this.wanted.values()) {
        if (w.status && w.status !== 'shared') this.emit({ type: 'shareStatus', refSeq: 0, path: w.path, status: w.status, fileId: 0, message: statusText(w.status) });
      }
      this.emit({ type: 'resyncDone', files: this.files.size });
    });
  }

  /** Host asked for a consistency point: write back and report every file now. */
  async flush(refSeq: number): Promise<void> {
    await this.serial(async () => {
      for (const f of this.files.values()) this.discover(f);
      for (const f of this.files.values()) f.queued ??= { from: Infinity, since: Date.now(), bytes: 0, force: false, rewritten: false };
      await this.sendQueued(false, true);
      this.emit({ type: 'flushDone', refSeq });
    });
  }

  // ------------------------------------------------------------------ wanted paths

  /** Decides what the path currently is: shared, pending, or why not. Reports status changes. */
  private evaluate(path: string, refSeq: number, explicit: boolean): void {
    const w = this.wanted.get(path);
    if (!w) return;
    const report = (status: ShareStatus, fileId: number, message = statusText(status)) => {
      if (explicit || status !== w.status) this.emit({ type: 'shareStatus', refSeq, path, status, fileId, message });
      w.status = status;
      w.fileId = fileId;
    };
    let st: fs.Stats;
    try { st = lstatSync(path); } catch { report('not-found', 0); return; }
    if (!st.isFile()) { report('not-regular', 0, 'not a regular file (symlinks are not followed)'); return; }
    const existing = this.byKey.get(`${st.dev}:${st.ino}`);
    if (existing) { existing.path = path; report('shared', existing.id); return; }
    // a file that can never be mapped is refused before its owner is asked for consent
    try { resolveFileDisk(st.dev); } catch (e) { report('unsupported-device', 0, (e as Error).message); return; }
    if (!hasConsent(path)) {
      if (w.pendingId !== undefined && w.pendingUid !== undefined && !this.o.spool.has(w.pendingId, w.pendingUid) && w.status === 'pending-consent') {
        report('denied', 0, 'the owner denied the request');
        w.pendingId = undefined;
        return;
      }
      if (w.status === 'denied' && !explicit) return;
      if (w.pendingId !== undefined && w.pendingUid !== undefined && this.o.spool.has(w.pendingId, w.pendingUid)) {
        // the owner has not answered the earlier request yet: do not file another one
        report('pending-consent', 0, `waiting for the owner (uid ${st.uid}) to run: livemr-guest grant ${w.pendingId}`);
        return;
      }
      try {
        const req = this.o.spool.add(path, this.requester);
        w.pendingId = req.id;
        w.pendingUid = req.uid;
        report('pending-consent', 0, `waiting for the owner (uid ${st.uid}) to run: livemr-guest grant ${req.id}`);
      } catch (e) {
        report('failed', 0, `cannot record the request: ${(e as Error).message}`);
      }
      return;
    }
    if (w.pendingId !== undefined && w.pendingUid !== undefined) {
      this.o.spool.remove(w.pendingId, w.pendingUid);
      w.pendingId = undefined;
    }
    let f: SharedFile;
    try {
      f = this.open(path);
    } catch (e) {
      if (e instanceof UnsupportedDeviceError) report('unsupported-device', 0, e.message);
      else report('failed', 0, (e as Error).message);
      return;
    }
    this.queue(f, 0, true);
    const unmappable = f.reported.length === 0 && this.hasUnmappable(f);
    report(unmappable ? 'not-mappable' : 'shared', f.id, unmappable
      ? 'part of the file is not stored as plain disk blocks (inline, encrypted, encoded or not aligned)' : 'shared');
  }

  private hasUnmappable(f: SharedFile): boolean {
    try { return mapFile(f.fd, f.disk.fsOffset, false).extents.some((x) => x.flags & EXTENT_UNMAPPABLE); } catch { return false; }
  }

  private open(path: string): SharedFile {
    const fd = openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new Error('not a regular file');
      const disk = resolveFileDisk(st.dev);
      const f: SharedFile = {
        id: this.nextId++, fd, key: `${st.dev}:${st.ino}`, ino: st.ino, generation: native().generation(fd), path, disk,
        reported: [], reportedSize: 0, withdrawals: 0, modified: false,
      };
      // watched through the descriptor: the watch follows the inode through renames, also when re-armed
      f.watcher = new QuietWatch(`/proc/self/fd/${fd}`, this.o.settleMs, () => { f.modified = true; this.discover(f); });
      this.files.set(f.id, f);
      this.byKey.set(f.key, f);
      this.o.log(`sharing ${path} as file ${f.id} (disk ${disk.serial}, fs at ${disk.fsOffset})`);
      return f;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  private watchDir(dir: string): void {
    if (this.dirWatchers.has(dir) || !existsSync(dir)) return;
    // a new file at a wanted path (rotation); an unreadable directory is left to the rescan
    const w = new QuietWatch(dir, this.o.settleMs, (names) => {
      for (const n of names) if (this.wanted.has(join(dir, n))) this.evaluate(join(dir, n), 0, false);
    }, () => { w.close(); this.dirWatchers.delete(dir); });
    this.dirWatchers.set(dir, w);
  }

  private rescans = 0;

  private rescan(): void {
    // inotify is the trigger; now and then look at every file anyway (a lost watch, an overflow)
    if (++this.rescans % 10 === 0) for (const f of this.files.values()) f.watcher?.poke();
    for (const w of this.wanted.values()) {
      this.watchDir(dirname(w.path));
      this.evaluate(w.path, 0, false);
    }
  }

  // ------------------------------------------------------------------ one shared file

  /** Looks at a file without forcing writeback; queues or sends what changed. */
  private discover(f: SharedFile): void {
    let st: fs.Stats;
    try { st = fstatSync(f.fd); } catch { this.removeFile(f, 'failed'); return; }
    if (st.nlink === 0) { this.removeFile(f, 'deleted'); return; }
    if (!hasConsent(`/proc/self/fd/${f.fd}`)) { this.removeFile(f, 'consent-revoked'); return; }
    const modified = f.modified;
    f.modified = false;
    const oldPath = f.path;
    this.followRename(f);
    const moved = f.path !== oldPath;
    const shrunk = st.size < f.reportedSize;
    if (shrunk) {
      // The file shrank, perhaps below its size now: copytruncate cuts to 0 and the writer appends
      // again, and inotify cannot tell that from a cut to the size seen now. Every byte below the new
      // end may have been rewritten — in the same blocks (the page cache holds the old bytes) or not
      // on the disk yet — and blocks past it may be reused at once. So the host withdraws it all now,
      // and the synced report that follows at once describes the file again from 0.
      f.reported = [];
      f.reportedSize = 0;
      f.withdrawals++;
      this.emit({ type: 'truncate', fileId: f.id, size: 0 });
    }
    let map;
    try { map = mapFile(f.fd, f.disk.fsOffset, false); } catch (e) { this.o.log(`FIEMAP ${f.path}: ${(e as Error).message}`); return; }
    // a first guess of where the report will start; the send decides (planReport)
    let from = Math.min(firstDifference(f.reported, map.extents), firstPending(map.extents, st.size));
    if (st.size !== f.reportedSize) from = Math.min(from, alignDown(Math.min(st.size, f.reportedSize)));
    if (from === Infinity && !modified && !moved) return;
    this.queue(f, from, shrunk, map.extents, moved, modified);
  }

  /** Adds an update to the batch and decides whether the batch goes now. */
  private queue(f: SharedFile, from: number, now: boolean, extents?: Extent[], force = false, rewritten = false): void {
    const base = Math.min(from, f.queued?.from ?? Infinity);
    let gap = false;
    if (extents && this.o.sendOnGap) {
      const anchor = [...extents].reverse().find((x) => x.logical < base)?.logical ?? base;
      gap = runsFrom(extents, anchor) > 1;
    }
    const bytes = extents ? extents.filter((x) => x.logical + x.length > base).reduce((s, x) => s + x.length, 0) : 0;
    f.queued = {
      from: base, since: f.queued?.since ?? Date.now(), bytes,
      force: force || (f.queued?.force ?? false), rewritten: rewritten || (f.queued?.rewritten ?? false),
    };
    const total = [...this.files.values()].reduce((s, x) => s + (x.queued?.bytes ?? 0), 0);
    if (now || gap || total >= this.o.batchBytes) this.kick(0);
    else this.kick(Math.max(0, f.queued.since + this.o.batchMs - Date.now()));
  }

  private kick(delayMs: number): void {
    if (this.batchTimer && delayMs > 0) return; // an earlier deadline is already set
    clearTimeout(this.batchTimer);
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      void this.serial(() => this.sendQueued(false));
    }, delayMs);
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.sending.then(fn, fn);
    this.sending = run.catch((e) => this.o.log(`send failed: ${(e as Error).message}`));
    return run;
  }

  /**
   * Sends every queued update: read each file's size, write the files back (FIEMAP_FLAG_SYNC), flush
   * each disk involved so QEMU has written its own metadata for the new blocks, then report from the
   * first changed offset. The size is read first: only bytes written before the writeback are
   * described (src/guest/report.ts).
   */
  private async sendQueued(all: boolean, flushDisks = false): Promise<void> {
    const due = [...this.files.values()].filter((f) => f.queued);
    if (!due.length) return;
    const plans: { f: SharedFile; extents: Extent[]; plan: ReportPlan; withdrawals: number }[] = [];
    for (const f of due) {
      const q = f.queued!;
      f.queued = undefined;
      try {
        const before = fstatSync(f.fd);
        // unlinked since the last look: its name is another file's or nobody's, and its blocks go
        // back to the file system once we let go of it — never report it, remove it
        if (before.nlink === 0) { this.removeFile(f, 'deleted'); continue; }
        const sizeBefore = before.size;
        const { extents } = mapFile(f.fd, f.disk.fsOffset, true);
        if (fstatSync(f.fd).size < sizeBefore) {
          // cut while it was mapped: the map may show holes below sizeBefore where the file never had
          // zeros (its blocks were freed). Say nothing now; inotify's look sees the shrink and withdraws.
          f.queued = q;
          this.kick(this.o.settleMs);
          continue;
        }
        const plan = planReport({ extents: f.reported, size: f.reportedSize }, sizeBefore, extents,
          { from: q.from, rewritten: q.rewritten, force: q.force, full: all });
        if (plan) plans.push({ f, extents, plan, withdrawals: f.withdrawals });
      } catch (e) { this.o.log(`FIEMAP ${f.path}: ${(e as Error).message}`); }
    }
    // new bytes (new blocks, growth, writes in place): make QEMU write its own metadata (qcow2 L2
    // tables) for wherever they are now, before the host reads it (report.ts needsDiskFlush)
    const devs = new Set(plans.filter((p) => needsDiskFlush({ extents: p.f.reported, size: p.f.reportedSize }, p.extents, p.plan)).map((p) => p.f.disk.devNode));
    if (flushDisks) for (const p of plans) devs.add(p.f.disk.devNode);
    if (this.o.diskFlush || all || flushDisks) for (const dev of devs) await flushDevice(dev, this.o.log);
    for (const { f, extents, plan, withdrawals } of plans) {
      if (!this.files.has(f.id)) continue;
      // withdrawn while this plan waited for the flush: its `from` assumed what the host had then,
      // and a report from above 0 would leave the host a hole (zeros) below it. The report queued
      // with the withdrawal describes the file from 0.
      if (f.withdrawals !== withdrawals) continue;
      // unlinked while this plan waited for the flush (a stale report would show it again at a name
      // another file took: the soak's churn file shown again 5 s after its unlink)
      if (unlinked(f.fd)) { this.removeFile(f, 'deleted'); continue; }
      // a shrink seen here first: withdraw it all at once too, in order before the report (report.ts)
      if (plan.withdraw) this.emit({ type: 'truncate', fileId: f.id, size: 0 });
      const base = { fileId: f.id, inode: f.ino, generation: f.generation, path: f.path, disk: f.disk.serial, size: plan.size, from: plan.from, rewritten: plan.rewritten };
      for (const m of splitFileExtents(base, plan.extents)) this.emit(m);
      f.reported = extents;
      f.reportedSize = plan.size;
    }
  }

  /** After a rename the inode keeps being shared under its new name (log rotation). */
  private followRename(f: SharedFile): void {
    try {
      const st = statSync(f.path);
      if (`${st.dev}:${st.ino}` === f.key) return;
    } catch { /* moved away */ }
    const dir = dirname(f.path);
    try {
      const names = readdirSync(dir);
      for (const n of names.slice(0, 100_000)) {
        try {
          const st = lstatSync(join(dir, n));
          if (`${st.dev}:${st.ino}` === f.key) { f.path = join(dir, n); return; }
        } catch { /* raced */ }
      }
    } catch { /* directory gone */ }
  }

  private removeFile(f: SharedFile, reason: 'deleted' | 'unshared' | 'consent-revoked' | 'failed'): void {
    this.emit({ type: 'remove', fileId: f.id, reason });
    this.o.log(`file ${f.id} (${f.path}) no longer shared: ${reason}`);
    this.drop(f);
    for (const w of this.wanted.values()) {
      if (w.fileId === f.id) {
        w.fileId = 0;
        w.status = reason === 'consent-revoked' ? 'denied' : undefined;
      }
    }
  }

  /** Forgets a file; the fd is closed only now, so a deleted file's blocks stayed ours until the host was told. */
  private drop(f: SharedFile): void {
    f.watcher?.close();
    this.files.delete(f.id);
    this.byKey.delete(f.key);
    try { closeSync(f.fd); } catch { /* already */ }
  }

  // ------------------------------------------------------------------ persistence

  private loadWanted(): string[] {
    try {
      const v = JSON.parse(readFileSync(this.o.stateFile, 'utf8')) as unknown;
      return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string' && isAbsolute(p)) : [];
    } catch { return []; }
  }

  private saveWanted(): void {
    try {
      mkdirSync(dirname(this.o.stateFile), { recursive: true });
      writeFileAtomic(this.o.stateFile, JSON.stringify([...this.wanted.keys()]));
    } catch (e) { this.o.log(`cannot save ${this.o.stateFile}: ${(e as Error).message}`); }
  }
}

function statusText(s: ShareStatus): string {
  return ({
    shared: 'shared', 'pending-consent': 'waiting for the owner\'s consent', denied: 'the owner did not consent',
    'not-found': 'no such file', 'not-regular': 'not a regular file', 'not-mappable': 'not stored as plain disk blocks',
    'unsupported-device': 'not on a plain virtio disk', failed: 'failed',
  } satisfies Record<ShareStatus, string>)[s];
}

/** Whether the open file has no name left (or cannot be looked at any more). */
function unlinked(fd: number): boolean {
  try { return fstatSync(fd).nlink === 0; } catch { return true; }
}

/** fsync on the whole-disk node: a cache flush, which makes QEMU write its qcow2 metadata. */
async function flushDevice(dev: string, log: (m: string) => void): Promise<void> {
  let fd = -1;
  try {
    fd = openSync(dev, fs.constants.O_RDONLY);
    await fsyncFd(fd);
  } catch (e) {
    log(`flush ${dev}: ${(e as Error).message}`);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
