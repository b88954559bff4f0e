// The file sync: turns the guest's file reports into compositions. Reports queue per file (the
// newest wins) and are applied in rounds, one per turn of the event loop, serialised on one work
// chain; each round re-reads the disks' metadata once, then lays out and publishes every queued
// file on its own (apply() is the one place a file's outcome is decided). Files with a pending tail
// are retried after asking the guest to flush, backing off 100 ms → 5 s.
import { basename } from 'node:path';
import { LiveMrError } from '../errors/index.js';
import { FsError, type CompositionStore } from '../fs/index.js';
import type { GuestFile } from '../guest/index.js';
import type { ImageMapper } from '../image/index.js';
import { layoutFile, LayoutError, type FileLayout } from './layout.js';
import { GuestLimitError, TokenBucket } from './limits.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { compositionName, unescapePath } from './naming.js';
import { publish, servedStillValid, type RemapDetail } from './publish.js';

export interface SharedFileStatus {
  fileId: number;
  /** the guest inode (with `path`, what an operator matches against the guest's `ls -i`) */
  inode: number;
  path: string;
  disk: string;
  name: string;
  guestSize: number;
  servedSize: number;
  pendingRanges: number;
  pendingSinceMs?: number;
  refused?: string;
  /** the stable code of the refusal (docs/errors.md), when it has one */
  refusedCode?: string;
  /** the last update could not be stored (e.g. a full state file system); retried */
  storeError?: string;
  lastUpdateMs: number;
}

/** rewritten: bytes below the served size changed in place (same mapping) */
export type SourceChange = 'grown' | 'shrunk' | 'remapped' | 'removed' | 'rewritten';

export interface FileSyncOptions {
  vm: string;
  store: CompositionStore;
  disks: {
    get(serial: string): ImageMapper | undefined;
    invalidate(serials: Iterable<string>): Promise<void>;
  };
  /** before each round: reload the disk maps if the VM's chains changed; true when it reloaded */
  reloadIfChanged: () => Promise<boolean>;
  /** asks the guest to flush (so QEMU writes its L2 tables); undefined without a guest session */
  flush: () => Promise<void> | undefined;
  /** told after a shared file's composition changed (BigLogs follow their sources through it) */
  onChange?: (vm: string, path: string, size: number, change: SourceChange) => void;
  onStatus?: () => void;
  /** a round failed (logged here already) */
  onError?: (e: Error) => void;
  /**
   * How long files journaled by an earlier run stay withheld waiting for the guest to confirm them
   * (its resync) before their journal records are dropped too (default 10 min).
   */
  unconfirmedTtlMs?: number;
  /**
   * journaled updates per second and the burst before that applies (GuestLimits): above it an
   * update waits (newest wins) and a shrink or removal is withheld in memory until it can be written
   */
  journal?: { perSec: number; burst: number };
  /** a report was refused for a limit (counted and logged by the owner) */
  onLimit?: (e: GuestLimitError) => void;
  /** how long applying one file's report took (ms): charged to the VM's busy budget */
  onWork?: (ms: number) => void;
  log: Logger;
  metrics: Metrics;
  /** once aborted, no job touches the store any more (the agent closes it next) */
  signal: AbortSignal;
}

/** longest stretch a round runs without letting the event loop turn */
const YIELD_MS = 10;

interface Tracked {
  status: SharedFileStatus;
  file: GuestFile;
}

export class FileSync {
  private files = new Map<number, Tracked>();
  /** which file each composition name shows: a rename over a name takes it from the file it replaced */
  private owners = new Map<string, { fileId: number; inode: string }>();
  private queue = new Map<number, GuestFile>(); // reports waiting for the next round (newest wins)
  /**
   * files to lay out again as last reported (the images may have changed under them: a discard, a
   * pending tail, a new chain, a store retry). Resolved to the file's report when a round starts, never
   * queued as a copy: a copy taken while a newer report was being applied undid it (the soak's b-shrink)
   */
  private recheck = new Set<number>();
  private working: Promise<void> = Promise.resolve();
  private scheduled = false;
  private retryTimer?: NodeJS.Timeout;
  private retryDelay = 100;
  private stale = new Set<string>();
  /** updates the store could not take (journal errors): retried, backing off 100 ms → 5 s */
  private storeRetry = new Set<number>();
  private storeRetryTimer?: NodeJS.Timeout;
  private storeRetryDelay = 100;
  /** journaled by an earlier run, withheld until the guest reports them again (withholdJournaled) */
  private unconfirmed = new Set<string>();
  /** files with a range withheld because it maps onto image metadata (warned once) */
  private overlapping = new Set<number>();
  /** files the guest confirmed after a restart: their next publish is a remap for BigLogs */
  private confirmed = new Set<number>();
  /** files refused for a limit (bounded by the session's file limit): shown in status() */
  private refusedFiles = new Map<number, SharedFileStatus>();
  /** journal writes this VM may make now */
  private readonly journalBudget?: TokenBucket;
  /** how long the last round took (ms) */
  lastApplyLatency = 0;

  constructor(private readonly o: FileSyncOptions) {
    if (o.journal) this.journalBudget = new TokenBucket(o.journal.perSec, o.journal.burst);
    this.withholdJournaled();
  }

  /**
   * The compositions this VM's files had in an earlier run (the journal brought them back) are not
   * served until the guest has resynced and reported them again, laid out anew on the images as
   * they are now: meanwhile the guest may have freed and reused their blocks. A file the resync
   * does not report, or every one if the guest stays silent for unconfirmedTtlMs, is dropped from
   * the journal too.
   */
  private withholdJournaled(): void {
    for (const name of this.ownCompositions()) {
      if (!this.o.store.withhold(name)) continue;
      this.unconfirmed.add(name);
      this.o.onChange?.(this.o.vm, unescapePath(name.slice(this.o.vm.length + 1)), 0, 'removed');
    }
    if (this.unconfirmed.size === 0) return;
    this.o.log.info('journaled files withheld until the guest confirms them', { files: this.unconfirmed.size });
    const t = setTimeout(() => this.run(async () => this.dropUnconfirmed('the guest did not confirm it in time')), this.o.unconfirmedTtlMs ?? 600_000);
    t.unref();
    this.o.signal.addEventListener('abort', () => clearTimeout(t), { once: true });
  }

  /** Journals the removal of the withheld files nobody confirmed. */
  private dropUnconfirmed(reason: string): void {
    for (const name of this.unconfirmed) {
      if (this.tryRemove(name)) this.o.log.info('withheld file dropped', { file: name, reason });
      else this.scheduleStoreRetry();
    }
    this.unconfirmed.clear();
  }

  // --- what the guest says ---------------------------------------------------------------------

  /** The guest's full resync starts: compositions it does not report again go when it is done. */
  resyncStarted(): void {
    this.stale = new Set(this.ownCompositions());
    this.refusedFiles.clear();
  }

  /** The guest's report of a file is over a limit: nothing of the file is served until it is reported within bounds. */
  refuse(f: GuestFile, e: LiveMrError): void {
    this.queue.delete(f.fileId);
    this.recheck.delete(f.fileId);
    this.storeRetry.delete(f.fileId);
    this.run(async () => {
      const name = compositionName(this.o.vm, f.path);
      const prev = this.files.get(f.fileId);
      this.files.delete(f.fileId);
      if (prev && prev.status.name !== name) this.withdraw(f.fileId, prev.status.name, 'refused');
      this.withdraw(f.fileId, name, 'refused');
      this.refusedFiles.set(f.fileId, {
        fileId: f.fileId, inode: f.inode, path: f.path, disk: f.disk, name, guestSize: f.size, servedSize: 0, pendingRanges: 0,
        refused: e.message, refusedCode: e.code, lastUpdateMs: Date.now(),
      });
      this.o.onStatus?.();
    });
  }

  /** The guest reported a file's extents (a report during a resync keeps its composition). */
  reported(f: GuestFile): void {
    const name = compositionName(this.o.vm, f.path);
    this.stale.delete(name);
    if (this.unconfirmed.delete(name)) this.confirmed.add(f.fileId);
    this.update(f);
  }

  /** The guest reported a file shrank. */
  truncated(f: GuestFile): void {
    this.update(f);
  }

  /** The guest stopped sharing a file. */
  removed(f: GuestFile, reason: string): void {
    this.queue.delete(f.fileId);
    this.recheck.delete(f.fileId);
    this.refusedFiles.delete(f.fileId);
    this.run(async () => this.removeFile(f.fileId, compositionName(this.o.vm, f.path), reason));
  }

  /** The guest's resync is complete: removes what it did not report again. */
  resyncDone(files: number): void {
    this.run(async () => {
      for (const name of this.stale) this.removeFile(undefined, name, 'not re-reported after resync');
      this.stale.clear();
      this.dropUnconfirmed('not re-reported after resync');
      this.o.log.info('guest resync done', { files });
    });
  }

  // --- what the VM says ------------------------------------------------------------------------

  /** The image chains changed under every file: `reload` the disk maps, then remap every file. */
  remapAll(reload: () => Promise<void>): void {
    this.run(async () => {
      await reload();
      for (const id of this.files.keys()) this.recheck.add(id);
      await this.processQueue();
    });
  }

  /**
   * The mappings of disk `serial` may have changed with no report from the guest (QEMU freed
   * clusters on a discard and may reuse them): re-verify every file on it against the image as it is
   * now — the same path as a remap (cut back to the first byte that maps elsewhere, regrow).
   */
  reverifyDisk(serial: string, why: string): void {
    let n = 0;
    for (const t of this.files.values()) {
      if (t.file.disk !== serial || this.queue.has(t.file.fileId)) continue;
      this.recheck.add(t.file.fileId);
      n++;
    }
    if (n === 0) return;
    this.o.log.info('re-verifying the mappings of a disk', { serial, why, files: n });
    this.schedule();
  }

  /** Something may have changed the image metadata: retry files with pending tails. */
  kick(why: string): void {
    let any = false;
    for (const t of this.files.values()) {
      if (t.status.pendingRanges > 0) {
        this.recheck.add(t.file.fileId);
        any = true;
      }
    }
    if (any) {
      this.o.log.debug('re-resolving pending ranges', { why });
      this.schedule();
    }
  }

  // --- lifetime and status ---------------------------------------------------------------------

  /** Stops retrying and waits for the running round (the VM's connection is gone). */
  async idle(): Promise<void> {
    clearTimeout(this.retryTimer);
    clearTimeout(this.storeRetryTimer);
    await this.working.catch(() => {});
  }

  status(): SharedFileStatus[] {
    return [...[...this.files.values()].map((t) => t.status), ...this.refusedFiles.values()].map((st) => ({ ...st }));
  }

  // --- rounds ----------------------------------------------------------------------------------

  private update(f: GuestFile): void {
    this.queue.set(f.fileId, { ...f, extents: [...f.extents] });
    this.schedule();
  }

  /** Runs `job` after every earlier one, unless the agent is stopping; a failure is logged and kept. */
  private run(job: () => Promise<void>): void {
    this.working = this.working.then(() => (this.o.signal.aborted ? undefined : job())).catch((e: Error) => {
      this.o.log.error('update failed', { error: e });
      this.o.onError?.(e);
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // one round per turn of the event loop: a burst of frames shares one metadata re-read
    setImmediate(() => {
      this.scheduled = false;
      this.run(() => this.processQueue());
    });
  }

  private async processQueue(): Promise<void> {
    if (this.queue.size === 0 && this.recheck.size === 0) return;
    const reports = new Map(this.queue);
    this.queue.clear();
    // a file to lay out again goes as last applied, unless a newer report of it is in this round
    const again = (id: number) => {
      const t = this.files.get(id);
      if (t && !reports.has(id)) reports.set(id, t.file);
    };
    for (const id of this.recheck) again(id);
    this.recheck.clear();
    const t0 = Date.now();
    if (await this.o.reloadIfChanged()) {
      this.o.log.info('backing chain changed: reloading mappers and remapping every file');
      for (const id of this.files.keys()) again(id);
    }
    const batch = [...reports.values()];
    // the helper reported these after FIEMAP_SYNC (a guest flush): QEMU's metadata on disk is
    // current, so drop every cached header/L1/L2 before translating
    await this.o.disks.invalidate(new Set(batch.map((f) => f.disk)));
    let pending = false;
    let slice = Date.now();
    // each file on its own: one file's failure must not drop the others' truncates and removals
    for (const f of batch) {
      // a large batch gives the event loop back every few ms: the other VMs' rounds, their
      // channels and the mount's requests go on while one VM floods (issue 14 #9)
      if (Date.now() - slice > YIELD_MS) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
      }
      const a = performance.now();
      try {
        pending = (await this.apply(f)) || pending;
      } catch (e) {
        this.o.log.error('file update failed', { path: f.path, error: e as Error });
        this.o.onError?.(e as Error);
      }
      this.o.onWork?.(performance.now() - a);
    }
    this.lastApplyLatency = Date.now() - t0;
    this.o.onStatus?.();
    this.o.metrics.set('livemr_apply_latency_ms', 'time to apply the last batch of guest updates', { vm: this.o.vm }, this.lastApplyLatency);
    clearTimeout(this.retryTimer);
    if (pending) {
      // ask the guest to flush (QEMU then writes its L2 tables) and try again, backing off
      this.retryTimer = setTimeout(() => {
        this.o.flush()?.catch(() => {}).finally(() => this.kick('pending retry'));
      }, this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    } else {
      this.retryDelay = 100;
    }
  }

  /** Lays out and publishes one file. Returns true when the file still has a pending tail. */
  private async apply(f: GuestFile): Promise<boolean> {
    const { store, vm } = this.o;
    const name = compositionName(vm, f.path);
    let prev = this.files.get(f.fileId);
    const inode = `${f.disk}:${f.inode}:${f.generation}`;
    if (prev && `${prev.file.disk}:${prev.file.inode}:${prev.file.generation}` !== inode) {
      // the guest reuses the id for another file (another inode, perhaps on another disk): nothing
      // of the old one carries over — its composition goes (an open handle ends), its status too
      this.withdraw(f.fileId, prev.status.name, 'file id reused for another file');
      this.files.delete(f.fileId);
      prev = undefined;
    }
    const status: SharedFileStatus = prev?.status ?? {
      fileId: f.fileId, inode: f.inode, path: f.path, disk: f.disk, name, guestSize: 0, servedSize: 0, pendingRanges: 0, lastUpdateMs: 0,
    };
    if (prev && prev.status.name !== name) this.withdraw(f.fileId, prev.status.name, 'renamed'); // follows the inode
    const owner = this.owners.get(name);
    if (owner && owner.fileId !== f.fileId) {
      // another file at the name: a rename over it (the replaced file shows nowhere now; its removal
      // may follow), or the same inode under a new id (a helper restart)
      this.files.delete(owner.fileId);
      // another inode is another file on the mount too: a handle open on the replaced one must not
      // read on into this one's bytes (a torn read of two files), so the name gets a new composition
      if (owner.inode !== inode) this.removeComposition(name, 'replaced by a rename');
    }
    this.owners.set(name, { fileId: f.fileId, inode });
    Object.assign(status, { inode: f.inode, path: f.path, name, disk: f.disk, guestSize: f.size, lastUpdateMs: Date.now() });
    delete status.refusedCode;
    this.files.set(f.fileId, { status, file: f });
    this.refusedFiles.delete(f.fileId);
    const mapper = this.o.disks.get(f.disk);
    let result;
    const before = store.get(name)?.segments.size ?? 0;
    const remap: RemapDetail = { at: -1 };
    try {
      if (!mapper) throw new LayoutError(`the guest named disk serial '${f.disk}', which this VM does not have`);
      // a file holds at most what its disk does: a larger size would be served as zeros (an 8 PiB file was)
      if (f.size > mapper.size) throw new GuestLimitError('HOST_FILE_BEYOND_DISK', `size ${f.size} is beyond its disk '${f.disk}' (${mapper.size} bytes)`);
      const layout = await layoutFile(f.size, f.extents, mapper);
      if (this.overJournalBudget(name, f.size, layout)) {
        // over this VM's journal rate: retried when the budget refills; what is served meanwhile
        // stays only if still right (a shrink or a move is withheld in memory at once)
        if (!servedStillValid(store, name, f.size, layout) && store.withhold(name)) this.o.onChange?.(vm, f.path, 0, 'removed');
        status.servedSize = store.get(name)?.segments.size ?? 0;
        this.storeRetry.add(f.fileId);
        this.scheduleStoreRetry(this.journalBudget!.waitMs());
        return false;
      }
      try {
        result = publish(store, name, f.size, layout, f.changedFrom, remap);
        status.refused = layout.refused;
      } catch (e) {
        if (!(e instanceof FsError)) throw e;
        if (this.storeFailed(f, status, layout, e) === 'retry') return false;
        result = 'refused' as const; // storeFailed said why in status.refused
      }
      delete status.storeError;
      this.storeRetry.delete(f.fileId);
      status.pendingRanges = result === 'refused' ? 0 : layout.pending.length;
      if (layout.pending.length) status.pendingSinceMs ??= Date.now();
      else delete status.pendingSinceMs;
      const overlap = layout.pending.find((p) => p.why === 'metadata');
      if (overlap && !this.overlapping.has(f.fileId)) {
        // stale metadata (a discarded cluster reused for a table) or a corrupt image: withheld from there
        this.o.log.warn('file data maps onto the image\'s own metadata: withheld from there', { file: name, at: overlap.at, structure: overlap.structure });
        this.o.metrics.inc('livemr_metadata_overlaps_total', 'file ranges withheld because the image maps them onto its own metadata', { vm });
      }
      if (overlap) this.overlapping.add(f.fileId); else this.overlapping.delete(f.fileId);
    } catch (e) {
      if (!(e instanceof LayoutError) && !(e instanceof GuestLimitError)) throw e;
      // a guest that names bytes outside its disks gets nothing served for that file
      status.refused = e.message;
      status.refusedCode = e.code;
      if (e instanceof GuestLimitError) this.o.onLimit?.(e);
      if (store.get(name) && !this.tryRemove(name)) {
        store.withhold(name);
        this.scheduleStoreRetry();
      }
      this.owners.delete(name);
      result = 'refused';
      this.o.metrics.inc('livemr_refused_updates_total', 'guest updates refused', { vm });
    }
    const rewritten = f.changedFrom < before && (result === 'unchanged' || result === 'grown');
    f.changedFrom = Infinity; // acted on: the mount dropped its cached pages from there
    status.servedSize = store.get(name)?.segments.size ?? 0;
    if (rewritten) this.o.onChange?.(vm, f.path, status.servedSize, 'rewritten');
    // confirmed after a restart: BigLogs rebuild what they had from it (they had zeros meanwhile)
    const reverified = this.confirmed.delete(f.fileId) && result !== 'refused';
    const change: SourceChange | undefined =
      result === 'refused' || result === 'removed' ? 'removed' : result === 'remapped' || reverified ? 'remapped'
        : result === 'truncated' ? 'shrunk' : status.servedSize > before ? 'grown' : undefined;
    if (change) this.o.onChange?.(vm, f.path, status.servedSize, change);
    if (result !== 'unchanged') {
      this.o.log.info('shared file updated', {
        file: name, path: f.path, result, guestSize: f.size, served: status.servedSize, pending: status.pendingRanges,
        ...(status.refused ? { refused: status.refused } : {}),
        // a remap of served bytes is rare and always worth explaining: where, from what, to what
        ...(result === 'remapped' ? { remappedAt: remap.at, was: describeSegment(remap.was, remap.at), now: describeSegment(remap.now, remap.at) } : {}),
      });
    }
    return status.pendingRanges > 0;
  }

  /**
   * The store refused a file's update. A journal error (a full state file system) is retried; if
   * what is served meanwhile would be wrong (the file shrank or moved), it is withheld in memory at
   * once. Any other store error (a guest path too long for a composition name, a size beyond the
   * store's range) refuses the file: nothing is served for it.
   */
  private storeFailed(f: GuestFile, status: SharedFileStatus, layout: FileLayout, e: FsError): 'retry' | 'refused' {
    const { store } = this.o;
    const name = status.name;
    if (e.code !== 'EJOURNAL') {
      status.refused = `cannot store this file: ${e.message}`;
      if (store.get(name) && !this.tryRemove(name)) {
        store.withhold(name);
        this.scheduleStoreRetry();
      }
      this.owners.delete(name);
      this.o.metrics.inc('livemr_refused_updates_total', 'guest updates refused', { vm: this.o.vm });
      return 'refused';
    }
    if (!servedStillValid(store, name, f.size, layout) && store.withhold(name)) {
      this.o.log.warn('shared file withheld: its shrink could not be journaled', { file: name, error: e.message });
      this.o.onChange?.(this.o.vm, f.path, 0, 'removed');
    }
    status.storeError = e.message;
    status.servedSize = store.get(name)?.segments.size ?? 0;
    this.o.log.error('cannot store a file update; retrying', { file: name, error: e.message });
    this.storeRetry.add(f.fileId);
    this.scheduleStoreRetry();
    return 'retry';
  }

  /**
   * Whether publishing `layout` would write the journal while this VM's journal budget is spent.
   * An update that changes nothing costs nothing; one that does takes a token.
   */
  private overJournalBudget(name: string, guestSize: number, layout: FileLayout): boolean {
    if (!this.journalBudget) return false;
    const cur = this.o.store.get(name);
    if (cur && !layout.refused && cur.segments.size === layout.servable && servedStillValid(this.o.store, name, guestSize, layout)) return false;
    if (this.journalBudget.take()) return false;
    this.o.metrics.inc('livemr_journal_throttled_total', 'file updates delayed by the per-VM journal rate', { vm: this.o.vm });
    return true;
  }

  /** Retries what the store refused: queued file updates, and removals owed to the journal. */
  private scheduleStoreRetry(atLeastMs = 0): void {
    if (this.storeRetryTimer) return;
    this.storeRetryTimer = setTimeout(() => {
      this.storeRetryTimer = undefined;
      this.run(async () => {
        for (const name of this.o.store.owedRemovals()) this.tryRemove(name);
        // updates waiting for the journal rate: only as many as it allows now (the rest wait on),
        // so a VM over its rate does not have all its files laid out again on every retry
        let room = this.journalBudget ? Math.max(1, this.journalBudget.available()) : Infinity;
        for (const id of this.storeRetry) {
          if (room-- <= 0) break;
          this.storeRetry.delete(id);
          this.recheck.add(id);
        }
        await this.processQueue();
        if (this.storeRetry.size || this.o.store.owedRemovals().length) {
          this.storeRetryDelay = Math.min(this.storeRetryDelay * 2, 5000);
          this.scheduleStoreRetry();
        } else {
          this.storeRetryDelay = 100;
        }
      });
    }, Math.max(atLeastMs, this.storeRetryDelay));
  }

  /** store.remove, false when the journal refused it. */
  private tryRemove(name: string): boolean {
    try {
      this.o.store.remove(name);
      return true;
    } catch (e) {
      if (!(e instanceof FsError)) throw e;
      this.o.log.error('cannot journal a removal; withheld, retrying', { file: name, error: e.message });
      return false;
    }
  }

  /** Compositions this VM's files own (agent-reserved prefix `<vm>_`). */
  private ownCompositions(): string[] {
    const prefix = `${this.o.vm}_`;
    return this.o.store.list().map((c) => c.name).filter((n) => n.startsWith(prefix));
  }

  /** The guest stopped sharing file `fileId` (or, without one, every file at `name`). */
  private removeFile(fileId: number | undefined, name: string, reason: string): void {
    if (fileId !== undefined) {
      this.files.delete(fileId);
      this.withdraw(fileId, name, reason);
      return;
    }
    for (const [id, t] of this.files) if (t.status.name === name) this.files.delete(id);
    this.owners.delete(name);
    this.removeComposition(name, reason);
  }

  /** File `fileId` no longer shows at `name`: its composition goes unless another file took the name since. */
  private withdraw(fileId: number, name: string, reason: string): void {
    const owner = this.owners.get(name);
    if (owner !== undefined && owner.fileId !== fileId) return;
    this.owners.delete(name);
    this.removeComposition(name, reason);
  }

  private removeComposition(name: string, reason: string): void {
    const served = this.o.store.get(name) !== undefined;
    if (served && this.journalBudget && !this.journalBudget.take()) {
      // over the journal rate: gone from the mount now, its removal journaled on the retry
      this.o.store.withhold(name);
      this.scheduleStoreRetry(this.journalBudget.waitMs());
    } else if (!this.tryRemove(name)) {
      // not journaled: withheld in memory at once, the removal retried
      this.o.store.withhold(name);
      this.scheduleStoreRetry();
    }
    if (served) {
      this.o.log.info('shared file removed', { file: name, reason });
      this.o.onChange?.(this.o.vm, unescapePath(name.slice(this.o.vm.length + 1)), 0, 'removed');
    }
  }
}

/** 'zero', or the image file and its offset holding composed byte `at` of the segment. */
function describeSegment(s: { at?: number; file?: string | null; offset?: number; zero?: true } | undefined, at: number): string {
  if (!s) return 'none';
  if (s.zero || s.file === null || s.file === undefined) return 'zero';
  return `${basename(s.file)}@${(s.offset ?? 0) + (s.at === undefined ? 0 : at - s.at)}`;
}
