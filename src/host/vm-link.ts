// One VM as the agent sees it, put together from parts with one job each (docs/host.md#structure):
// the control plane (block graph, events; VmControl) → the disk maps (an image mapper per guest
// disk); the guest channel (org.livemr.0 → GuestSession) → the share book (what was asked, where it
// stands) and the file sync (file reports → compositions). Survives QEMU restarts (reconnects with
// backoff), guest reboots (the helper says hello again → full resync) and channel drops. Everything
// the guest sends is checked against what the control plane says the VM has.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CompositionStore } from '../fs/index.js';
import type { GuestSession } from '../guest/index.js';
import type { VmConfig } from './config.js';
import { QmpControl, type VmControl, type VmControlSession, type VmEvent } from './control/index.js';
import { DiskMaps } from './disk-maps.js';
import { FileSync, type SharedFileStatus, type SourceChange } from './file-sync.js';
import { GuestChannel, type ChannelState, type Dial } from './guest-channel.js';
import { LayoutError } from './layout.js';
import { DEFAULT_GUEST_LIMITS, GuestLimitError, type GuestLimitCode, type GuestLimits } from './limits.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { ShareBook, type ShareRecord } from './shares.js';

export type { SharedFileStatus, SourceChange } from './file-sync.js';
export type { ShareRecord, ShareRecordStatus } from './shares.js';

export interface VmStatus {
  name: string;
  /** the control plane's state (QMP or libvirt; the field keeps its first name) */
  qmp: 'connecting' | 'connected';
  /** which control plane: 'qmp' or 'libvirt', and where it connects (a socket, a URI and domain) */
  control: { kind: string; address: string };
  runState?: string;
  channel: ChannelState;
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
  /** the VM's control plane (default: QMP on cfg.qmp) */
  control?: VmControl;
  /** opens the channel socket (default: unix socket) */
  dial?: Dial;
  /** pause before redialing a dropped channel / retrying a failed control connection (tests) */
  channelRetryMs?: number;
  controlRetryMs?: number;
  /** how long files journaled by an earlier run wait for the guest's confirmation (FileSyncOptions) */
  unconfirmedTtlMs?: number;
  /** the disks' unmap counters' poll period (DiskMapsOptions; default 1 s) */
  discardPollMs?: number;
  /** what this VM's guest may make the agent hold or do (default DEFAULT_GUEST_LIMITS) */
  limits?: GuestLimits;
}

const LIMIT_CODE = { files: 'HOST_LIMIT_FILES', extents: 'HOST_LIMIT_EXTENTS', continuation: 'HOST_LIMIT_CONTINUATION' } as const satisfies Record<string, GuestLimitCode>;

export class VmLink {
  private abort = new AbortController();
  private ctl?: VmControlSession;
  private readonly control: VmControl;
  private readonly disks: DiskMaps;
  private readonly channel: GuestChannel;
  private readonly shares: ShareBook;
  private readonly sync: FileSync;
  private lastError?: string;
  private readonly log: Logger;
  /** refusals for a limit not logged yet (one line per code per 10 s, with the count) */
  private limitLog = new Map<string, { at: number; unlogged: number }>();
  readonly done: Promise<void>;

  constructor(readonly cfg: VmConfig, private readonly deps: VmLinkDeps) {
    this.log = deps.log.child('vm', { vm: cfg.name });
    if (!deps.control && !cfg.qmp) throw new Error(`VM ${cfg.name}: no QMP socket and no control plane given`);
    this.control = deps.control ?? new QmpControl(cfg.qmp!);
    const onStatus = () => deps.onStatus?.();
    const limits = deps.limits ?? DEFAULT_GUEST_LIMITS;
    this.shares = new ShareBook(cfg.share, deps.requested ?? [], onStatus, 4 * limits.maxFiles);
    this.disks = new DiskMaps({
      log: this.log, onAllocation: (serial) => this.sync.kick(`write threshold on ${serial}`),
      onDiscard: (serial, why) => this.onDiscard(serial, why),
      ...(deps.discardPollMs !== undefined ? { discardPollMs: deps.discardPollMs } : {}),
    });
    this.sync = new FileSync({
      vm: cfg.name, store: deps.store, disks: this.disks, log: this.log, metrics: deps.metrics, signal: this.abort.signal,
      reloadIfChanged: async () => (this.ctl?.open ? this.disks.reloadIfChanged(this.ctl) : false),
      flush: () => this.channel.session?.flush(5000),
      onStatus,
      onError: (e) => { this.lastError = e.message; },
      ...(deps.onChange ? { onChange: deps.onChange } : {}),
      ...(deps.unconfirmedTtlMs !== undefined ? { unconfirmedTtlMs: deps.unconfirmedTtlMs } : {}),
      journal: { perSec: limits.journalUpdatesPerSec, burst: limits.journalBurst },
      onLimit: (e) => this.overLimit(e),
      onWork: (ms) => this.channel.charge(ms),
    });
    this.channel = new GuestChannel({
      hostId: deps.hostId, log: this.log, onStatus, onSession: (s) => this.attachSession(s),
      live: () => !this.abort.signal.aborted && this.ctl?.open === true,
      limits: { maxFiles: limits.maxFiles, maxExtentsPerFile: limits.maxExtentsPerFile, maxExtentsTotal: limits.maxExtentsPerVm, maxContinuationFrames: limits.maxContinuationFrames },
      rate: { bytesPerSec: limits.channelBytesPerSec, burstBytes: limits.channelBurstBytes },
      busy: { msPerSec: limits.busyMsPerSec, burstMs: limits.busyBurstMs },
      onThrottle: () => deps.metrics.inc('livemr_channel_throttled_total', 'times a guest channel was paused for its byte rate or busy budget', { vm: cfg.name }),
      ...(deps.dial ? { dial: deps.dial } : {}),
      ...(deps.channelRetryMs !== undefined ? { retryMs: deps.channelRetryMs } : {}),
    });
    this.done = this.run();
  }

  /** Asks the guest to share a file; the owner's consent decides (see shares in status()). */
  requestShare(path: string): ShareRecord {
    if (!path.startsWith('/') || path.includes('\0') || Buffer.byteLength(path) > 4096) throw new LayoutError(`bad guest path '${path}'`, 'HOST_BAD_GUEST_PATH');
    const s = this.channel.session;
    const rec = this.shares.record(path, { kind: 'requested' }, s ? 'sent to the guest' : 'will be sent when the guest connects');
    s?.share(path);
    return rec;
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('agent stopping'));
    await this.ctl?.close().catch(() => {});
    await this.done;
  }

  // --- control plane -------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        this.ctl = await this.control.connect(this.abort.signal);
        this.log.info('QMP connected', { qmp: this.control.address, control: this.control.kind });
        await this.attach(this.ctl);
        const why = await this.ctl.closed;
        this.log.warn('QMP connection ended', { reason: why?.message ?? 'closed' });
      } catch (e) {
        if (this.abort.signal.aborted) break;
        this.lastError = (e as Error).message;
        this.log.error('VM link failed; retrying', { error: e as Error });
        await this.ctl?.close().catch(() => {});
        await sleep(this.deps.controlRetryMs ?? 1000, this.abort.signal);
      } finally {
        await this.detach();
      }
    }
  }

  private async attach(ctl: VmControlSession): Promise<void> {
    ctl.onEvent((ev) => this.onVmEvent(ev));
    await this.disks.load(ctl);
    this.channel.open(await this.channelSocket(ctl));
  }

  private onVmEvent(ev: VmEvent): void {
    this.deps.metrics.inc('livemr_qmp_events_total', 'QMP events seen', { vm: this.cfg.name, event: ev.name });
    if (ev.kind === 'graph-changed') {
      // block jobs and corruption change what the image chain holds: rebuild and remap everything
      this.log.info('block graph event: remapping', { event: ev.name, data: ev.data });
      this.sync.remapAll(async () => { if (this.ctl?.open) await this.disks.load(this.ctl); });
    } else {
      this.disks.setRunState(ev.runState);
      this.log.info('guest lifecycle event', { event: ev.name });
    }
  }

  /**
   * The guest discarded ranges of a disk (or flushed it after a discard): QEMU may have freed and
   * reused clusters the files' segments point at. Every file on the disk is re-verified at once;
   * after a discard the guest is also asked to flush — its flush makes QEMU write the discard's
   * metadata — and the files are verified again when it is done.
   */
  private onDiscard(serial: string, why: 'discard' | 'flush'): void {
    this.deps.metrics.inc('livemr_disk_reverify_total', 'disk mappings re-verified after a discard or the flush after one', { vm: this.cfg.name, why });
    this.sync.reverifyDisk(serial, why === 'discard' ? 'the guest discarded ranges of the disk' : 'the disk was flushed after a discard');
    if (why !== 'discard') return;
    this.channel.session?.flush(5000)
      .then(() => this.sync.reverifyDisk(serial, 'the guest flushed after a discard'))
      .catch(() => { /* no answer: the flush counter's next change verifies again */ });
  }

  /** The channel socket: the config's, else a hot-plugged org.livemr.0 port in runDir. */
  private async channelSocket(ctl: VmControlSession): Promise<string> {
    if (this.cfg.channel) return this.cfg.channel;
    mkdirSync(this.deps.runDir, { recursive: true, mode: 0o700 });
    const path = join(this.deps.runDir, `${this.cfg.name}.channel.sock`);
    const plug = await ctl.plugChannel(path);
    const socket = ctl.channelSocketPath ?? path;
    this.log.info(plug === 'plugged' ? 'hot-plugged the LiveMR channel' : 'LiveMR channel already plugged', { socket });
    return socket;
  }

  private async detach(): Promise<void> {
    await this.disks.stopWatches();
    this.channel.close();
    await this.sync.idle();
    await this.disks.detach();
  }

  // --- guest session -------------------------------------------------------------------------

  private attachSession(s: GuestSession): void {
    s.on('hello', (h) => {
      this.log.info('guest hello', { guestId: h.guestId, software: h.software, disks: h.disks.map((d) => d.serial) });
      // unknown serials are refused per file; a full resync follows, after which unseen files go
      this.sync.resyncStarted();
      for (const path of this.shares.toAskOnHello()) s.share(path);
      this.deps.onStatus?.();
    });
    s.on('file', (f) => {
      this.shares.record(f.path, { kind: 'file' }, 'shared by the owner');
      this.sync.reported(f);
    });
    s.on('truncate', (f) => this.sync.truncated(f));
    s.on('remove', (f, reason) => {
      this.shares.record(f.path, { kind: 'removed', reason }, `removed: ${reason}`);
      this.sync.removed(f, reason);
    });
    s.on('synced', (n) => {
      // a share sent while the guest was still handshaking can be lost: ask again for what got no answer
      for (const path of this.shares.toAskAfterResync()) s.share(path);
      this.sync.resyncDone(n);
    });
    s.on('shareStatus', (m) => {
      // a status of a path never asked for would only grow the book (and every status view)
      if (!this.shares.asked(m.path)) {
        this.deps.metrics.inc('livemr_unasked_share_status_total', 'share statuses for paths the host never asked for, ignored', { vm: this.cfg.name });
        return;
      }
      this.log.info('share status', { path: m.path, status: m.status, message: m.message });
      this.shares.record(m.path, { kind: 'answered', status: m.status }, m.message);
    });
    s.on('refused', (f, why) => {
      const e = new GuestLimitError(LIMIT_CODE[why.limit], `${f.path}: ${why.message}`);
      this.overLimit(e);
      // a file over the count was never in the table: nothing of it is served, nothing to withdraw
      if (why.limit !== 'files') this.sync.refuse(f, e);
    });
    s.on('guestError', (m) => this.log.warn('guest reported an error', { code: m.code, message: m.message }));
    s.on('protocolError', (e) => {
      this.deps.metrics.inc('livemr_channel_protocol_errors_total', 'malformed frames from the guest', { vm: this.cfg.name });
      this.log.warn('malformed frame from the guest', e);
    });
  }

  /** A report over a limit: counted, and logged once per code per 10 s (a flood must not flood the log). */
  private overLimit(e: GuestLimitError): void {
    this.deps.metrics.inc('livemr_guest_limit_refusals_total', 'guest reports refused for a per-VM limit', { vm: this.cfg.name, code: e.code });
    this.lastError = `${e.code}: ${e.message}`;
    const now = Date.now();
    const l = this.limitLog.get(e.code);
    if (l && now - l.at < 10_000) { l.unlogged++; return; }
    this.log.warn('guest report over a limit: refused', { code: e.code, error: e.message, ...(l?.unlogged ? { alsoRefused: l.unlogged } : {}) });
    this.limitLog.set(e.code, { at: now, unlogged: 0 });
  }

  status(): VmStatus {
    const files = this.sync.status();
    const now = Date.now();
    const pendingAge = Math.max(0, ...files.filter((f) => f.pendingSinceMs).map((f) => now - f.pendingSinceMs!));
    const model = this.disks.model;
    const session = this.channel.session;
    const s: VmStatus = {
      name: this.cfg.name,
      qmp: this.ctl?.open ? 'connected' : 'connecting',
      control: { kind: this.control.kind, address: this.control.address },
      channel: this.channel.state,
      disks: (model?.disks ?? []).map((d) => ({ serial: d.serial, file: d.file, format: d.format, chain: d.chain.map((l) => l.file) })),
      files,
      shares: this.shares.list(),
      pendingRanges: files.reduce((a, f) => a + f.pendingRanges, 0),
      freshnessLagMs: pendingAge || this.sync.lastApplyLatency,
    };
    if (model) s.runState = model.status;
    if (this.channel.socketPath) s.channelSocket = this.channel.socketPath;
    if (session?.guest) s.guest = { guestId: session.guest.guestId, software: session.guest.software };
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
