// In-memory stand-ins for the host agent's unit tests: a connected stream pair (the guest channel
// without a socket), a guest end that speaks the LiveMR protocol, and a VmControl that serves a
// scripted VM model (the QMP implementation itself is tested against the fake QMP peer).
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { encodeFrame, FrameDecoder, type Message, type MessageOf } from '../../../../src/guest/protocol.js';
import type { AllocationWatch, AllocationWatchOptions, ChannelPlug, DiskCounters, VmControl, VmControlSession, VmEvent } from '../../../../src/host/control/index.js';
import type { VmDisk, VmModel } from '../../../../src/qmp/index.js';

/** Two connected Duplex ends: what one writes the other reads; destroying one closes both. */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex) => new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) { other().push(Buffer.from(chunk)); cb(); },
    final(cb) { other().push(null); cb(); },
    destroy(err, cb) { if (!other().destroyed) other().destroy(); cb(err); },
  });
  ends.push(make(() => ends[1]!), make(() => ends[0]!));
  return [ends[0]!, ends[1]!];
}

/** The guest end of the channel: decodes the host's frames and answers like a guest helper. */
export class FakeGuest extends EventEmitter {
  readonly received: Message[] = [];
  private seq = 0;
  private readonly decoder = new FrameDecoder('host');
  constructor(readonly stream: Duplex) {
    super();
    stream.on('data', (b: Buffer) => {
      for (const ev of this.decoder.push(b)) {
        if (ev.kind !== 'frame') continue;
        this.received.push(ev.frame.msg);
        this.emit('message', ev.frame.msg);
      }
    });
  }

  send(m: Message): void { this.stream.write(encodeFrame(++this.seq, m)); }

  /** Answers the host's latest hello with `disks`, then an empty resync. */
  async hello(disks: MessageOf<'guestHello'>['disks'] = [], files: MessageOf<'fileExtents'>[] = []): Promise<void> {
    const h = await this.next('hostHello');
    this.seq = 0;
    this.send({ type: 'guestHello', nonce: h.nonce, protoMin: 1, protoMax: 1, guestId: 'guest-1', software: 'fake', capabilities: ['resync', 'flush'], disks });
    for (const f of files) this.send(f);
    this.send({ type: 'resyncDone', files: files.length });
  }

  /** The first message of this type received (now or later). */
  next<T extends Message['type']>(type: T, after = 0): Promise<MessageOf<T>> {
    const have = this.received.slice(after).find((m) => m.type === type);
    if (have) return Promise.resolve(have as MessageOf<T>);
    return new Promise((resolve) => {
      const on = (m: Message) => { if (m.type === type) { this.off('message', on); resolve(m as MessageOf<T>); } };
      this.on('message', on);
    });
  }

  of<T extends Message['type']>(type: T): MessageOf<T>[] {
    return this.received.filter((m): m is MessageOf<T> => m.type === type);
  }
}

/** A VM control plane in memory: describe() serves `model`, events are fired by the test. */
export class MemoryControl implements VmControl {
  readonly kind = 'memory';
  readonly address = 'memory:vm';
  sessions: MemorySession[] = [];
  plugged = new Set<string>();
  failConnects = 0;
  /** the disks' counters by QOM path, as diskCounters() reads them (the test moves them) */
  counters = new Map<string, DiskCounters>();
  /** diskCounters() calls so far */
  counterReads = 0;
  constructor(public model: VmModel) {}
  async connect(signal: AbortSignal): Promise<VmControlSession> {
    signal.throwIfAborted();
    if (this.failConnects > 0) { this.failConnects--; throw new Error('no monitor yet'); }
    const s = new MemorySession(this);
    this.sessions.push(s);
    return s;
  }
  get current(): MemorySession | undefined { return this.sessions.at(-1); }
}

export class MemorySession implements VmControlSession {
  open = true;
  readonly closed: Promise<Error | undefined>;
  private end!: (e: Error | undefined) => void;
  private handlers = new Set<(ev: VmEvent) => void>();
  watches: { disk: VmDisk; o: AllocationWatchOptions; stopped: boolean }[] = [];
  constructor(private readonly vm: MemoryControl) {
    this.closed = new Promise((r) => { this.end = r; });
  }
  async describe(): Promise<VmModel> { return structuredClone(this.vm.model); }
  async chainSignature(): Promise<string> { return JSON.stringify(this.vm.model.disks.map((d) => d.chain.map((l) => l.file))); }
  async plugChannel(socketPath: string): Promise<ChannelPlug> {
    if (this.vm.plugged.has(socketPath)) return 'already-plugged';
    this.vm.plugged.add(socketPath);
    return 'plugged';
  }
  async watchAllocation(disk: VmDisk, o: AllocationWatchOptions): Promise<AllocationWatch> {
    const w = { disk, o, stopped: false };
    this.watches.push(w);
    return { stop: async () => { w.stopped = true; } };
  }
  async diskCounters(): Promise<Map<string, DiskCounters>> {
    this.vm.counterReads++;
    return new Map([...this.vm.counters].map(([k, v]) => [k, { ...v }]));
  }
  onEvent(fn: (ev: VmEvent) => void): () => void { this.handlers.add(fn); return () => this.handlers.delete(fn); }
  fire(ev: VmEvent): void { for (const h of this.handlers) h(ev); }
  /** the VM went away (QEMU killed) */
  drop(why = new Error('connection closed by the server')): void { this.open = false; this.end(why); }
  async close(): Promise<void> { if (this.open) { this.open = false; this.end(undefined); } }
}

/** A one-disk VM model on `file` (qcow2 or raw), guest serial `serial`. */
export function oneDiskModel(file: string, format: 'qcow2' | 'raw', serial = 'data', virtualSize = 16 << 20): VmModel {
  return disksModel([{ file, format, serial, virtualSize }]);
}

/** A VM model with one disk per entry: disk<i>, QOM path /machine/peripheral/disk<i>/virtio-backend. */
export function disksModel(disks: { file: string; format: 'qcow2' | 'raw'; serial: string; virtualSize?: number }[]): VmModel {
  return {
    status: 'running', running: true,
    disks: disks.map(({ file, format, serial, virtualSize = 16 << 20 }, i) => {
      const layer = { nodeName: `fmt${i}`, format, file, fileNodeName: `file${i}`, protocol: 'file', readOnly: false, virtualSize };
      return { qdevId: `disk${i}`, qomPath: `/machine/peripheral/disk${i}/virtio-backend`, device: null, serial, nodeName: `fmt${i}`, fileNodeName: `file${i}`, format, file, readOnly: false, virtualSize, chain: [layer] };
    }),
  };
}
