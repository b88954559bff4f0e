// `livemr host`: what a KVM host runs. Owns the composition store and the FUSE mount, keeps one
// VmLink per configured VM, answers the composition control socket (so `livemr compose` can build
// multi-VM files like the paper's BigLog while the agent runs), and serves /status (JSON) and
// /metrics (Prometheus) over HTTP — on a root-only unix socket in the state directory and on the
// API socket of the config's group (the panel, docs/host.md "API"); the configured TCP address,
// open to every local user, serves /metrics alone.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Server as NetServer } from 'node:net';
import { ComposedMount, CompositionStore, prepareMountpoint, resolveGroup, serveControl, socketPath, type CompositionInfo } from '../fs/index.js';
import { vmNameForDomain, type AgentConfig, type VmConfig } from './config.js';
import { LibvirtControl } from './control/index.js';
import { ListFlags, LibvirtSession, type LibvirtClient } from '../libvirt/index.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { BigLogError, BigLogs, type BigLogInfo, type BigLogSource } from './biglog.js';
import { LiveMrError } from '../errors/index.js';
import { badRequest, EventStreams, forbidden, notFound, readJson, Router, sendError, sendJson } from '../http/index.js';
import { VmLink, type VmStatus } from './vm-link.js';
import { writeFileAtomic } from '../durable/index.js';

const MAX_SEGMENT_LIST = 1000;
/** /events streams open at once, and what may wait for one client before it is dropped (docs/security.md) */
export const EVENT_STREAM_LIMITS = { max: 32, maxQueuedBytes: 8 << 20 };

/** The agent's compositions and BigLog definitions (GET /compositions + /biglogs, the `compositions` event). */
export interface CompositionsEvent {
  compositions: CompositionInfo[];
  bigLogs: BigLogInfo[];
}

export interface AgentStatus {
  host: string;
  mountpoint: string;
  stateDir: string;
  uptimeMs: number;
  compositions: number;
  vms: VmStatus[];
}

/**
 * Changes, and anything naming images or guest paths (status, compositions, events, BigLogs),
 * only over the unix sockets (no remote address: the root-only agent.sock, the group's API socket),
 * never over the metrics address: that one is open to every local user (issue 14 #8).
 */
function localOnly(req: IncomingMessage, what: string): void {
  if (req.socket.remoteAddress !== undefined) throw forbidden(`${what} over the agent socket only`);
}

export const statusSocketPath = (stateDir: string): string => join(stateDir, 'agent.sock');

export class HostAgent {
  private links: VmLink[] = [];
  /** names of every VM served (configured and discovered); BigLogs check sources against it */
  private readonly vmNames: string[];
  /** one libvirt connection for every libvirt VM, when the config has "libvirt" */
  private libvirt?: LibvirtSession;
  private hostId = '';
  private servers: (Server | NetServer)[] = [];
  private metricsServer?: Server;
  private readonly started = Date.now();
  readonly metrics = new Metrics();
  private stopping?: Promise<void>;
  readonly bigLogs: BigLogs;
  /** paths requested at run time per VM, persisted in <stateDir>/requests.json */
  private readonly requested: Record<string, string[]>;
  private subscribers = new Set<(s: AgentStatus) => void>();
  private statusTimer?: NodeJS.Timeout;
  private compSubscribers = new Set<(c: CompositionsEvent) => void>();
  private compTimer?: NodeJS.Timeout;
  private readonly streams = new EventStreams(EVENT_STREAM_LIMITS);

  private constructor(
    readonly cfg: AgentConfig,
    readonly store: CompositionStore,
    readonly mount: ComposedMount,
    private readonly log: Logger,
  ) {
    this.vmNames = cfg.vms.map((v) => v.name);
    this.bigLogs = new BigLogs(store, join(cfg.stateDir, 'biglogs.json'), log.child('biglog'), this.vmNames);
    const file = join(cfg.stateDir, 'requests.json');
    this.requested = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string[]>) : {};
  }

  /** Live status for views: called (debounced) whenever a VM's state changed; returns unsubscribe. */
  subscribe(fn: (s: AgentStatus) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Compositions and BigLogs after a change (debounced); returns unsubscribe. */
  subscribeCompositions(fn: (c: CompositionsEvent) => void): () => void {
    this.compSubscribers.add(fn);
    return () => this.compSubscribers.delete(fn);
  }

  compositions(): CompositionsEvent {
    return { compositions: this.store.list(), bigLogs: this.bigLogs.list() };
  }

  private compositionsChanged = (): void => {
    if (this.compTimer || this.compSubscribers.size === 0) return;
    this.compTimer = setTimeout(() => {
      this.compTimer = undefined;
      const c = this.compositions();
      for (const fn of this.compSubscribers) fn(c);
    }, 100);
  };

  private statusChanged(): void {
    if (this.statusTimer || this.subscribers.size === 0) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      const s = this.status();
      for (const fn of this.subscribers) fn(s);
    }, 100);
  }

  /** An analytics user asks for vm:path; the guest records it for the file's owner to decide. */
  requestShare(vm: string, path: string) {
    const link = this.links.find((l) => l.cfg.name === vm);
    if (!link) throw new BigLogError('HOST_UNKNOWN_VM', `unknown VM '${vm}'`);
    const rec = link.requestShare(path);
    const list = (this.requested[vm] ??= []);
    if (!list.includes(path)) {
      list.push(path);
      writeFileAtomic(join(this.cfg.stateDir, 'requests.json'), JSON.stringify(this.requested), { mode: 0o600 });
    }
    return rec;
  }

  static async start(cfg: AgentConfig, log: Logger = createLogger({ component: 'host' })): Promise<HostAgent> {
    // state is root-only: it names image files and guest paths
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    chmodSync(cfg.stateDir, 0o700);
    prepareMountpoint(cfg.mountpoint); // after kill -9: clean the stale mount before touching it
    const store = CompositionStore.open(cfg.stateDir);
    if (store.damage) log.error('composition journal damaged: its files are withheld until shared or composed again', { ...store.damage });
    let mount: ComposedMount;
    try {
      mount = await ComposedMount.mount(store, cfg.mountpoint, cfg.group ? { group: cfg.group } : {});
    } catch (e) {
      store.close();
      throw e;
    }
    const agent = new HostAgent(cfg, store, mount, log);
    store.on('change', agent.compositionsChanged);
    store.on('remove', agent.compositionsChanged);
    try {
      await agent.listen();
    } catch (e) {
      await agent.stop();
      throw e;
    }
    agent.hostId = cfg.hostname ?? hostname();
    if (cfg.libvirt) {
      const lv = new LibvirtSession({ uri: cfg.libvirt.uri, log: (m) => log.info(m) });
      agent.libvirt = lv;
      if (cfg.domains === '*') {
        // a domain started later, or after a libvirtd restart we may have missed, is found here
        lv.onConnected((c) => void agent.discover(c));
        lv.subscribe(null, (ev) => { if (ev.kind === 'lifecycle' && ev.event === 'STARTED') void lv.client().then((c) => agent.discover(c)); });
      }
      lv.start().catch(() => {}); // rejects only once stopped; connection trouble is retried and logged
    }
    for (const vm of cfg.vms) agent.addLink(vm);
    log.info('agent started', { mountpoint: cfg.mountpoint, stateDir: cfg.stateDir, vms: cfg.vms.map((v) => v.name), compositions: store.list().length });
    return agent;
  }

  private addLink(vm: VmConfig): void {
    const control = vm.domain !== undefined ? new LibvirtControl(this.libvirt!, vm.domain) : undefined;
    this.links.push(new VmLink(vm, {
      store: this.store, log: this.log, metrics: this.metrics, runDir: this.cfg.runDir, hostId: this.hostId,
      onChange: (vmName, path, size, change) => this.bigLogs.sourceChanged(vmName, path, size, change),
      onStatus: () => this.statusChanged(),
      requested: (this.requested[vm.name] ??= []),
      limits: vm.limits ?? this.cfg.limits,
      ...(control ? { control } : {}),
    }));
    if (!this.vmNames.includes(vm.name)) this.vmNames.push(vm.name);
  }

  /** "domains": "*": serves every running libvirt domain that no VM entry names yet. */
  private async discover(c: LibvirtClient): Promise<void> {
    if (this.stopping) return;
    let doms;
    try { doms = await c.listDomains(ListFlags.ACTIVE); } catch (e) {
      this.log.warn('cannot list libvirt domains', { error: e as Error });
      return;
    }
    for (const d of doms) {
      if (this.stopping || this.links.some((l) => l.cfg.domain === d.name)) continue;
      let name = vmNameForDomain(d.name);
      for (let i = 2; this.vmNames.includes(name); i++) name = `${vmNameForDomain(d.name).slice(0, 58)}-${i}`;
      this.log.info('libvirt domain discovered', { domain: d.name, vm: name });
      this.addLink({ name, domain: d.name, share: [] });
      this.statusChanged();
    }
  }

  private async listen(): Promise<void> {
    this.servers.push(await serveControl(this.store, socketPath(this.cfg.stateDir), () => void this.stop()));
    const handler = (req: IncomingMessage, res: ServerResponse) => this.serveHttp(req, res);
    const unixPath = statusSocketPath(this.cfg.stateDir);
    rmSync(unixPath, { force: true });
    const unix = createServer(handler);
    await new Promise<void>((resolve, reject) => unix.once('error', reject).listen(unixPath, () => resolve()));
    chmodSync(unixPath, 0o600);
    this.servers.push(unix);
    if (this.cfg.apiSocket) {
      // connecting to a unix socket needs write permission on it: the file mode is the access check
      const api = createServer(handler);
      rmSync(this.cfg.apiSocket, { force: true });
      await new Promise<void>((resolve, reject) => api.once('error', reject).listen(this.cfg.apiSocket, () => resolve()));
      this.servers.push(api);
      if (this.cfg.group) chownSync(this.cfg.apiSocket, 0, resolveGroup(this.cfg.group));
      chmodSync(this.cfg.apiSocket, this.cfg.group ? 0o660 : 0o600);
    }
    if (this.cfg.metrics) {
      const i = this.cfg.metrics.lastIndexOf(':');
      const host = this.cfg.metrics.slice(0, i).replace(/^\[|\]$/g, '');
      const port = Number(this.cfg.metrics.slice(i + 1));
      const tcp = createServer(handler);
      await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(port, host, () => resolve()));
      this.servers.push(tcp);
      this.metricsServer = tcp;
    }
  }

  /** The TCP address the metrics server listens on (port 0 in the config picks one). */
  metricsAddress(): { host: string; port: number } | undefined {
    const a = this.metricsServer?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  status(): AgentStatus {
    return {
      host: this.cfg.hostname ?? hostname(),
      mountpoint: this.cfg.mountpoint,
      stateDir: this.cfg.stateDir,
      uptimeMs: Date.now() - this.started,
      compositions: this.store.list().length,
      vms: this.links.map((l) => l.status()),
    };
  }

  private renderMetrics(): string {
    const m = this.metrics;
    const s = this.status();
    m.set('livemr_compositions', 'composed files on the mount', {}, s.compositions);
    for (const vm of s.vms) {
      const l = { vm: vm.name };
      m.set('livemr_vm_qmp_connected', '1 when the QMP monitor is connected', l, vm.qmp === 'connected' ? 1 : 0);
      m.set('livemr_vm_channel_connected', '1 when the guest channel is connected', l, vm.channel === 'connected' ? 1 : 0);
      m.set('livemr_vm_shared_files', 'shared guest files', l, vm.files.length);
      m.set('livemr_vm_pending_ranges', 'guest ranges waiting for QEMU to allocate them', l, vm.pendingRanges);
      m.set('livemr_vm_freshness_lag_ms', 'worst pending age, else last apply latency', l, vm.freshnessLagMs);
      m.set('livemr_vm_served_bytes', 'bytes of shared files served', l, vm.files.reduce((a, f) => a + f.servedSize, 0));
    }
    const fuse = this.mount.stats() as unknown as Record<string, number>;
    for (const [k, v] of Object.entries(fuse)) if (typeof v === 'number') m.set(`livemr_fuse_${k}`, `FUSE ${k}`, {}, v);
    return m.render();
  }

  private serveHttp(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://agent');
    this.api.dispatch(req, res, url).catch((e: unknown) => {
      if (!(e instanceof LiveMrError)) this.log.error('request failed', { url: url.pathname, error: e as Error });
      sendError(res, e);
    });
  }

  /** The agent's HTTP API (docs/host.md): /metrics on both listeners, the rest on the unix socket only. */
  private readonly api = new Router()
    .on('GET', '/status', ({ req, res }) => { localOnly(req, 'status'); sendJson(res, 200, this.status()); })
    .on('GET', '/metrics', ({ res }) => void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.renderMetrics()))
    .on('GET', '/biglogs', ({ req, res }) => { localOnly(req, 'BigLogs'); sendJson(res, 200, this.bigLogs.list()); })
    .on('GET', '/compositions', ({ req, res }) => { localOnly(req, 'compositions'); sendJson(res, 200, this.store.list()); })
    .on('GET', '/compositions/:name', ({ req, res, params }) => {
      localOnly(req, 'compositions');
      const c = this.store.list().find((x) => x.name === params.name);
      if (!c) throw notFound(`no composed file '${params.name}'`);
      const segs = this.store.segments(c.name);
      sendJson(res, 200, { ...c, segmentList: segs.slice(0, MAX_SEGMENT_LIST), segmentListTruncated: segs.length > MAX_SEGMENT_LIST });
    })
    .on('POST', '/biglogs', async ({ req, res }) => {
      localOnly(req, 'BigLogs are defined');
      const b = await readJson(req, 64 * 1024);
      if (typeof b.name !== 'string' || !Array.isArray(b.sources) ||
        !b.sources.every((x: unknown) => typeof (x as BigLogSource)?.vm === 'string' && typeof (x as BigLogSource)?.path === 'string')) {
        throw badRequest('body must be {name, sources: [{vm, path}]}');
      }
      this.bigLogs.join(b.name, b.sources as BigLogSource[]);
      sendJson(res, 200, this.bigLogs.list().find((x) => x.name === b.name));
    })
    .on('POST', '/shares', async ({ req, res }) => {
      localOnly(req, 'shares are requested');
      const b = await readJson(req, 16 * 1024);
      if (typeof b.vm !== 'string' || typeof b.path !== 'string') throw badRequest('body must be {vm, path}');
      sendJson(res, 200, this.requestShare(b.vm, b.path));
    })
    .on('GET', '/events', ({ req, res }) => {
      localOnly(req, 'events');
      // server-sent events: full snapshots on connect and after every change — `status` (VMs, shares,
      // files) and `compositions` ({compositions, bigLogs}); a client never has to diff
      const offs: (() => void)[] = [];
      const send = this.streams.open(req, res, () => { for (const off of offs) off(); });
      send('status', this.status());
      send('compositions', this.compositions());
      offs.push(this.subscribe((st) => send('status', st)), this.subscribeCompositions((c) => send('compositions', c)));
    });

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('agent stopping');
      await Promise.all(this.links.map((l) => l.stop()));
      await this.libvirt?.stop();
      for (const s of this.servers) {
        s.close();
        if ('closeAllConnections' in s) s.closeAllConnections(); // event streams end: their clients see the agent go
      }
      clearTimeout(this.compTimer);
      this.store.off('change', this.compositionsChanged);
      this.store.off('remove', this.compositionsChanged);
      try {
        await this.mount.unmount();
      } finally {
        this.store.close();
        rmSync(statusSocketPath(this.cfg.stateDir), { force: true });
        if (this.cfg.apiSocket) rmSync(this.cfg.apiSocket, { force: true });
        this.log.info('agent stopped');
      }
    })();
    return this.stopping;
  }
}
