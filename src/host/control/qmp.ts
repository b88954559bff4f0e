// VmControl over QEMU's own QMP monitor (the agent's own -qmp socket: QEMU serves one client per
// monitor). The block graph comes from describeVm, chain changes from one query-block, allocation
// from BLOCK_WRITE_THRESHOLD, the channel from chardev-add + device_add (src/qmp).
import {
  addChannel, connectWithBackoff, describeVm, ExecuteError, GRAPH_CHANGE_EVENTS, LIFECYCLE_EVENTS, queryBlock, queryBlockstats, watchWriteThreshold,
  type ImageInfo, type QmpClient,
} from '../../qmp/index.js';
import type { AllocationWatch, AllocationWatchOptions, ChannelPlug, DiskCounters, VmControl, VmControlSession, VmEvent } from './types.js';

/** qdev id of the hot-plugged port; the same every run, so a second run finds it plugged */
export const CHANNEL_DEVICE_ID = 'livemr-channel';

const RUN_STATE: Record<(typeof LIFECYCLE_EVENTS)[number], string> = { STOP: 'paused', RESUME: 'running', SHUTDOWN: 'shutdown', RESET: 'running' };

export interface QmpControlOptions {
  /** per-command timeout (default 10 s) */
  commandTimeoutMs?: number;
  /** longest wait between connection attempts (default 5 s) */
  maxDelayMs?: number;
}

export class QmpControl implements VmControl {
  readonly kind = 'qmp';
  constructor(readonly address: string, private readonly o: QmpControlOptions = {}) {}

  async connect(signal: AbortSignal): Promise<VmControlSession> {
    const client = await connectWithBackoff(this.address, { signal, maxDelayMs: this.o.maxDelayMs ?? 5000, commandTimeoutMs: this.o.commandTimeoutMs ?? 10_000 });
    return new QmpControlSession(client);
  }
}

/** A control session over one connected QmpClient (also usable on a client made elsewhere). */
export class QmpControlSession implements VmControlSession {
  readonly closed: Promise<Error | undefined>;
  constructor(readonly client: QmpClient) {
    this.closed = client.closed.then((e) => e ?? undefined);
  }

  get open(): boolean { return this.client.state === 'open'; }

  describe() { return describeVm(this.client); }

  async chainSignature(): Promise<string> {
    const chain = (i: ImageInfo | undefined): string[] => (i ? [`${i.format}:${i.filename}`, ...chain(i.backing)] : []);
    return JSON.stringify((await queryBlock(this.client)).map((b) => [b.qdev, b.inserted?.nodeName, chain(b.inserted?.image)]));
  }

  async plugChannel(socketPath: string): Promise<ChannelPlug> {
    try {
      await addChannel(this.client, { id: CHANNEL_DEVICE_ID, socketPath });
      return 'plugged';
    } catch (e) {
      // plugged by an earlier run of the agent: same id, same socket path
      if (e instanceof ExecuteError && /Duplicate|already/i.test(e.desc)) return 'already-plugged';
      throw e;
    }
  }

  watchAllocation(disk: { fileNodeName: string }, o: AllocationWatchOptions): Promise<AllocationWatch> {
    return watchWriteThreshold(this.client, { nodeName: disk.fileNodeName, threshold: o.threshold, step: o.step, onCrossing: () => { o.onCrossing(); } });
  }

  async diskCounters(): Promise<Map<string, DiskCounters>> {
    const out = new Map<string, DiskCounters>();
    for (const s of await queryBlockstats(this.client)) {
      if (!s.qdev) continue;
      out.set(s.qdev, {
        flushOperations: s.flushOperations,
        ...(s.unmapOperations !== undefined ? { unmapOperations: s.unmapOperations } : {}),
        ...(s.unmapBytes !== undefined ? { unmapBytes: s.unmapBytes } : {}),
        ...(s.fileDiscards !== undefined ? { fileDiscards: s.fileDiscards, fileDiscardBytes: s.fileDiscardBytes! } : {}),
      });
    }
    return out;
  }

  onEvent(fn: (ev: VmEvent) => void): () => void {
    return this.client.onEvent((ev) => {
      const run = RUN_STATE[ev.event as keyof typeof RUN_STATE];
      fn(run ? { kind: 'lifecycle', name: ev.event, runState: run } : { kind: 'graph-changed', name: ev.event, data: ev.data });
    }, [...GRAPH_CHANGE_EVENTS, ...LIFECYCLE_EVENTS]);
  }

  close(): Promise<void> { return this.client.close(); }
}
