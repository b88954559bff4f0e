// VmControl for a libvirt domain (docs/libvirt.md): libvirtd is the only client of the domain's
// monitor, so everything goes through libvirt's own calls on one shared connection (LibvirtSession):
// the image chain from the live XML (<source>, <backingStore>), the channel hot-plugged with
// attach-device (live only, so it is plugged again on every start), allocation watches with
// virDomainSetBlockThreshold + BLOCK_THRESHOLD, block jobs and lifecycle from events. No QMP
// passthrough: nothing here taints the domain.
//
// A control session lives as long as one run of the domain on one libvirt connection: it ends when
// the domain stops, is started again (new id) or the connection to libvirtd drops; VmLink then
// connects again, which waits for the domain to run, re-reads the XML and plugs the channel again.
import {
  channelDeviceXml, diskKey, LibvirtRpcError, parseDomainXml, StatsFlags, StatsTypes, typedNumber, typedString, VIR_ERR,
  type DomainDescription, type DomainEvent, type DomainRef, type LibvirtClient, type LibvirtSession,
} from '../../libvirt/index.js';
import type { ChainLayer, VmDisk, VmModel } from '../../qmp/index.js';
import type { AllocationWatch, AllocationWatchOptions, ChannelPlug, VmControl, VmControlSession, VmEvent } from './types.js';

export const LIBVIRT_CHANNEL_PORT = 'org.livemr.0';

const RUN_STATE: Record<string, string> = {
  RUNNING: 'running', BLOCKED: 'running', PAUSED: 'paused', SHUTDOWN: 'shutdown', SHUTOFF: 'shutdown', CRASHED: 'crashed', PMSUSPENDED: 'suspended',
};

export interface LibvirtControlOptions {
  /** how often to look again for a domain that is not running (default 1000 ms; events wake it sooner) */
  pollMs?: number;
}

export class LibvirtControl implements VmControl {
  readonly kind = 'libvirt';
  readonly address: string;
  constructor(private readonly session: LibvirtSession, readonly domain: string, private readonly o: LibvirtControlOptions = {}) {
    this.address = `libvirt domain ${domain}`;
  }

  /** Waits for libvirtd and for the domain to be running, then opens a control session on it. */
  async connect(signal: AbortSignal): Promise<VmControlSession> {
    let wake: (() => void) | undefined;
    const unsub = this.session.subscribe(this.domain, () => wake?.());
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        signal.throwIfAborted();
        const client = await abortable(this.session.client(), signal);
        try {
          const dom = await client.lookupDomain(this.domain);
          const { state } = await client.domainState(dom);
          if (state === 'RUNNING' || state === 'PAUSED' || state === 'BLOCKED') {
            return new LibvirtControlSession(this.session, client, await client.lookupDomain(this.domain));
          }
        } catch (e) {
          // not defined yet, or libvirtd went away between the calls: look again
          if (!(e instanceof LibvirtRpcError && e.virCode === VIR_ERR.NO_DOMAIN) && client.isOpen) throw e;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, this.o.pollMs ?? 1000);
          function done() { clearTimeout(t); resolve(); }
          wake = done;
        });
      }
    } finally {
      unsub();
      signal.removeEventListener('abort', onAbort);
    }
  }
}

interface Threshold { dev: string; next: number; step: number; onCrossing: () => void; stopped: boolean }

export class LibvirtControlSession implements VmControlSession {
  readonly closed: Promise<Error | undefined>;
  private end!: (why: Error | undefined) => void;
  private ended = false;
  private readonly handlers = new Set<(ev: VmEvent) => void>();
  private readonly thresholds = new Map<string, Threshold>();
  private readonly unsubscribe: () => void;
  channelSocketPath?: string;

  constructor(session: LibvirtSession, private readonly client: LibvirtClient, readonly dom: DomainRef) {
    this.closed = new Promise((r) => (this.end = r));
    this.unsubscribe = session.subscribe(dom.name, (ev) => this.onDomainEvent(ev));
    void client.closed.then((why) => this.finish(new Error(`libvirt connection lost: ${why?.message ?? 'closed'}`)));
  }

  get open(): boolean {
    return !this.ended && this.client.isOpen;
  }

  async describe(): Promise<VmModel> {
    const [desc, state, stats] = await Promise.all([
      this.liveXml(),
      this.client.domainState(this.dom),
      this.client.allDomainStats([this.dom], StatsTypes.BLOCK, StatsFlags.BACKING).catch(() => []),
    ]);
    const params = stats[0]?.params ?? [];
    const capacity = (dev: string): number => {
      for (let i = 0; i < (typedNumber(params, 'block.count') ?? 0); i++) {
        if (typedString(params, `block.${i}.name`) === dev) return typedNumber(params, `block.${i}.capacity`) ?? 0;
      }
      return 0;
    };
    const disks: VmDisk[] = [];
    for (const d of desc.disks) {
      const top = d.chain[0];
      if (!top) continue; // no local image (network disk, empty drive)
      const size = capacity(d.dev);
      const node = (i: number | null, kind: string) => (i === null ? `${d.dev}-${kind}` : `libvirt-${i}-${kind}`);
      const chain: ChainLayer[] = d.chain.map((l, i) => ({
        nodeName: node(l.index, 'format'), format: l.format, file: l.file, fileNodeName: node(l.index, 'storage'),
        protocol: 'file', readOnly: i > 0 || d.readonly, virtualSize: size,
      }));
      disks.push({
        qdevId: d.alias, qomPath: null, device: d.dev, serial: diskKey(d),
        nodeName: chain[0]!.nodeName, fileNodeName: chain[0]!.fileNodeName, format: top.format, file: top.file,
        readOnly: d.readonly, virtualSize: size, chain,
      });
    }
    const status = RUN_STATE[state.state] ?? state.state.toLowerCase();
    return { status, running: status === 'running', disks };
  }

  async chainSignature(): Promise<string> {
    const desc = await this.liveXml();
    return JSON.stringify(desc.disks.map((d) => [d.dev, d.chain.map((l) => `${l.format}:${l.file}`)]));
  }

  /** Attaches the port unless the live XML has it (an earlier agent run, or before a libvirtd restart). */
  async plugChannel(): Promise<ChannelPlug> {
    const existing = (await this.liveXml()).channels.find((c) => c.name === LIBVIRT_CHANNEL_PORT && c.path);
    if (existing) {
      this.channelSocketPath = existing.path!;
      return 'already-plugged';
    }
    await this.client.attachDevice(this.dom, channelDeviceXml(LIBVIRT_CHANNEL_PORT));
    const plugged = (await this.liveXml()).channels.find((c) => c.name === LIBVIRT_CHANNEL_PORT && c.path);
    if (!plugged) throw new Error(`libvirt attached ${LIBVIRT_CHANNEL_PORT} to ${this.dom.name} but its live XML names no socket`);
    this.channelSocketPath = plugged.path!;
    return 'plugged';
  }

  /** virDomainSetBlockThreshold on the disk's top image; re-armed `step` past each BLOCK_THRESHOLD. */
  async watchAllocation(disk: VmDisk, o: AllocationWatchOptions): Promise<AllocationWatch> {
    const dev = disk.device;
    if (!dev) throw new Error('libvirt disk without a target dev');
    await this.client.setBlockThreshold(this.dom, dev, o.threshold);
    const t: Threshold = { dev, next: o.threshold, step: o.step, onCrossing: o.onCrossing, stopped: false };
    this.thresholds.set(dev, t);
    return {
      stop: async () => {
        t.stopped = true;
        if (this.thresholds.get(dev) === t) this.thresholds.delete(dev);
        if (this.open) await this.client.setBlockThreshold(this.dom, dev, 0).catch(() => {});
      },
    };
  }

  onEvent(fn: (ev: VmEvent) => void): () => void {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }

  async close(): Promise<void> {
    this.finish(undefined);
  }

  private async liveXml(): Promise<DomainDescription> {
    return parseDomainXml(await this.client.domainXml(this.dom));
  }

  private emit(ev: VmEvent): void {
    for (const fn of this.handlers) fn(ev);
  }

  private onDomainEvent(ev: DomainEvent): void {
    if (this.ended) return;
    switch (ev.kind) {
      case 'lifecycle':
        if (ev.event === 'STOPPED' || ev.event === 'CRASHED' || ev.event === 'UNDEFINED' || (ev.event === 'STARTED' && ev.domain.id !== this.dom.id)) {
          this.finish(new Error(`domain ${this.dom.name} ${ev.event.toLowerCase()}`));
        } else if (ev.event === 'SUSPENDED') this.emit({ kind: 'lifecycle', name: 'SUSPENDED', runState: 'paused' });
        else if (ev.event === 'RESUMED') this.emit({ kind: 'lifecycle', name: 'RESUMED', runState: 'running' });
        else if (ev.event === 'SHUTDOWN') this.emit({ kind: 'lifecycle', name: 'SHUTDOWN', runState: 'shutdown' });
        return;
      case 'reboot':
        this.emit({ kind: 'lifecycle', name: 'REBOOT', runState: 'running' });
        return;
      case 'block-job':
        // a pull, commit, copy or its pivot changed what the chain holds
        if (ev.status !== 'READY') this.emit({ kind: 'graph-changed', name: `BLOCK_JOB_${ev.job}_${ev.status}`, data: { disk: ev.disk } });
        return;
      case 'block-threshold': {
        // libvirt reports a crossing on the top image twice: as "vdb" and as "vdb[N]"; act on "vdb"
        const t = this.thresholds.get(ev.dev);
        if (!t || t.stopped) return;
        t.next = Number(ev.threshold + ev.excess) + t.step;
        this.client.setBlockThreshold(this.dom, t.dev, t.next).catch(() => {});
        t.onCrossing();
        return;
      }
      default:
    }
  }

  private finish(why: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe();
    this.thresholds.clear();
    this.end(why);
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); }, (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e as Error); });
  });
}
