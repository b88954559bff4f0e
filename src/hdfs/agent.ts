// The host agent's side of the report protocol (report.ts): tells the aggregator about its composed
// files when it starts and as soon as any of them changes. Driven by the composition source's
// events, never by polling; reports are coalesced (one in flight, changes gathered meanwhile go in
// the next). A failed report is retried with capped backoff as a full report.

import { randomUUID } from 'node:crypto';
import type { Namespace } from './namespace.js';
import { REPORT_PATH, TOKEN_HEADER, type Report } from './report.js';
import { hdfsName, type CompositionSource } from './source.js';

export interface ReporterOptions {
  /** aggregator base URL, e.g. http://namenode-host:9870 */
  aggregator: string;
  agent: string;
  /** this agent's WebHDFS base URL as the aggregator's clients must reach it */
  url: string;
  host: string;
  token?: string;
  log?: (line: string) => void;
}

export class AgentReporter {
  private readonly epoch = randomUUID();
  private seq = 0;
  private needFull = true;
  private readonly changed = new Set<string>();
  private readonly removed = new Set<string>();
  private inflight: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly source: CompositionSource,
    private readonly namespace: Namespace,
    private readonly opts: ReporterOptions,
  ) {}

  /** Subscribes to changes and sends the first (full) report. */
  start(): Promise<void> {
    this.unsubscribe = this.source.subscribe((ev) => {
      const name = hdfsName(ev.name);
      if (ev.type === 'remove') {
        this.changed.delete(name);
        this.removed.add(name);
      } else {
        this.removed.delete(name);
        this.changed.add(name);
      }
      this.kick();
    });
    this.kick();
    return this.idle();
  }

  /** Resolves when no report is in flight. */
  async idle(): Promise<void> {
    while (this.inflight) await this.inflight;
  }

  /** Stops reporting and tells the aggregator to forget this agent (best effort). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.retryTimer);
    await this.idle();
    await this.post({ ...this.base(), seq: this.seq, full: false, files: [], removed: [], bye: true }).catch(() => {});
  }

  private base(): Pick<Report, 'agent' | 'url' | 'host' | 'epoch'> {
    return { agent: this.opts.agent, url: this.opts.url, host: this.opts.host, epoch: this.epoch };
  }

  private kick(): void {
    if (this.stopped || this.inflight || this.retryTimer) return;
    if (!this.needFull && this.changed.size === 0 && this.removed.size === 0) return;
    this.inflight = this.send().finally(() => {
      this.inflight = undefined;
      this.kick(); // changes that arrived meanwhile
    });
  }

  private async send(): Promise<void> {
    const full = this.needFull;
    const names = full ? null : [...this.changed];
    const removed = full ? [] : [...this.removed];
    this.changed.clear();
    this.removed.clear();
    this.needFull = false;
    const files = (names ? names.map((n) => this.namespace.get(n)).filter((f) => f !== undefined) : this.namespace.list()).map(
      (f) => ({ name: f.name, length: f.length, mtimeMs: f.mtimeMs }),
    );
    // a changed name that is gone by now is a removal
    if (names) for (const n of names) if (!this.namespace.get(n)) removed.push(n);
    const report: Report = { ...this.base(), seq: full ? 0 : this.seq + 1, full, files, removed };
    try {
      const status = await this.post(report);
      if (status === 409) {
        this.needFull = true;
        return;
      }
      if (status !== 200) throw new Error(`aggregator answered ${status}`);
      this.seq = report.seq;
      this.backoffMs = 0;
    } catch (e) {
      this.needFull = true; // we do not know what the aggregator applied
      this.backoffMs = Math.min(30_000, Math.max(500, this.backoffMs * 2));
      this.opts.log?.(`report to ${this.opts.aggregator} failed (${(e as Error).message}); retrying in ${this.backoffMs} ms`);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, this.backoffMs);
      this.retryTimer.unref();
    }
  }

  private async post(report: Report): Promise<number> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (this.opts.token !== undefined) headers[TOKEN_HEADER] = this.opts.token;
    const res = await fetch(new URL(REPORT_PATH, this.opts.aggregator), {
      method: 'POST',
      headers,
      body: JSON.stringify(report),
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
    return res.status;
  }
}
