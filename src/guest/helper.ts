// The guest helper daemon: finds the port org.livemr.0, speaks the protocol (docs/protocol.md) and
// lets the tracker keep the host's picture of shared files current. Every (re)connection starts over:
// the host's hello is answered with the guest's hello and a full resync.
import { hostname } from 'node:os';
import { ConsentSpool, DEFAULT_SPOOL } from './consent.js';
import { listDisks } from './disks.js';
import { findPort, PORT_NAME, VirtioPort } from './port.js';
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, type Frame, type Message } from './protocol.js';
import { DEFAULT_TRACKER_OPTIONS, Tracker, type TrackerOptions } from './tracker.js';

export const SOFTWARE = 'livemr-guest/0.1';
export const GUEST_CAPABILITIES = ['fiemap-sync', 'consent-xattr', 'batching', 'follow-rename', 'flush'];

export interface HelperOptions extends Omit<TrackerOptions, 'spool' | 'log'> {
  guestId: string;
  portName: string;
  spoolDir: string;
  heartbeatMs: number;
  log: (msg: string) => void;
}

export const DEFAULT_HELPER_OPTIONS: HelperOptions = {
  ...DEFAULT_TRACKER_OPTIONS,
  guestId: hostname(),
  portName: PORT_NAME,
  spoolDir: DEFAULT_SPOOL,
  heartbeatMs: 5000,
  log: (m) => console.error(`${new Date().toISOString()} livemr-guest: ${m}`),
};

export class GuestHelper {
  private port?: VirtioPort;
  private readonly decoder = new FrameDecoder('host');
  private readonly tracker: Tracker;
  private up = false;
  /** nonce of the hostHello last answered while up */
  private answered = -1;
  private seqOut = 0;
  private seqIn = 0;
  private heartbeat?: NodeJS.Timeout;
  private readonly started = Date.now();
  private stopped = false;

  constructor(private readonly o: HelperOptions) {
    this.tracker = new Tracker({ ...o, spool: new ConsentSpool(o.spoolDir), log: o.log }, (m) => this.send(m));
  }

  async start(): Promise<void> {
    this.tracker.start();
    let path: string | undefined;
    for (let i = 0; !(path = findPort(this.o.portName)); i++) {
      if (this.stopped) return;
      if (i === 0) this.o.log(`waiting for virtio port ${this.o.portName}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.o.log(`using ${path}`);
    const port = new VirtioPort(path);
    this.port = port;
    port.on('connected', () => {
      this.o.log('host connected');
      this.decoder.reset();
      this.up = false;
      this.announce();
    });
    port.on('disconnected', () => {
      this.o.log('host disconnected');
      this.up = false;
      this.decoder.reset();
    });
    port.on('error', (e) => this.o.log(`port: ${e.message}`));
    port.on('data', (b) => this.onData(b));
    port.open();
    this.heartbeat = setInterval(() => {
      if (this.up) this.send({ type: 'heartbeat', uptimeMs: Date.now() - this.started, files: this.tracker.sharedCount, pending: this.tracker.pendingCount });
    }, this.o.heartbeatMs);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.tracker.stop();
    this.port?.close();
  }

  private hello(nonce: number): Message {
    return {
      type: 'guestHello', nonce, protoMin: PROTOCOL_VERSION, protoMax: PROTOCOL_VERSION, guestId: this.o.guestId,
      software: SOFTWARE, capabilities: GUEST_CAPABILITIES, disks: listDisks(),
    };
  }

  /** Unsolicited hello (nonce 0): tells a host that is already listening to start a handshake. */
  private announce(): void {
    this.seqOut = 0;
    this.send(this.hello(0), true);
  }

  private send(m: Message, always = false): void {
    if (!this.port?.connected || (!this.up && !always)) return; // a resync follows the next hello
    this.seqOut = (this.seqOut + 1) >>> 0;
    this.port.write(encodeFrame(this.seqOut, m));
  }

  private onData(b: Buffer): void {
    for (const ev of this.decoder.push(b)) {
      if (ev.kind === 'error') {
        this.o.log(`bad frame from host: ${ev.code}: ${ev.message}`);
        this.send({ type: 'error', code: ev.code, refSeq: ev.seq, message: ev.message }, true);
        continue;
      }
      this.onFrame(ev.frame);
    }
  }

  private onFrame({ seq, msg }: Frame): void {
    if (msg.type === 'hostHello') {
      if (msg.protoMin > PROTOCOL_VERSION || msg.protoMax < PROTOCOL_VERSION) {
        this.send({ type: 'error', code: 'version', refSeq: seq, message: `guest speaks protocol ${PROTOCOL_VERSION} only` }, true);
        this.up = false;
        return;
      }
      // The host repeats its hello every second until the answer arrives; repeats queue up in the
      // port while the helper is not reading yet (Node starting under TCG: 10-60 s). Answering each
      // made one full resync per queued repeat, and each re-established the host's session (files
      // cleared, shares re-issued): the first share took minutes. One answer per nonce.
      if (this.up && msg.nonce === this.answered) return;
      this.answered = msg.nonce;
      this.o.log(`hello from host ${msg.hostId}: full resync`);
      this.seqOut = 0;
      this.seqIn = (seq + 1) >>> 0;
      this.up = true;
      this.tracker.requester = msg.hostId;
      this.send(this.hello(msg.nonce));
      void this.tracker.resync();
      return;
    }
    if (!this.up) return; // stale frames of an earlier connection
    if (seq !== this.seqIn) {
      this.send({ type: 'error', code: 'sequence', refSeq: seq, message: `expected frame ${this.seqIn}, got ${seq}` });
      this.up = false; // the host answers a sequence error with a new hello
      return;
    }
    this.seqIn = (seq + 1) >>> 0;
    switch (msg.type) {
      case 'share': this.tracker.share(msg.path, seq); break;
      case 'unshare': this.tracker.unshare(msg.fileId); break;
      case 'resync': void this.tracker.resync(); break;
      case 'flush': void this.tracker.flush(seq); break;
      case 'error': this.o.log(`host reports: ${msg.code}: ${msg.message}`); break;
      default: break;
    }
  }
}
