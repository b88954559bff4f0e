// One connection to a libvirt daemon over its unix socket, speaking the RPC protocol directly:
// calls correlated by serial with any number in flight, per-call timeouts, domain events fanned out
// to handlers, and the keepalive program (we answer the daemon's PINGs and send our own, so a hung
// daemon is noticed). Any breach by the peer (bad frame, bad XDR, unknown serial) ends the
// connection and rejects every pending call with the reason; nothing is retried here — see
// session.ts for reconnecting. Opening follows libvirt's remote driver: AUTH_LIST, keepalive
// feature probe, CONNECT_OPEN.
import net from 'node:net';
import {
  decodeEvent, readDomain, readRemoteError, readTypedParam, writeDomain, writeTypedParam,
  type DomainEvent, type DomainRef, type TypedParam,
} from './codec.js';
import {
  LibvirtAuthError, LibvirtConnectError, LibvirtDisconnectedError, LibvirtError, LibvirtKeepaliveError,
  LibvirtProtocolError, LibvirtRpcError, LibvirtStateError, LibvirtTimeoutError,
} from './errors.js';
import { encodePacket, PacketSplitter, type Packet } from './framing.js';
import {
  Affect, AuthType, DOMAIN_STATES, Feature, KEEPALIVE_PROC, KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION, LIMITS,
  ListFlags, MessageStatus, MessageType, PROC, PROC_NAMES, REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION,
  TYPED_PARAM_STRING_OKAY, type EventIdName, EventId,
} from './protocol.js';
import { resolveUri } from './uri.js';
import { XdrReader, XdrWriter } from './xdr.js';

export interface ClientOptions {
  /** libvirt URI (default qemu:///system) */
  uri?: string;
  /** socket to dial instead of the one the URI maps to */
  socketPath?: string;
  /** bound on connect + auth + open (default 10000 ms) */
  connectTimeoutMs?: number;
  /** default per-call timeout; 0 = none (default 30000 ms) */
  callTimeoutMs?: number;
  /** idle time before we PING the daemon (default 5000 ms; 0 = no keepalive of our own) */
  keepaliveIntervalMs?: number;
  /** unanswered intervals before the connection is declared dead (default 5, like libvirt's) */
  keepaliveCount?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

export interface DomainStatsRecord {
  domain: DomainRef;
  params: TypedParam[];
}

type Pending = { proc: string; resolve: (p: Buffer) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout };

const MAX_ABANDONED = 1024;

export class LibvirtClient {
  private readonly splitter = new PacketSplitter();
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Set<number>();
  private readonly eventHandlers = new Set<(ev: DomainEvent) => void>();
  private serial = 1;
  private endReason: LibvirtError | null | undefined = undefined; // undefined = open
  private resolveClosed!: (r: LibvirtError | null) => void;
  private keepaliveTimer?: NodeJS.Timeout;
  private idleIntervals = 0;
  private readonly callTimeoutMs: number;
  /** Resolves when the connection ends: null after close(), else the error that ended it. */
  readonly closed: Promise<LibvirtError | null>;
  /** the URI the daemon opened */
  uri = '';

  private constructor(private readonly socket: net.Socket, readonly socketPath: string, private readonly opts: ClientOptions) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 30_000;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => this.fail(new LibvirtDisconnectedError(`socket error: ${e.code ?? e.message}`, { cause: e })));
    socket.on('close', () => this.fail(new LibvirtDisconnectedError('connection closed by libvirtd')));
  }

  /** Connects and opens the URI. Throws LibvirtConnectError, LibvirtAuthError, LibvirtRpcError, ... */
  static async connect(opts: ClientOptions = {}): Promise<LibvirtClient> {
    const resolved = resolveUri(opts.uri ?? 'qemu:///system');
    const socketPath = opts.socketPath ?? resolved.socketPath;
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const socket = await openSocket(socketPath, timeoutMs);
    const c = new LibvirtClient(socket, socketPath, opts);
    const callOpts = { timeoutMs };
    try {
      const auth = await c.call(PROC.AUTH_LIST, undefined, (r) => r.array(LIMITS.AUTH_TYPE_LIST_MAX, (x) => x.int()), callOpts);
      if (auth.length && !auth.includes(AuthType.NONE)) {
        const names = auth.map((a) => Object.entries(AuthType).find(([, v]) => v === a)?.[0] ?? String(a));
        throw new LibvirtAuthError(`libvirtd at ${socketPath} requires ${names.join('/')} authentication; LiveMR connects as a local privileged client (auth none)`);
      }
      // Asking for the keepalive feature is what makes the daemon start pinging us (and expect pongs).
      const ka = await c.call(PROC.CONNECT_SUPPORTS_FEATURE, new XdrWriter().int(Feature.PROGRAM_KEEPALIVE).toBuffer(), (r) => r.int(), callOpts);
      const open = new XdrWriter().optional(resolved.name, (w, s) => w.string(s, LIMITS.STRING_MAX)).uint(0);
      await c.call(PROC.CONNECT_OPEN, open.toBuffer(), () => undefined, callOpts);
      c.uri = resolved.name;
      if (ka && (opts.keepaliveIntervalMs ?? 5000) > 0) c.startKeepalive();
      return c;
    } catch (e) {
      c.fail(e instanceof LibvirtError ? e : new LibvirtDisconnectedError(String(e)));
      throw e;
    }
  }

  get isOpen(): boolean {
    return this.endReason === undefined;
  }

  /** Sends one call and resolves with the decoded reply. */
  call<T>(proc: number, args: Buffer | undefined, decode: (r: XdrReader) => T, o: CallOptions = {}): Promise<T> {
    const name = PROC_NAMES.get(proc) ?? `PROC_${proc}`;
    if (this.endReason !== undefined) {
      return Promise.reject(this.endReason ?? new LibvirtStateError(`${name}: the connection is closed`));
    }
    const serial = this.serial;
    this.serial = (this.serial + 1) >>> 0 || 1;
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = { proc: name, resolve, reject };
      const timeoutMs = o.timeoutMs ?? this.callTimeoutMs;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(serial);
          this.abandoned.add(serial);
          if (this.abandoned.size > MAX_ABANDONED) this.abandoned.delete(this.abandoned.values().next().value!);
          reject(new LibvirtTimeoutError(name, timeoutMs));
        }, timeoutMs);
      }
      this.pending.set(serial, p);
      this.socket.write(encodePacket({
        program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure: proc,
        type: MessageType.CALL, serial, status: MessageStatus.OK,
      }, args));
    }).then((payload) => {
      const r = new XdrReader(payload, `${name} reply`);
      const v = decode(r);
      r.end();
      return v;
    });
  }

  /** Receives every domain event of this connection's registered callbacks. Returns an unsubscribe. */
  onEvent(fn: (ev: DomainEvent) => void): () => void {
    this.eventHandlers.add(fn);
    return () => this.eventHandlers.delete(fn);
  }

  /** CONNECT_CLOSE, then end the socket. Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.endReason !== undefined) return;
    await this.call(PROC.CONNECT_CLOSE, undefined, () => undefined, { timeoutMs: 2000 }).catch(() => {});
    this.fail(null);
  }

  // ---- procedures ----

  async libVersion(): Promise<number> {
    return Number(await this.call(PROC.CONNECT_GET_LIB_VERSION, undefined, (r) => r.uhyper()));
  }

  lookupDomain(name: string): Promise<DomainRef> {
    return this.call(PROC.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string(name, LIMITS.STRING_MAX).toBuffer(), readDomain);
  }

  /** Domains matching virConnectListAllDomainsFlags (default: running ones). */
  listDomains(flags: number = ListFlags.ACTIVE): Promise<DomainRef[]> {
    return this.call(PROC.CONNECT_LIST_ALL_DOMAINS, new XdrWriter().int(1).uint(flags).toBuffer(), (r) => {
      const doms = r.array(LIMITS.DOMAIN_LIST_MAX, readDomain);
      r.uint();
      return doms;
    });
  }

  /** The domain's XML: the live definition while it runs (flags: XmlFlags.INACTIVE for the persistent one). */
  domainXml(dom: DomainRef, flags = 0): Promise<string> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_GET_XML_DESC, w.uint(flags).toBuffer(), (r) => r.string(LIMITS.STRING_MAX));
  }

  async domainState(dom: DomainRef): Promise<{ state: (typeof DOMAIN_STATES)[number] | 'UNKNOWN'; reason: number }> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_GET_STATE, w.uint(0).toBuffer(), (r) => {
      const s = r.int();
      return { state: DOMAIN_STATES[s] ?? 'UNKNOWN', reason: r.int() };
    });
  }

  /** Hot-plugs a device (default: live only — a restart from the persistent XML drops it). */
  attachDevice(dom: DomainRef, xml: string, flags: number = Affect.LIVE): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_ATTACH_DEVICE_FLAGS, w.string(xml, LIMITS.STRING_MAX).uint(flags).toBuffer(), () => undefined);
  }

  /** Unplugs the device matching `xml` (which must match the live definition, source path included). */
  detachDevice(dom: DomainRef, xml: string, flags: number = Affect.LIVE): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_DETACH_DEVICE_FLAGS, w.string(xml, LIMITS.STRING_MAX).uint(flags).toBuffer(), () => undefined);
  }

  /** virDomainDetachDeviceAlias: unplugs the device with this alias (e.g. "ua-livemr0"). */
  detachDeviceAlias(dom: DomainRef, alias: string, flags: number = Affect.LIVE): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_DETACH_DEVICE_ALIAS, w.string(alias, LIMITS.STRING_MAX).uint(flags).toBuffer(), () => undefined);
  }

  /** Registers for one event id, for one domain or (dom = null) all of them; returns the callback id. */
  registerEvent(event: EventIdName, dom: DomainRef | null = null): Promise<number> {
    const w = new XdrWriter().int(EventId[event]).optional(dom, writeDomain);
    return this.call(PROC.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, w.toBuffer(), (r) => r.int());
  }

  deregisterEvent(callbackId: number): Promise<void> {
    return this.call(PROC.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, new XdrWriter().int(callbackId).toBuffer(), () => undefined);
  }

  /**
   * virDomainSetBlockThreshold: one BLOCK_THRESHOLD event when the guest writes past `threshold`
   * bytes of `dev` ("vda" = top image, "vda[1]" = the layer with backing index 1). 0 disarms.
   */
  setBlockThreshold(dom: DomainRef, dev: string, threshold: number | bigint): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    return this.call(PROC.DOMAIN_SET_BLOCK_THRESHOLD, w.string(dev, LIMITS.STRING_MAX).uhyper(threshold).uint(0).toBuffer(), () => undefined);
  }

  /** virConnectGetAllDomainStats (doms = [] for every domain matching flags). */
  allDomainStats(doms: readonly DomainRef[], stats: number, flags = 0): Promise<DomainStatsRecord[]> {
    const w = new XdrWriter().array(doms, LIMITS.DOMAIN_LIST_MAX, writeDomain).uint(stats).uint(flags >>> 0);
    return this.call(PROC.CONNECT_GET_ALL_DOMAIN_STATS, w.toBuffer(), (r) =>
      r.array(LIMITS.GET_ALL_DOMAIN_STATS_MAX, (x) => ({
        domain: readDomain(x),
        params: x.array(LIMITS.DOMAIN_STATS_PARAMS_MAX, readTypedParam),
      })));
  }

  /** virDomainSetBlockIoTune, e.g. [{field: 'total_iops_sec', type: 'ullong', value: 200n}]. */
  setBlockIoTune(dom: DomainRef, disk: string, params: readonly TypedParam[], flags: number = Affect.LIVE): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    w.string(disk, LIMITS.STRING_MAX).array(params, LIMITS.BLOCK_IO_TUNE_PARAMETERS_MAX, writeTypedParam).uint(flags);
    return this.call(PROC.DOMAIN_SET_BLOCK_IO_TUNE, w.toBuffer(), () => undefined);
  }

  /** virDomainGetBlockIoTune: asks for the count first, then the values, like libvirt's client. */
  async blockIoTune(dom: DomainRef, disk: string, flags: number = Affect.LIVE): Promise<TypedParam[]> {
    const ask = (n: number) => {
      const w = new XdrWriter();
      writeDomain(w, dom);
      w.optional(disk, (x, s) => x.string(s, LIMITS.STRING_MAX)).int(n).uint(flags | TYPED_PARAM_STRING_OKAY);
      return this.call(PROC.DOMAIN_GET_BLOCK_IO_TUNE, w.toBuffer(), (r) => ({
        params: r.array(LIMITS.BLOCK_IO_TUNE_PARAMETERS_MAX, readTypedParam), n: r.int(),
      }));
    };
    const { n } = await ask(0);
    return (await ask(n)).params;
  }

  /** virDomainSetBlkioParameters, e.g. [{field: 'weight', type: 'uint', value: 500}]. */
  setBlkioParameters(dom: DomainRef, params: readonly TypedParam[], flags: number = Affect.LIVE): Promise<void> {
    const w = new XdrWriter();
    writeDomain(w, dom);
    w.array(params, LIMITS.BLKIO_PARAMETERS_MAX, writeTypedParam).uint(flags);
    return this.call(PROC.DOMAIN_SET_BLKIO_PARAMETERS, w.toBuffer(), () => undefined);
  }

  async blkioParameters(dom: DomainRef, flags: number = Affect.LIVE): Promise<TypedParam[]> {
    const ask = (n: number) => {
      const w = new XdrWriter();
      writeDomain(w, dom);
      w.int(n).uint(flags | TYPED_PARAM_STRING_OKAY);
      return this.call(PROC.DOMAIN_GET_BLKIO_PARAMETERS, w.toBuffer(), (r) => ({
        params: r.array(LIMITS.BLKIO_PARAMETERS_MAX, readTypedParam), n: r.int(),
      }));
    };
    const { n } = await ask(0);
    return (await ask(n)).params;
  }

  // ---- internals ----

  private onData(chunk: Buffer): void {
    if (this.endReason !== undefined) return;
    this.idleIntervals = 0;
    let packets: Packet[];
    try {
      packets = this.splitter.push(chunk);
    } catch (e) {
      this.fail(e as LibvirtError);
      return;
    }
    for (const p of packets) {
      try {
        this.onPacket(p);
      } catch (e) {
        this.fail(e instanceof LibvirtError ? e : new LibvirtProtocolError(String(e)));
        return;
      }
      if (this.endReason !== undefined) return;
    }
  }

  private onPacket({ header: h, payload }: Packet): void {
    if (h.program === KEEPALIVE_PROGRAM) {
      if (h.type !== MessageType.MESSAGE) throw new LibvirtProtocolError(`keepalive packet of type ${h.type}`);
      if (h.procedure === KEEPALIVE_PROC.PING) this.sendKeepalive(KEEPALIVE_PROC.PONG);
      return; // PONG: receiving it already reset the idle count
    }
    if (h.program !== REMOTE_PROGRAM) throw new LibvirtProtocolError(`packet for unknown program 0x${h.program.toString(16)}`);
    if (h.type === MessageType.MESSAGE) {
      const ev = decodeEvent(h.procedure, payload);
      if (ev) for (const fn of this.eventHandlers) fn(ev);
      return;
    }
    if (h.type !== MessageType.REPLY) throw new LibvirtProtocolError(`unexpected packet type ${h.type} (procedure ${h.procedure})`);
    const p = this.pending.get(h.serial);
    if (!p) {
      if (this.abandoned.delete(h.serial)) return; // a reply that came after its call timed out
      throw new LibvirtProtocolError(`reply with unknown serial ${h.serial} (procedure ${h.procedure})`);
    }
    this.pending.delete(h.serial);
    if (p.timer) clearTimeout(p.timer);
    if (h.status === MessageStatus.OK) p.resolve(payload);
    else if (h.status === MessageStatus.ERROR) {
      const r = new XdrReader(payload, `${p.proc} error`);
      const e = readRemoteError(r);
      p.reject(new LibvirtRpcError(p.proc, e.code, e.domain, e.message ?? ''));
    } else throw new LibvirtProtocolError(`${p.proc}: reply with status ${h.status}`);
  }

  private sendKeepalive(proc: number): void {
    if (this.endReason !== undefined) return;
    this.socket.write(encodePacket({
      program: KEEPALIVE_PROGRAM, version: KEEPALIVE_PROTOCOL_VERSION, procedure: proc,
      type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK,
    }));
  }

  /** Every idle interval we PING; `count` intervals without any byte from the daemon end the connection. */
  private startKeepalive(): void {
    const interval = this.opts.keepaliveIntervalMs ?? 5000;
    const count = this.opts.keepaliveCount ?? 5;
    this.keepaliveTimer = setInterval(() => {
      this.idleIntervals++;
      if (this.idleIntervals > count) {
        this.fail(new LibvirtKeepaliveError(`libvirtd sent nothing for ${count} keepalive intervals of ${interval} ms`));
        return;
      }
      if (this.idleIntervals >= 1) this.sendKeepalive(KEEPALIVE_PROC.PING);
    }, interval);
    this.keepaliveTimer.unref();
  }

  private fail(reason: LibvirtError | null): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    const err = reason ?? new LibvirtStateError('the connection was closed');
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err instanceof LibvirtRpcError ? err : new LibvirtDisconnectedError(`${p.proc}: ${err.message}`, { cause: err }));
    }
    this.pending.clear();
    this.socket.destroy();
    this.resolveClosed(reason);
  }
}

function openSocket(path: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    const timer = setTimeout(() => { s.destroy(); reject(new LibvirtConnectError(path, 'ETIMEDOUT')); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); reject(new LibvirtConnectError(path, e.code, { cause: e })); });
  });
}
