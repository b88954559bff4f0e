// The guest channel: keeps a connection to the host end of org.livemr.0 (a unix socket QEMU listens
// on) and runs one GuestSession on it at a time; when the stream ends it dials again after a short
// pause, for as long as the owner says the VM is there. The dialer is injected (tests use an
// in-memory stream pair).
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { GuestSession, type SessionLimits } from '../guest/index.js';
import { TokenBucket } from './limits.js';
import type { Logger } from './log.js';

/** Opens a stream to the channel socket; rejects when it cannot. */
export type Dial = (socketPath: string) => Promise<Duplex>;

export const dialUnix: Dial = (socketPath) => new Promise((resolve, reject) => {
  const sock = connect(socketPath);
  sock.once('connect', () => { sock.off('error', reject); resolve(sock); });
  sock.once('error', reject);
});

export type ChannelState = 'none' | 'connecting' | 'connected';

export interface GuestChannelOptions {
  hostId: string;
  log: Logger;
  /** a new session on a fresh stream: attach its event handlers here */
  onSession: (s: GuestSession) => void;
  onStatus?: () => void;
  /** whether to (re)dial now: false once the VM's control connection is gone or the agent stops */
  live: () => boolean;
  dial?: Dial;
  /** pause before dialing again after the stream ended (default 500 ms) */
  retryMs?: number;
  /** handshake retry interval of the session (tests) */
  helloIntervalMs?: number;
  /** what a session may hold (GuestLimits) */
  limits?: SessionLimits;
  /**
   * bytes per second read from the channel, and the burst before that applies: above it the
   * stream is paused (the guest's writes then wait), so one VM's flood of frames cannot take the
   * agent's event loop from the other VMs
   */
  rate?: { bytesPerSec: number; burstBytes: number };
  /** ms a second the agent may spend on this VM's reports, and the burst; over it the channel pauses (charge()) */
  busy?: { msPerSec: number; burstMs: number };
  /** told each time the channel is paused for its rates (metrics) */
  onThrottle?: (pauseMs: number) => void;
}

export class GuestChannel {
  state: ChannelState = 'none';
  session?: GuestSession;
  socketPath?: string;
  private stream?: Duplex;
  /** bumped by close(): a dial or timer of an earlier generation does nothing */
  private generation = 0;
  private retry?: NodeJS.Timeout;
  /** the channel is paused for its rates until this fires */
  private holdTimer?: NodeJS.Timeout;
  /** the time budget of this VM's reports (busyMsPerSec), kept across streams */
  private readonly busy?: TokenBucket;

  constructor(private readonly o: GuestChannelOptions) {
    if (o.busy) this.busy = new TokenBucket(o.busy.msPerSec, o.busy.burstMs);
  }

  /** Starts dialing `socketPath` (again after every drop) until close(). */
  open(socketPath: string): void {
    this.socketPath = socketPath;
    this.dial(this.generation);
  }

  private dial(gen: number): void {
    if (gen !== this.generation || !this.socketPath || !this.o.live()) return;
    this.state = 'connecting';
    (this.o.dial ?? dialUnix)(this.socketPath).then((stream) => {
      if (gen !== this.generation) { stream.destroy(); return; }
      this.stream = stream;
      stream.on('error', (e) => this.o.log.debug('channel error', { error: e }));
      this.state = 'connected';
      this.o.onStatus?.();
      this.o.log.info('channel connected', { socket: this.socketPath });
      const opts = {
        hostId: this.o.hostId, capabilities: ['resync', 'flush'], ...(this.o.helloIntervalMs ? { helloIntervalMs: this.o.helloIntervalMs } : {}),
        ...(this.o.limits ? { limits: this.o.limits } : {}),
      };
      const after = this.o.rate ? this.meterBefore(stream, this.o.rate) : undefined;
      const s = new GuestSession(stream, opts);
      after?.();
      this.session = s;
      this.o.onSession(s);
      stream.once('close', () => this.dropped(gen, stream));
    }, (e: Error) => {
      this.o.log.debug('channel error', { error: e });
      this.dropped(gen, undefined);
    });
  }

  /**
   * Meters `stream` (installed around the session's own 'data' listener): its bytes against the
   * byte rate, and the time decoding and applying each chunk took against the busy budget.
   */
  private meterBefore(stream: Duplex, rate: { bytesPerSec: number; burstBytes: number }): () => void {
    const bytes = new TokenBucket(rate.bytesPerSec, rate.burstBytes);
    let t0 = 0;
    stream.on('data', (b: Buffer) => {
      t0 = performance.now();
      this.hold(stream, bytes.spend(b.length));
    });
    stream.once('close', () => { clearTimeout(this.holdTimer); this.holdTimer = undefined; });
    return () => stream.on('data', () => this.charge(performance.now() - t0));
  }

  /** Time the agent spent on this VM's reports (ms): over the busy budget, the channel pauses. */
  charge(ms: number): void {
    if (!this.busy || !this.stream) return;
    this.hold(this.stream, this.busy.spend(ms));
  }

  private hold(stream: Duplex, ms: number): void {
    if (ms <= 0 || this.holdTimer || stream.destroyed) return;
    stream.pause();
    this.o.onThrottle?.(ms);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      if (!stream.destroyed) stream.resume();
    }, ms);
  }

  private dropped(gen: number, stream: Duplex | undefined): void {
    if (gen !== this.generation || this.stream !== stream) return;
    this.state = 'connecting';
    this.session?.close();
    this.session = undefined;
    this.stream = undefined;
    this.retry = setTimeout(() => this.dial(gen), this.o.retryMs ?? 500);
    this.retry.unref();
  }

  /** Ends the session and stops dialing (open() starts again). */
  close(): void {
    this.generation++;
    clearTimeout(this.retry);
    this.session?.close();
    this.session = undefined;
    this.stream?.destroy();
    this.stream = undefined;
    this.state = 'none';
  }
}
