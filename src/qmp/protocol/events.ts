// Event delivery. An EventListener is a bounded queue of the events whose names it wants, consumed as
// an async iterator or with get()/waitFor(). It ends when the connection ends: quietly after close(),
// with the disconnect error after a lost connection (queued events are delivered first).

import { EventOverflowError, EventTimeoutError, QmpError } from './errors.js';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** server time of the event, milliseconds since the epoch */
  timestampMs: number;
}

export interface ListenerOptions {
  /** event names to receive; empty or absent = every event */
  names?: readonly string[];
  /** queued events before the listener fails with EventOverflowError (default 10000) */
  maxQueue?: number;
}

type Waiter = { resolve: (r: IteratorResult<QmpEvent>) => void; reject: (e: Error) => void };

export class EventListener implements AsyncIterable<QmpEvent> {
  private readonly names: ReadonlySet<string> | null;
  private readonly maxQueue: number;
  private queue: QmpEvent[] = [];
  private waiters: Waiter[] = [];
  private ended = false;
  private error: Error | null = null;

  constructor(options: ListenerOptions = {}, private readonly onClose: (l: EventListener) => void = () => {}) {
    this.names = options.names && options.names.length > 0 ? new Set(options.names) : null;
    this.maxQueue = options.maxQueue ?? 10_000;
  }

  accepts(name: string): boolean {
    return this.names === null || this.names.has(name);
  }

  /** Called by the client for each event it receives. */
  deliver(ev: QmpEvent): void {
    if (this.ended || !this.accepts(ev.event)) return;
    const waiter = this.waiters.shift();
    if (waiter) return waiter.resolve({ value: ev, done: false });
    if (this.queue.length >= this.maxQueue) return this.end(new EventOverflowError(this.maxQueue));
    this.queue.push(ev);
  }

  /** Called by the client when the connection ends; `error` null = orderly close. */
  end(error: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (error instanceof EventOverflowError) this.queue = [];
    for (const w of this.waiters.splice(0)) {
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
    this.onClose(this);
  }

  /** Stop listening; pending get()/iteration complete as done. */
  close(): void {
    this.end(null);
  }

  /** Next event; rejects with the disconnect error, or QmpError('listener closed') after close(). */
  async get(): Promise<QmpEvent> {
    const r = await this.next();
    if (r.done) throw new QmpError('event listener closed');
    return r.value;
  }

  /** First event (queued or future) matching `predicate`; EventTimeoutError after `timeoutMs`. */
  async waitFor(predicate: (ev: QmpEvent) => boolean, timeoutMs: number, what = 'event'): Promise<QmpEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ev = await this.take(deadline - Date.now(), () => new EventTimeoutError(what, timeoutMs));
      if (predicate(ev)) return ev;
    }
  }

  /** Next event within `ms`; the waiter is withdrawn on timeout so no event is lost to it. */
  private take(ms: number, timeoutError: () => Error): Promise<QmpEvent> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(this.error ?? new QmpError('event listener closed'));
    if (ms <= 0) return Promise.reject(timeoutError());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.done) reject(new QmpError('event listener closed'));
          else resolve(r.value);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(timeoutError());
      }, ms);
      this.waiters.push(waiter);
    });
  }

  next(): Promise<IteratorResult<QmpEvent>> {
    const ev = this.queue.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended) {
      return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<QmpEvent> {
    return {
      next: () => this.next(),
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
