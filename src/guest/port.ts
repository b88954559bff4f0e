// The guest end of the virtio-serial port, opened non-blocking and polled (every 5 ms after traffic,
// backing off to 200 ms when idle): a read of 0 bytes means
// the host end is not connected (virtio_console returns EOF then), EAGAIN means connected and idle.
// Non-blocking writes fail with EAGAIN while the host is away, so nothing stale piles up in the
// virtqueue and no thread is stuck in a blocking read (a pending read made process.exit hang).
import { EventEmitter } from 'node:events';
import { closeSync, constants, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';

export const PORT_NAME = 'org.livemr.0';
/** Bytes we hold for the host while it is slow; beyond this the link is declared broken (resync). */
const MAX_QUEUED = 64 << 20;

export function findPort(name = PORT_NAME, sysfs = '/sys'): string | undefined {
  try {
    for (const p of readdirSync(`${sysfs}/class/virtio-ports`)) {
      if (readFileSync(`${sysfs}/class/virtio-ports/${p}/name`, 'utf8').trim() === name) return `/dev/${p}`;
    }
  } catch { /* the class appears when virtio_console loads */ }
  return undefined;
}

export interface PortEvents { data: [Buffer]; connected: []; disconnected: []; error: [Error] }

export class VirtioPort extends EventEmitter<PortEvents> {
  private fd = -1;
  private timer?: NodeJS.Timeout;
  private out: Buffer[] = [];
  private queued = 0;
  private readBuf = Buffer.allocUnsafe(64 << 10);
  /** current poll interval: short right after traffic, doubling while idle (each wake costs CPU) */
  private interval: number;
  connected = false;

  constructor(private readonly path: string, private readonly minPollMs = 5, private readonly maxPollMs = 200) {
    super();
    this.interval = maxPollMs;
  }

  open(): void {
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOCTTY);
    this.schedule(0);
  }

  /** Queues a frame; returns false (and drops it) when the host end is not connected. */
  write(b: Buffer): boolean {
    if (!this.connected) return false;
    if (this.queued + b.length > MAX_QUEUED) {
      this.out = [];
      this.queued = 0;
      this.setConnected(false); // the host stopped reading: the next hello resyncs everything
      return false;
    }
    this.out.push(b);
    this.queued += b.length;
    this.flushOut();
    this.interval = this.minPollMs; // an answer often follows what we send
    return true;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => this.poll(), ms);
  }

  private poll(): void {
    if (this.fd < 0) return;
    let got = false;
    for (let i = 0; i < 64; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.readBuf, 0, this.readBuf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') { this.setConnected(true); break; }
        this.emit('error', e as Error);
        this.setConnected(false);
        break;
      }
      if (n === 0) { this.setConnected(false); break; }
      this.setConnected(true);
      got = true;
      this.emit('data', Buffer.from(this.readBuf.subarray(0, n)));
    }
    this.flushOut();
    this.interval = got ? this.minPollMs : Math.min(this.maxPollMs, this.interval * 2);
    this.schedule(this.out.length ? this.minPollMs : this.interval);
  }

  private flushOut(): void {
    while (this.out.length && this.connected && this.fd >= 0) {
      const b = this.out[0]!;
      let n: number;
      try {
        n = writeSync(this.fd, b);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return; // virtqueue full or host away: retry on the next poll
        this.emit('error', e as Error);
        return;
      }
      this.queued -= n;
      if (n === b.length) this.out.shift();
      else this.out[0] = b.subarray(n);
    }
  }

  private setConnected(c: boolean): void {
    if (c === this.connected) return;
    this.connected = c;
    if (!c) { this.out = []; this.queued = 0; }
    this.emit(c ? 'connected' : 'disconnected');
  }
}
