// QMP client over a unix or TCP socket: greeting, capabilities negotiation, commands correlated by
// `id` with any number in flight, events fanned out to listeners, per-command timeouts. It knows the
// protocol (docs/interop/qmp-spec.rst), not the vocabulary: the one command it sends itself is
// `qmp_capabilities`, which is part of the protocol. Any breach by the peer (garbage, a huge line, an
// unknown reply id, a closed socket) ends the connection and rejects every pending command with
// ExecInterruptedError whose `cause` is the reason; nothing else is retried or replayed.

import net from 'node:net';
import {
  CommandTimeoutError,
  ConnectError,
  DisconnectedError,
  ExecInterruptedError,
  ExecuteError,
  GreetingError,
  NegotiationError,
  QmpError,
  StateError,
  UnexpectedMessageError,
} from './errors.js';
import { EventListener, type ListenerOptions, type QmpEvent } from './events.js';
import { LineReader, parseMessage, type JsonObject } from './framing.js';

export type QmpAddress = { path: string } | { host: string; port: number };

/** "unix:/p", "/p" or "./p" → unix socket; "tcp:HOST:PORT" or "HOST:PORT" → TCP. */
export function parseAddress(text: string): QmpAddress {
  if (text.startsWith('unix:')) return { path: text.slice(5) };
  const tcp = /^(?:tcp:)?(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(text);
  if (tcp && !text.includes('/')) {
    const port = Number(tcp[2]);
    if (port < 1 || port > 65535) throw new QmpError(`bad TCP port in QMP address '${text}'`);
    return { host: tcp[1]!.replace(/^\[|\]$/g, ''), port };
  }
  if (text === '') throw new QmpError('empty QMP address');
  return { path: text };
}

export function formatAddress(a: QmpAddress): string {
  return 'path' in a ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`;
}

export interface ClientOptions {
  /** bound on connect + greeting + negotiation (default 5000 ms) */
  connectTimeoutMs?: number;
  /** default per-command timeout; 0 = wait forever (default 30000 ms) */
  commandTimeoutMs?: number;
  /** longest line accepted from the server (default 8 MiB) */
  maxLineBytes?: number;
  /** capabilities to enable during negotiation, e.g. ['oob'] (default none) */
  capabilities?: string[];
}

export interface ExecuteOptions {
  /** overrides the client's default; 0 = wait forever */
  timeoutMs?: number;
}

export interface Greeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

type Pending = {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
};

/** Ids of timed-out commands whose reply may still come; bounded so it cannot grow forever. */
const MAX_ABANDONED = 1024;

export class QmpClient {
  private readonly reader: LineReader;
  private readonly pending = new Map<string, Pending>();
  private readonly abandoned = new Set<string>();
  private readonly listeners = new Set<EventListener>();
  private readonly handlers = new Set<{ names: Set<string> | null; fn: (ev: QmpEvent) => void }>();
  private nextId = 1;
  private greetingWaiter: { resolve: (g: Greeting) => void; reject: (e: Error) => void } | null = null;
  private endReason: QmpError | null | undefined = undefined; // undefined = still open
  private resolveClosed!: (reason: QmpError | null) => void;
  private readonly commandTimeoutMs: number;
  /** Set once connected: what the server announced. */
  greeting!: Greeting;
  /** Resolves when the connection ends: null after close(), else the error that ended it. */
  readonly closed: Promise<QmpError | null>;

  private constructor(
    private readonly socket: net.Socket,
    readonly address: string,
    options: ClientOptions,
  ) {
    this.reader = new LineReader(options.maxLineBytes ?? 8 * 1024 * 1024);
    this.commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.fail(new DisconnectedError(`socket error: ${err.code ?? err.message}`, { cause: err })),
    );
    socket.on('close', () => this.fail(new DisconnectedError('connection closed by the server')));
  }

  /** Connect, read the greeting and negotiate capabilities. */
  static async connect(address: QmpAddress | string, options: ClientOptions = {}): Promise<QmpClient> {
    const addr = typeof address === 'string' ? parseAddress(address) : address;
    const label = formatAddress(addr);
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    const socket = await openSocket(addr, label, timeoutMs);
    const client = new QmpClient(socket, label, options);
    try {
      client.greeting = await client.awaitGreeting(Math.max(1, deadline - Date.now()));
      const args = options.capabilities?.length ? { enable: options.capabilities } : undefined;
      await client.execute('qmp_capabilities', args, { timeoutMs: Math.max(1, deadline - Date.now()) }).catch((e) => {
        throw e instanceof ExecuteError ? new NegotiationError(e.errorClass, e.desc) : e;
      });
      return client;
    } catch (err) {
      client.fail(err instanceof QmpError ? err : new QmpError(String(err)));
      throw err;
    }
  }

  /** 'open' until the connection ends for any reason. */
  get state(): 'open' | 'closed' {
    return this.endReason === undefined ? 'open' : 'closed';
  }

  /** Commands sent and not yet answered (for tests and diagnostics). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Send a command and resolve with its `return` value; ExecuteError on an `error` reply. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: ExecuteOptions = {}): Promise<T> {
    if (this.endReason !== undefined) {
      return Promise.reject(new StateError(`${command}: QMP connection is closed`));
    }
    const id = `livemr-${this.nextId++}`;
    const message: JsonObject = { execute: command, id };
    if (args !== undefined) message.arguments = args;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { command, resolve: resolve as (v: unknown) => void, reject, timer: undefined };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          this.abandon(id);
          reject(new CommandTimeoutError(command, timeoutMs));
        }, timeoutMs);
      }
      this.pending.set(id, entry);
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** A listener for the named events (all events if none). Close it when done. */
  listen(options: ListenerOptions = {}): EventListener {
    const listener = new EventListener(options, (l) => this.listeners.delete(l));
    if (this.endReason !== undefined) listener.end(this.endReason);
    else this.listeners.add(listener);
    return listener;
  }

  /** Call `fn` for each event (filtered by `names`); returns the unsubscribe function. */
  onEvent(fn: (ev: QmpEvent) => void, names?: readonly string[]): () => void {
    const entry = { names: names?.length ? new Set(names) : null, fn };
    this.handlers.add(entry);
    return () => this.handlers.delete(entry);
  }

  /** Orderly close: pending commands reject with ExecInterruptedError, listeners end quietly. */
  async close(): Promise<void> {
    if (this.endReason === undefined) {
      this.finish(null, new DisconnectedError('connection closed by the client'));
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), 1000);
      timer.unref();
    }
    if (!this.socket.destroyed && !this.socket.closed) {
      await new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    }
  }

  private awaitGreeting(timeoutMs: number): Promise<Greeting> {
    return new Promise<Greeting>((resolve, reject) => {
      const timer = setTimeout(() => reject(new GreetingError(`no QMP greeting within ${timeoutMs} ms`)), timeoutMs);
      this.greetingWaiter = {
        resolve: (g) => (clearTimeout(timer), resolve(g)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  private onData(chunk: Buffer): void {
    try {
      for (const line of this.reader.push(chunk)) {
        if (this.endReason !== undefined) return;
        const message = parseMessage(line);
        if (message) this.dispatch(message);
      }
    } catch (err) {
      this.fail(err instanceof QmpError ? err : new QmpError(String(err)));
    }
  }

  private dispatch(msg: JsonObject): void {
    if (this.greetingWaiter) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = null;
      const greeting = checkGreeting(msg);
      if (greeting) return waiter.resolve(greeting);
      const err = new GreetingError(`not a QMP greeting: ${JSON.stringify(msg).slice(0, 120)}`);
      waiter.reject(err);
      throw err;
    }
    if ('event' in msg) return this.deliver(checkEvent(msg));
    if ('return' in msg || 'error' in msg) return this.answer(msg);
    throw new UnexpectedMessageError(`unexpected message: ${JSON.stringify(msg).slice(0, 120)}`);
  }

  private answer(msg: JsonObject): void {
    const id = msg.id;
    const entry = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (!entry) {
      if (typeof id === 'string' && this.abandoned.delete(id)) return; // reply after its timeout
      throw new UnexpectedMessageError(`reply with unknown id ${JSON.stringify(id)}`);
    }
    this.pending.delete(id as string);
    clearTimeout(entry.timer);
    if ('error' in msg) {
      const e = msg.error as { class?: unknown; desc?: unknown } | null;
      if (!e || typeof e !== 'object' || typeof e.class !== 'string' || typeof e.desc !== 'string') {
        const err = new UnexpectedMessageError(`malformed error reply to ${entry.command}`);
        entry.reject(err);
        throw err;
      }
      entry.reject(new ExecuteError(entry.command, e.class, e.desc));
    } else {
      entry.resolve(msg.return);
    }
  }

  private deliver(ev: QmpEvent): void {
    for (const l of this.listeners) l.deliver(ev);
    for (const h of this.handlers) {
      if (h.names && !h.names.has(ev.event)) continue;
      try {
        h.fn(ev);
      } catch (err) {
        // A faulty handler must not take the connection down with it.
        process.emitWarning(`QMP event handler for ${ev.event} threw: ${(err as Error).message}`);
      }
    }
  }

  private abandon(id: string): void {
    this.abandoned.add(id);
    if (this.abandoned.size > MAX_ABANDONED) {
      const oldest = this.abandoned.values().next().value as string;
      this.abandoned.delete(oldest);
    }
  }

  /** The connection failed: drop the socket, reject everything with `reason` as the cause. */
  private fail(reason: QmpError): void {
    if (this.endReason !== undefined) return;
    this.finish(reason, reason);
    this.socket.destroy();
  }

  private finish(reason: QmpError | null, interruptCause: QmpError): void {
    this.endReason = reason;
    this.greetingWaiter?.reject(reason ?? interruptCause);
    this.greetingWaiter = null;
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new ExecInterruptedError(entry.command, interruptCause));
    }
    this.pending.clear();
    this.abandoned.clear();
    for (const l of [...this.listeners]) l.end(reason);
    this.listeners.clear();
    this.handlers.clear();
    this.resolveClosed(reason);
  }
}

function openSocket(addr: QmpAddress, label: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(addr);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError(label, 'ETIMEDOUT'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ConnectError(label, err.code, { cause: err }));
    });
  });
}

function checkGreeting(msg: JsonObject): Greeting | null {
  const qmp = msg.QMP as { version?: unknown; capabilities?: unknown } | undefined;
  if (!qmp || typeof qmp !== 'object' || !Array.isArray(qmp.capabilities)) return null;
  const v = qmp.version as { qemu?: Record<string, unknown>; package?: unknown } | undefined;
  const q = v?.qemu;
  if (!q || typeof q.major !== 'number' || typeof q.minor !== 'number' || typeof q.micro !== 'number') return null;
  return {
    version: { qemu: { major: q.major, minor: q.minor, micro: q.micro }, package: String(v?.package ?? '') },
    capabilities: qmp.capabilities.filter((c): c is string => typeof c === 'string'),
  };
}

function checkEvent(msg: JsonObject): QmpEvent {
  const { event, data, timestamp } = msg as { event: unknown; data?: unknown; timestamp?: unknown };
  if (typeof event !== 'string') throw new UnexpectedMessageError('event without a name');
  if (data !== undefined && (typeof data !== 'object' || data === null || Array.isArray(data))) {
    throw new UnexpectedMessageError(`event ${event} with non-object data`);
  }
  const t = timestamp as { seconds?: unknown; microseconds?: unknown } | undefined;
  const timestampMs =
    typeof t?.seconds === 'number' && typeof t.microseconds === 'number' ? t.seconds * 1000 + t.microseconds / 1000 : 0;
  return { event, data: (data as Record<string, unknown>) ?? {}, timestampMs };
}
