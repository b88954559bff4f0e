// One VM as the agent sees it: QMP (block graph, events) → image mappers per guest disk; the
// org.livemr.0 channel → guest session → file layouts → composed files. Survives QEMU restarts
// (reconnects with backoff), guest reboots (the helper says hello again → full resync) and channel
// drops. Everything the guest sends is checked against what QEMU says the VM has.
import { mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { CompositionStore } from '../fs/index.js';
import { GuestSession, type GuestFile } from '../guest/host-session.js';
import { openImage, type ImageMapper } from '../image/index.js';
import {
  addChannel, connectWithBackoff, describeVm, ExecuteError, GRAPH_CHANGE_EVENTS, queryBlock, watchWriteThreshold,
  type ImageInfo, type QmpClient, type QmpEvent, type VmDisk, type VmModel, type WriteThresholdWatch,
} from '../qmp/index.js';
import type { VmConfig } from './config.js';
import { layoutFile, LayoutError } from './layout.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { compositionName, unescapePath } from './naming.js';
import { publish } from './publish.js';

const CHANNEL_DEVICE_ID = 'livemr-channel';
/** re-arm the write threshold this far past each crossing (host bytes of the image file) */
const THRESHOLD_STEP = 16 << 20;

export interface SharedFileStatus {
  fileId: number;
  path: string;
  disk: string;
  name: string;
  guestSize: number;
  servedSize: number;
  pendingRanges: number;
  pendingSinceMs?: number;
  refused?: string;
  lastUpdateMs: number;
}

export interface ShareRecord {
  path: string;
  /** requested → the guest's answer (shared, pending-consent, denied, not-found, ...) → revoked/deleted */
  status: string;
  message: string;
  updatedMs: number;
}

export interface VmStatus {
  name: string;
  qmp: 'connecting' | 'connected';
  runState?: string;
  channel: 'none' | 'connecting' | 'connected';
  channelSocket?: string;
  guest?: { guestId: string; software: string };
  disks: { serial: string | null; file: string; format: string; chain: string[] }[];
  files: SharedFileStatus[];
  shares: ShareRecord[];
  pendingRanges: number;
  /** worst age of a pending tail, else the last update's apply latency (ms) */
  freshnessLagMs: number;
  lastError?: string;
}

interface Tracked {
  status: SharedFileStatus;
  file: GuestFile;
}

/** rewritten: bytes below the served size changed in place (same mapping) */
export type SourceChange = 'grown' | 'shrunk' | 'remapped' | 'removed' | 'rewritten';

export interface VmLinkDeps {
  store: CompositionStore;
  /** told after a shared file's composition changed (BigLogs follow their sources through it) */
  onChange?: (vm: string, path: string, size: number, change: SourceChange) => void;
  /** told whenever anything in status() may have changed (live views) */
  onStatus?: () => void;
  /** paths requested at run time (e.g. from the panel) in earlier runs; asked for like cfg.share */
  requested?: string[];
  log: Logger;
  metrics: Metrics;
  runDir: string;
  hostId: string;
}

export class VmLink {
  private abort = new AbortController();
  private qmp?: QmpClient;
  private model?: VmModel;
  private blockSig?: string;
  private mappers = new Map<string, ImageMapper>(); // by disk serial
  private watches: WriteThresholdWatch[] = [];
  private session?: GuestSession;
  private sock?: Socket;
  private channelSocket?: string;
  private channelState: VmStatus['channel'] = 'none';
  private files = new Map<number, Tracked>();
  private queue = new Map<number, GuestFile>(); // updates waiting for the next round
  private working: Promise<void> = Promise.resolve();
  private retryTimer?: NodeJS.Timeout;
  private retryDelay = 100;
  private lastApplyLatency = 0;
  private lastError?: string;
  private shares = new Map<string, ShareRecord>();
  private readonly log: Logger;
  readonly done: Promise<void>;

  constructor(readonly cfg: VmConfig, private readonly deps: VmLinkDeps) {
    this.log = deps.log.child('vm', { vm: cfg.name });
    // requests survive agent restarts (requests.json): show them until the guest answers again
    for (const path of deps.requested ?? []) this.shares.set(path, { path, status: 'requested', message: 'will be sent when the guest connects', updatedMs: Date.now() });
    this.done = this.run();
  }

  /** Paths this VM is asked to share: the config's and those requested at run time (all in shares). */
  private wanted(): string[] {
    return [...new Set([...this.cfg.share, ...this.shares.keys()])];
  }

  /** Asks the guest to share a file; the owner's consent decides (see shares in status()). */
  requestShare(path: string): ShareRecord {
    if (!path.startsWith('/') || path.includes('\0') || Buffer.byteLength(path) > 4096) throw new LayoutError(`bad guest path '${path}'`);
    const rec = this.setShare(path, 'requested', this.session ? 'sent to the guest' : 'will be sent when the guest connects');
    this.session?.share(path);
    return rec;
  }

  private setShare(path: string, status: string, message: string): ShareRecord {
    const rec = { path, status, message, updatedMs: Date.now() };
    this.shares.set(path, rec);
    this.deps.onStatus?.();
    return rec;
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('agent stopping'));
    await this.qmp?.close().catch(() => {});
    await this.done;
  }

  // --- QMP side ------------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        this.qmp = await connectWithBackoff(this.cfg.qmp, { signal: this.abort.signal, maxDelayMs: 5000, commandTimeoutMs: 10_000 });
        this.log.info('QMP connected', { qmp: this.cfg.qmp });
        await this.attach(this.qmp);
        const why = await this.qmp.closed;
        this.log.warn('QMP connection ended', { reason: why?.message ?? 'closed' });
      } catch (e) {
        if (this.abort.signal.aborted) break;
        this.lastError = (e as Error).message;
        this.log.error('VM link failed; retrying', { error: e as Error });
        await this.qmp?.close().catch(() => {});
        await sleep(1000, this.abort.signal);
      } finally {
        await this.detach();
      }
    }
  }

  private async attach(qmp: QmpClient): Promise<void> {
    qmp.onEvent((ev) => void this.onQmpEvent(ev), [...GRAPH_CHANGE_EVENTS, 'SHUTDOWN', 'RESET', 'STOP', 'RESUME']);
    await this.loadBlockGraph(qmp);
    await this.ensureChannel(qmp);
    this.connectChannel();
  }

  /** (Re)builds the mappers from QEMU's live block graph, which wins over image headers. */
  private async loadBlockGraph(qmp: QmpClient): Promise<void> {
    const model = await describeVm(qmp);
    for (const w of this.watches) await w.stop().catch(() => {});
    this.watches = [];
    for (const m of this.mappers.values()) await m.close().catch(() => {});
    this.mappers.clear();
    for (const d of model.disks) {
      if (!d.serial) continue; // the guest names disks by serial; without one it cannot share from it
      if (d.format !== 'qcow2' && d.format !== 'raw') {
        this.log.warn('disk format not supported for zero-copy reads', { serial: d.serial, format: d.format });
        continue;
      }
      const mapper = await openImage(d.file, {
        format: d.format,
        backingChain: d.chain.slice(1).map((l) => ({ file: l.file, format: l.format as 'qcow2' | 'raw' })),
        ...(d.chain[0]?.dataFile ? { dataFile: d.chain[0].dataFile } : {}),
      });
      this.mappers.set(d.serial, mapper);
      await this.watchAllocation(qmp, d);
    }
    this.model = model;
    this.blockSig = await this.blockSignature(qmp);
    this.log.info('block graph loaded', { status: model.status, disks: model.disks.map((d) => ({ serial: d.serial, file: d.file, chain: d.chain.length })) });
  }

  /** QEMU allocating new clusters in a disk's top image means its L2 tables changed: invalidate. */
  private async watchAllocation(qmp: QmpClient, d: VmDisk): Promise<void> {
    if (d.format !== 'qcow2') return;
    try {
      const { size } = await stat(d.file);
      this.watches.push(await watchWriteThreshold(qmp, {
        nodeName: d.fileNodeName, threshold: size, step: THRESHOLD_STEP,
        onCrossing: () => { this.kick(`write threshold on ${d.serial}`); },
      }));
    } catch (e) {
      this.log.warn('cannot arm the write threshold', { serial: d.serial, error: e as Error });
    }
  }

  private async onQmpEvent(ev: QmpEvent): Promise<void> {
    this.deps.metrics.inc('livemr_qmp_events_total', 'QMP events seen', { vm: this.cfg.name, event: ev.event });
    if ((GRAPH_CHANGE_EVENTS as readonly string[]).includes(ev.event)) {
      // block jobs and corruption change what the image chain holds: rebuild and remap everything
      this.log.info('block graph event: remapping', { event: ev.event, data: ev.data });
      this.enqueue(async () => {
        if (this.qmp?.state === 'open') await this.loadBlockGraph(this.qmp);
        for (const t of this.files.values()) this.queue.set(t.file.fileId, t.file);
        await this.processQueue();
      });
    } else {
      const state: Record<string, string> = { STOP: 'paused', RESUME: 'running', SHUTDOWN: 'shutdown', RESET: 'running' };
      if (this.model && state[ev.event]) this.model.status = state[ev.event]!;
      this.log.info('guest lifecycle event', { event: ev.event });
    }
  }

  /** Hot-plugs org.livemr.0 unless the config names an existing channel socket. */
  private async ensureChannel(qmp: QmpClient): Promise<void> {
    if (this.cfg.channel) {
      this.channelSocket = this.cfg.channel;
      return;
    }
    mkdirSync(this.deps.runDir, { recursive: true, mode: 0o700 });
    const path = join(this.deps.runDir, `${this.cfg.name}.channel.sock`);
    try {
      await addChannel(qmp, { id: CHANNEL_DEVICE_ID, socketPath: path });
      this.log.info('hot-plugged the LiveMR channel', { socket: path });
    } catch (e) {
      // plugged by an earlier run of the agent: same id, same socket path
      if (!(e instanceof ExecuteError && /Duplicate|already/i.test(e.desc))) throw e;
      this.log.info('LiveMR channel already plugged', { socket: path });
    }
    this.channelSocket = path;
  }

  private async detach(): Promise<void> {
    for (const w of this.watches) await w.stop().catch(() => {});
    this.watches = [];
    this.session?.close();
    this.session = undefined;
    this.sock?.destroy();
    this.sock = undefined;
    this.channelState = 'none';
    clearTimeout(this.retryTimer);
    await this.working.catch(() => {});
    for (const m of this.mappers.values()) await m.close().catch(() => {});
    this.mappers.clear();
    this.model = undefined;
  }

  // --- channel side --------------------------------------------------------------------------

  private connectChannel(): void {
    if (this.abort.signal.aborted || !this.channelSocket || this.qmp?.state !== 'open') return;
    this.channelState = 'connecting';
    const sock = connect(this.channelSocket);
    this.sock = sock;
    sock.once('connect', () => {
      this.channelState = 'connected';
      this.deps.onStatus?.();
      this.log.info('channel connected', { socket: this.channelSocket });
      this.startSession(sock);
    });
    sock.once('error', (e) => this.log.debug('channel error', { error: e }));
    sock.once('close', () => {
      if (this.sock !== sock) return;
      this.channelState = 'connecting';
      this.session?.close();
      this.session = undefined;
      setTimeout(() => this.connectChannel(), 500).unref();
    });
  }

  private startSession(sock: Socket): void {
    const s = new GuestSession(sock, { hostId: this.deps.hostId, capabilities: ['resync', 'flush'] });
    this.session = s;
    let stale = new Set<string>();
    s.on('hello', (h) => {
      this.log.info('guest hello', { guestId: h.guestId, software: h.software, disks: h.disks.map((d) => d.serial) });
      // unknown serials are refused per file; a full resync follows, after which unseen files go
      stale = new Set(this.ownCompositions());
      // The guest remembers what it was asked (and the owner's pending requests): re-asking for a
      // path that waits for consent or was denied would file a new request for its owner every time
      // we reconnect. Only a new explicit request (requestShare) asks again.
      for (const path of this.wanted()) {
        const st = this.shares.get(path)?.status;
        if (st !== 'pending-consent' && st !== 'denied') s.share(path);
      }
      this.deps.onStatus?.();
    });
    s.on('file', (f) => {
      stale.delete(compositionName(this.cfg.name, f.path));
      if (this.shares.get(f.path)?.status !== 'shared') this.setShare(f.path, 'shared', 'shared by the owner');
      this.queue.set(f.fileId, { ...f, extents: [...f.extents] });
      this.schedule();
    });
    s.on('truncate', (f) => {
      this.queue.set(f.fileId, { ...f, extents: [...f.extents] });
      this.schedule();
    });
    s.on('remove', (f, reason) => {
      this.queue.delete(f.fileId);
      this.setShare(f.path, reason === 'consent-revoked' ? 'revoked' : reason, `removed: ${reason}`);
      this.enqueue(async () => this.removeFile(f.fileId, compositionName(this.cfg.name, f.path), reason));
    });
    s.on('synced', (n) => {
      // a share sent while the guest was still handshaking can be lost: ask again for what got no answer
      for (const path of this.wanted()) if ((this.shares.get(path)?.status ?? 'requested') === 'requested') s.share(path);
      this.enqueue(async () => {
        for (const name of stale) this.removeFile(undefined, name, 'not re-reported after resync');
        stale.clear();
        this.log.info('guest resync done', { files: n });
      });
    });
    s.on('shareStatus', (m) => {
      this.log.info('share status', { path: m.path, status: m.status, message: m.message });
      this.setShare(m.path, m.status, m.message);
    });
    s.on('guestError', (m) => this.log.warn('guest reported an error', { code: m.code, message: m.message }));
    s.on('protocolError', (e) => {
      this.deps.metrics.inc('livemr_channel_protocol_errors_total', 'malformed frames from the guest', { vm: this.cfg.name });
      this.log.warn('malformed frame from the guest', e);
    });
  }

  /** Compositions this VM's files own (agent-reserved prefix `<vm>_`). */
  private ownCompositions(): string[] {
    const prefix = `${this.cfg.name}_`;
    return this.deps.store.list().map((c) => c.name).filter((n) => n.startsWith(prefix));
  }

  private removeFile(fileId: number | undefined, name: string, reason: string): void {
    if (fileId !== undefined) this.files.delete(fileId);
    else for (const [id, t] of this.files) if (t.status.name === name) this.files.delete(id);
    if (this.deps.store.remove(name)) {
      this.log.info('shared file removed', { file: name, reason });
      this.deps.onChange?.(this.cfg.name, unescapePath(name.slice(this.cfg.name.length + 1)), 0, 'removed');
    }
  }

  // --- updates → compositions ----------------------------------------------------------------

  private enqueue(job: () => Promise<void>): void {
    // after stop() nothing may touch the store: the agent closes it next
    this.working = this.working.then(() => (this.abort.signal.aborted ? undefined : job())).catch((e: Error) => {
      this.lastError = e.message;
      this.log.error('update failed', { error: e });
    });
  }

  private scheduled = false;
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // one round per turn of the event loop: a burst of frames shares one metadata re-read
    setImmediate(() => {
      this.scheduled = false;
      this.enqueue(() => this.processQueue());
    });
  }

  /** Something may have changed the image metadata: re-read it and retry files with pending tails. */
  private kick(why: string): void {
    let any = false;
    for (const t of this.files.values()) {
      if (t.status.pendingRanges > 0) {
        this.queue.set(t.file.fileId, t.file);
        any = true;
      }
    }
    if (any) {
      this.log.debug('re-resolving pending ranges', { why });
      this.schedule();
    }
  }

  private async processQueue(): Promise<void> {
    if (this.queue.size === 0) return;
    const batch = [...this.queue.values()];
    this.queue.clear();
    const t0 = Date.now();
    // An external snapshot (blockdev-snapshot-sync) or a block job's graph change can put a new
    // image on top without an event we can rely on: compare the chains QEMU runs now with ours.
    if (this.qmp?.state === 'open' && (await this.chainsChanged(this.qmp))) {
      this.log.info('backing chain changed: reloading mappers and remapping every file');
      await this.loadBlockGraph(this.qmp);
      for (const t of this.files.values()) if (!this.queue.has(t.file.fileId)) batch.push(t.file);
    }
    // the helper reported these after FIEMAP_SYNC (a guest flush): QEMU's metadata on disk is
    // current, so drop every cached header/L1/L2 before translating
    const disks = new Set(batch.map((f) => f.disk));
    for (const serial of disks) await this.mappers.get(serial)?.invalidate();
    let pending = false;
    for (const f of batch) pending = (await this.apply(f)) || pending;
    this.lastApplyLatency = Date.now() - t0;
    this.deps.onStatus?.();
    this.deps.metrics.set('livemr_apply_latency_ms', 'time to apply the last batch of guest updates', { vm: this.cfg.name }, this.lastApplyLatency);
    clearTimeout(this.retryTimer);
    if (pending) {
      // ask the guest to flush (QEMU then writes its L2 tables) and try again, backing off
      this.retryTimer = setTimeout(() => {
        this.session?.flush(5000).catch(() => {}).finally(() => this.kick('pending retry'));
      }, this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    } else {
      this.retryDelay = 100;
    }
  }

  /** What QEMU runs per drive: root node and the image chain (one query-block round trip). */
  private async blockSignature(qmp: QmpClient): Promise<string> {
    const chain = (i: ImageInfo | undefined): string[] => (i ? [`${i.format}:${i.filename}`, ...chain(i.backing)] : []);
    return JSON.stringify((await queryBlock(qmp)).map((b) => [b.qdev, b.inserted?.nodeName, chain(b.inserted?.image)]));
  }

  private async chainsChanged(qmp: QmpClient): Promise<boolean> {
    return (await this.blockSignature(qmp)) !== this.blockSig;
  }

  /** Returns true when the file still has a pending tail. */
  private async apply(f: GuestFile): Promise<boolean> {
    const name = compositionName(this.cfg.name, f.path);
    const prev = this.files.get(f.fileId);
    const status: SharedFileStatus = prev?.status ?? {
      fileId: f.fileId, path: f.path, disk: f.disk, name, guestSize: 0, servedSize: 0, pendingRanges: 0, lastUpdateMs: 0,
    };
    if (prev && prev.status.name !== name) this.removeFile(undefined, prev.status.name, 'renamed'); // follows the inode
    Object.assign(status, { path: f.path, name, disk: f.disk, guestSize: f.size, lastUpdateMs: Date.now() });
    this.files.set(f.fileId, { status, file: f });
    const mapper = this.mappers.get(f.disk);
    let result;
    const before = this.deps.store.get(name)?.segments.size ?? 0;
    try {
      if (!mapper) throw new LayoutError(`the guest named disk serial '${f.disk}', which this VM does not have`);
      const layout = await layoutFile(f.size, f.extents, mapper);
      result = publish(this.deps.store, name, f.size, layout, f.changedFrom);
      status.refused = layout.refused;
      status.pendingRanges = layout.pending.length;
      if (layout.pending.length) status.pendingSinceMs ??= Date.now();
      else delete status.pendingSinceMs;
    } catch (e) {
      if (!(e instanceof LayoutError)) throw e;
      // a guest that names bytes outside its disks gets nothing served for that file
      status.refused = e.message;
      if (this.deps.store.get(name)) this.deps.store.remove(name);
      result = 'refused';
      this.deps.metrics.inc('livemr_refused_updates_total', 'guest updates refused', { vm: this.cfg.name });
    }
    const rewritten = f.changedFrom < before && (result === 'unchanged' || result === 'grown');
    f.changedFrom = Infinity; // acted on: the mount dropped its cached pages from there
    status.servedSize = this.deps.store.get(name)?.segments.size ?? 0;
    if (rewritten) this.deps.onChange?.(this.cfg.name, f.path, status.servedSize, 'rewritten');
    const change: SourceChange | undefined =
      result === 'refused' || result === 'removed' ? 'removed' : result === 'remapped' ? 'remapped'
        : result === 'truncated' ? 'shrunk' : status.servedSize > before ? 'grown' : undefined;
    if (change) this.deps.onChange?.(this.cfg.name, f.path, status.servedSize, change);
    if (result !== 'unchanged') {
      this.log.info('shared file updated', { file: name, path: f.path, result, guestSize: f.size, served: status.servedSize, pending: status.pendingRanges, ...(status.refused ? { refused: status.refused } : {}) });
    }
    return status.pendingRanges > 0;
  }

  status(): VmStatus {
    const files = [...this.files.values()].map((t) => ({ ...t.status }));
    const now = Date.now();
    const pendingAge = Math.max(0, ...files.filter((f) => f.pendingSinceMs).map((f) => now - f.pendingSinceMs!));
    const s: VmStatus = {
      name: this.cfg.name,
      qmp: this.qmp?.state === 'open' ? 'connected' : 'connecting',
      channel: this.channelState,
      disks: (this.model?.disks ?? []).map((d) => ({ serial: d.serial, file: d.file, format: d.format, chain: d.chain.map((l) => l.file) })),
      files,
      shares: [...this.shares.values()].map((r) => ({ ...r })),
      pendingRanges: files.reduce((a, f) => a + f.pendingRanges, 0),
      freshnessLagMs: pendingAge || this.lastApplyLatency,
    };
    if (this.model) s.runState = this.model.status;
    if (this.channelSocket) s.channelSocket = this.channelSocket;
    if (this.session?.guest) s.guest = { guestId: this.session.guest.guestId, software: this.session.guest.software };
    if (this.lastError) s.lastError = this.lastError;
    return s;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
