// A libvirt connection that outlives libvirtd restarts. It keeps one LibvirtClient open, dialling
// again with capped exponential backoff whenever the connection ends, and owns the event
// registrations: each event id LiveMR needs is registered once per connection for all domains
// (so a domain defined or started later is covered too) and fanned out by domain name. Calls are
// never replayed: a call in flight when libvirtd goes away rejects with LibvirtDisconnectedError
// and the caller decides. Listeners of 'connected' re-read whatever state they derive from
// libvirt, since events may have been missed while disconnected.
import { LibvirtClient, type ClientOptions } from './client.js';
import type { DomainEvent } from './codec.js';
import { LibvirtDisconnectedError, LibvirtError, LibvirtStateError } from './errors.js';
import type { EventIdName } from './protocol.js';

export interface SessionOptions extends ClientOptions {
  /** events to register on every connection (default: lifecycle, reboot, block job 2, block threshold) */
  events?: EventIdName[];
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** told about every connection change, for logs */
  log?: (msg: string) => void;
}

type Handler = (ev: DomainEvent) => void;

export const DEFAULT_EVENTS: EventIdName[] = ['LIFECYCLE', 'REBOOT', 'BLOCK_JOB_2', 'BLOCK_THRESHOLD', 'DEVICE_ADDED', 'DEVICE_REMOVED'];

export class LibvirtSession {
  private current: LibvirtClient | null = null;
  private stopped = false;
  private readonly byDomain = new Map<string, Set<Handler>>();
  private readonly anyDomain = new Set<Handler>();
  private readonly connectedFns = new Set<(c: LibvirtClient) => void>();
  private readonly disconnectedFns = new Set<(reason: LibvirtError | null) => void>();
  private waiters: { resolve: (c: LibvirtClient) => void; reject: (e: Error) => void }[] = [];
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** connections opened so far (1 after the first connect) */
  generation = 0;
  lastError: LibvirtError | null = null;

  constructor(private readonly opts: SessionOptions = {}) {}

  /** Starts the connect loop; resolves once the first connection is open (or rejects after stop()). */
  start(): Promise<LibvirtClient> {
    if (!this.loop) this.loop = this.run();
    return this.client();
  }

  /** The open connection, waiting for one if libvirtd is away. */
  client(): Promise<LibvirtClient> {
    if (this.stopped) return Promise.reject(new LibvirtStateError('the libvirt session is stopped'));
    if (this.current?.isOpen) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  get connected(): boolean {
    return !!this.current?.isOpen;
  }

  /** Events of one domain (by name), or of every domain with name = null. Returns an unsubscribe. */
  subscribe(domainName: string | null, fn: Handler): () => void {
    if (domainName === null) {
      this.anyDomain.add(fn);
      return () => this.anyDomain.delete(fn);
    }
    let set = this.byDomain.get(domainName);
    if (!set) this.byDomain.set(domainName, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (!set!.size) this.byDomain.delete(domainName);
    };
  }

  /** Called after every (re)connect, once events are registered. */
  onConnected(fn: (c: LibvirtClient) => void): () => void {
    this.connectedFns.add(fn);
    return () => this.connectedFns.delete(fn);
  }

  onDisconnected(fn: (reason: LibvirtError | null) => void): () => void {
    this.disconnectedFns.add(fn);
    return () => this.disconnectedFns.delete(fn);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    for (const w of this.waiters.splice(0)) w.reject(new LibvirtStateError('the libvirt session is stopped'));
    await this.current?.close();
    await this.loop?.catch(() => {});
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let c: LibvirtClient | undefined;
      try {
        c = await LibvirtClient.connect(this.opts);
        c.onEvent((ev) => this.dispatch(ev));
        for (const id of this.opts.events ?? DEFAULT_EVENTS) await c.registerEvent(id);
      } catch (e) {
        await c?.close();
        const err = e instanceof LibvirtError ? e : new LibvirtDisconnectedError(String(e));
        if (attempt === 0 || this.lastError?.message !== err.message) this.opts.log?.(`libvirt: ${err.message}; retrying`);
        this.lastError = err;
        attempt++;
        await this.sleep(backoff(attempt, this.opts));
        continue;
      }
      if (this.stopped) { await c.close(); break; }
      attempt = 0;
      this.lastError = null;
      this.current = c;
      this.generation++;
      this.opts.log?.(`libvirt: connected to ${c.socketPath} (${c.uri}), connection ${this.generation}`);
      for (const w of this.waiters.splice(0)) w.resolve(c);
      for (const fn of this.connectedFns) safe(() => fn(c));
      const reason = await c.closed;
      if (this.current === c) this.current = null;
      if (this.stopped) break;
      this.lastError = reason;
      this.opts.log?.(`libvirt: connection lost (${reason?.message ?? 'closed'}); reconnecting`);
      for (const fn of this.disconnectedFns) safe(() => fn(reason));
      await this.sleep(backoff(1, this.opts));
    }
  }

  private dispatch(ev: DomainEvent): void {
    for (const fn of this.anyDomain) safe(() => fn(ev));
    for (const fn of this.byDomain.get(ev.domain.name) ?? []) safe(() => fn(ev));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() { clearTimeout(t); resolve(); }
      this.wake = done;
    });
  }
}

/** Capped exponential backoff with ±20% jitter. */
export function backoff(attempt: number, o: Pick<SessionOptions, 'initialDelayMs' | 'maxDelayMs'> = {}): number {
  const base = Math.min(o.maxDelayMs ?? 5000, (o.initialDelayMs ?? 200) * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function safe(fn: () => void): void {
  try { fn(); } catch { /* a listener's bug must not stop the session */ }
}

