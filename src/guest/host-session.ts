// The host end of the protocol over any Duplex (in practice the unix socket QEMU serves for the
// port org.livemr.0). It runs the handshake (repeated until the guest answers with our nonce),
// checks sequence numbers, keeps a table of the guest's shared files and emits typed events.
// A guest reboot, a helper restart or any protocol error leads to a new hello and a full resync.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { encodeFrame, EXTENT_PENDING, FrameDecoder, PROTOCOL_VERSION, type ErrorCode, type Extent, type Message, type MessageOf } from './protocol.js';

export interface GuestFile {
  fileId: number;
  inode: number;
  generation: number;
  path: string;
  disk: string;
  size: number;
  /** sorted, disk-relative; bytes of [0, size) not covered are holes (zeros) */
  extents: Extent[];
  /**
   * lowest offset whose bytes may have changed since the consumer last looked (the least `from` of
   * the frames since); the consumer sets it back to Infinity once it has acted on it
   */
  changedFrom: number;
}

export interface GuestSessionEvents {
  /** handshake done; the file table was cleared and a full resync follows */
  hello: [MessageOf<'guestHello'>];
  /** resync finished: the file table is complete */
  synced: [number];
  file: [GuestFile];
  truncate: [GuestFile];
  remove: [GuestFile, MessageOf<'remove'>['reason']];
  shareStatus: [MessageOf<'shareStatus'>];
  heartbeat: [MessageOf<'heartbeat'>];
  /** the guest reported an error */
  guestError: [MessageOf<'error'>];
  /** we received something malformed (already answered with an error frame) */
  protocolError: [{ code: ErrorCode; message: string }];
  /**
   * a file report over one of the session's limits: the file is dropped from the table (its
   * extents freed) and ignored until the guest reports it afresh from 0, or removes it
   */
  refused: [GuestFile, { limit: 'files' | 'extents' | 'continuation'; message: string }];
  close: [];
}

/** Bounds on what the guest makes the session hold (the host agent's per-VM limits). */
export interface SessionLimits {
  /** files in the table, refused ones included */
  maxFiles: number;
  maxExtentsPerFile: number;
  /** extents of all files together */
  maxExtentsTotal: number;
  /** frames with the `more` bit in one update of a file */
  maxContinuationFrames: number;
}

export interface GuestSessionOptions {
  hostId?: string;
  capabilities?: string[];
  /** resend the hello this often until the guest answers */
  helloIntervalMs?: number;
  /** absent: unbounded (the guest helper's own tests) */
  limits?: SessionLimits;
}

export class GuestSession extends EventEmitter<GuestSessionEvents> {
  readonly files = new Map<number, GuestFile>();
  guest?: MessageOf<'guestHello'>;
  private readonly decoder = new FrameDecoder('guest');
  private nonce = 0;
  private established = false;
  private seqOut = 0;
  private seqIn = 0;
  private helloTimer?: NodeJS.Timeout;
  private flushWaiters = new Map<number, () => void>();
  private closed = false;
  private syncedOnce?: Promise<void>;
  private resolveSynced?: () => void;
  /** extents held in `files`, all files together */
  private extentCount = 0;
  /** frames with the `more` bit so far in each file's current update */
  private continuing = new Map<number, number>();
  /** files refused for a limit; `midUpdate`: the rest of the refused update is still coming */
  private refusedFiles = new Map<number, { midUpdate: boolean }>();

  constructor(private readonly stream: Duplex, private readonly o: GuestSessionOptions = {}) {
    super();
    stream.on('data', (b: Buffer) => this.onData(b));
    stream.on('error', () => {});
    stream.on('close', () => this.close());
    this.handshake();
  }

  /** Resolves once the guest has answered the hello and finished its full resync. */
  synced(): Promise<void> {
    return this.syncedOnce!;
  }

  /** True between the guest's answer to our hello and the next handshake. */
  get ready(): boolean { return this.established; }

  // Requests are meant for a ready session (after `synced()`); during a handshake the guest drops
  // them as stale, so a caller re-issues its shares on 'hello' (the guest also persists them).

  /** Asks the guest to share a file; the answer is a shareStatus event with refSeq = the returned seq. */
  share(path: string): number { return this.send({ type: 'share', path }); }
  unshare(fileId: number): number { return this.send({ type: 'unshare', fileId }); }
  resync(): number { this.clearFiles(); return this.send({ type: 'resync' }); }

  private clearFiles(): void {
    this.files.clear();
    this.extentCount = 0;
    this.continuing.clear();
    this.refusedFiles.clear();
  }

  /** The guest writes every shared file back, flushes its disks and reports; resolves on flushDone. */
  flush(timeoutMs = 30_000): Promise<void> {
    const seq = this.send({ type: 'flush' });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.flushWaiters.delete(seq); reject(new Error(`guest flush not done in ${timeoutMs} ms`)); }, timeoutMs);
      this.flushWaiters.set(seq, () => { clearTimeout(t); resolve(); });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.helloTimer);
    this.stream.destroy();
    this.emit('close');
  }

  /** Drops a file from the table (its extents no longer count). */
  private forget(fileId: number): void {
    const f = this.files.get(fileId);
    if (f) this.extentCount -= f.extents.length;
    this.files.delete(fileId);
    this.continuing.delete(fileId);
  }

  private handshake(): void {
    this.established = false;
    this.nonce = randomInt(1, 0xffffffff);
    if (!this.syncedOnce || this.resolveSynced === undefined) {
      this.syncedOnce = new Promise((r) => { this.resolveSynced = r; });
    }
    const hello = () => {
      this.seqOut = 0;
      this.send({ type: 'hostHello', nonce: this.nonce, protoMin: PROTOCOL_VERSION, protoMax: PROTOCOL_VERSION, hostId: this.o.hostId ?? 'livemr-host', capabilities: this.o.capabilities ?? [] });
    };
    clearInterval(this.helloTimer);
    hello();
    this.helloTimer = setInterval(() => { if (!this.established) hello(); else clearInterval(this.helloTimer); }, this.o.helloIntervalMs ?? 1000);
  }

  private send(m: Message): number {
    this.seqOut = (this.seqOut + 1) >>> 0;
    if (!this.closed) this.stream.write(encodeFrame(this.seqOut, m));
    return this.seqOut;
  }

  private fail(code: ErrorCode, message: string, refSeq: number): void {
    this.emit('protocolError', { code, message });
    if (this.established) this.send({ type: 'error', code, refSeq, message });
    if (code === 'framing' || code === 'sequence') this.handshake();
  }

  private onData(b: Buffer): void {
    for (const ev of this.decoder.push(b)) {
      if (ev.kind === 'error') { this.fail(ev.code, ev.message, ev.seq); continue; }
      const { seq, msg } = ev.frame;
      if (msg.type === 'guestHello') {
        if (msg.nonce !== this.nonce || msg.protoMin > PROTOCOL_VERSION || msg.protoMax < PROTOCOL_VERSION) {
          // an announce (the guest helper restarted, or the guest rebooted) while we were talking to
          // it: start over. Before that, the periodic hello already covers it; stale answers are ignored.
          if (this.established) this.handshake();
          continue;
        }
        this.established = true;
        clearInterval(this.helloTimer);
        this.seqIn = (seq + 1) >>> 0;
        this.clearFiles();
        this.guest = msg;
        this.emit('hello', msg);
        continue;
      }
      if (!this.established) continue; // before our hello was answered: stale
      if (seq !== this.seqIn) { this.fail('sequence', `expected frame ${this.seqIn}, got ${seq}`, seq); continue; }
      this.seqIn = (seq + 1) >>> 0;
      this.apply(msg);
    }
  }

  private apply(msg: Message): void {
    switch (msg.type) {
      case 'fileExtents': {
        const lim = this.o.limits;
        const tomb = this.refusedFiles.get(msg.fileId);
        if (tomb) {
          // refused: the rest of that update, and updates that build on it, are ignored
          if (tomb.midUpdate || msg.from !== 0) { tomb.midUpdate = msg.more; break; }
          this.refusedFiles.delete(msg.fileId); // a full map from 0: tried afresh
        }
        let old = this.files.get(msg.fileId);
        // an id that now names another inode (or one on another disk) is another file: what we knew
        // of the old one (its disk, its extents below `from`) does not describe it
        if (old && (old.disk !== msg.disk || old.inode !== msg.inode || old.generation !== msg.generation)) {
          this.forget(msg.fileId);
          old = undefined;
        }
        if (!old && lim && this.files.size + this.refusedFiles.size >= lim.maxFiles) {
          this.emit('refused', fileOf(msg), { limit: 'files', message: `more than ${lim.maxFiles} files shared at once` });
          break;
        }
        const f = old ?? { fileId: msg.fileId, inode: msg.inode, generation: msg.generation, path: msg.path, disk: msg.disk, size: 0, extents: [], changedFrom: 0 };
        // A report starts at or below the size the host was told (docs/protocol.md). One starting
        // past it would leave bytes nobody described, which would read as a hole (zeros): they are
        // pending instead (never served) until a report describes them.
        const known = f.size;
        const gap: Extent[] = msg.from > known ? [{ logical: known, physical: 0, length: msg.from - known, flags: EXTENT_PENDING }] : [];
        if (gap.length) this.emit('protocolError', { code: 'bad-payload', message: `file ${msg.fileId}: report starts at ${msg.from}, past the ${known} bytes described` });
        const kept = [...clip(f.extents, Math.min(msg.from, known)), ...gap];
        const n = kept.length + msg.extents.length;
        const frames = msg.more ? (this.continuing.get(msg.fileId) ?? 0) + 1 : 0;
        const over = !lim ? undefined
          : n > lim.maxExtentsPerFile ? { limit: 'extents' as const, message: `${n} extents in one file (at most ${lim.maxExtentsPerFile})` }
            : this.extentCount - f.extents.length + n > lim.maxExtentsTotal ? { limit: 'extents' as const, message: `more than ${lim.maxExtentsTotal} extents in all files` }
              : frames > lim.maxContinuationFrames ? { limit: 'continuation' as const, message: `more than ${lim.maxContinuationFrames} frames in one update of a file` }
                : undefined;
        if (over) {
          this.forget(msg.fileId);
          this.refusedFiles.set(msg.fileId, { midUpdate: msg.more });
          this.emit('refused', fileOf(msg), over);
          break;
        }
        this.extentCount += n - f.extents.length;
        if (frames) this.continuing.set(msg.fileId, frames);
        else this.continuing.delete(msg.fileId);
        f.path = msg.path;
        f.size = msg.size;
        f.extents = [...kept, ...msg.extents];
        f.changedFrom = Math.min(f.changedFrom, msg.rewritten ? 0 : msg.from);
        this.files.set(f.fileId, f);
        if (!msg.more) this.emit('file', f);
        break;
      }
      case 'truncate': {
        const f = this.files.get(msg.fileId);
        if (!f) break;
        f.size = msg.size;
        this.extentCount -= f.extents.length;
        f.extents = clip(f.extents, msg.size);
        this.extentCount += f.extents.length;
        f.changedFrom = Math.min(f.changedFrom, msg.size);
        this.emit('truncate', f);
        break;
      }
      case 'remove': {
        this.refusedFiles.delete(msg.fileId);
        const f = this.files.get(msg.fileId);
        if (!f) break;
        this.forget(msg.fileId);
        this.emit('remove', f, msg.reason);
        break;
      }
      case 'resyncDone':
        this.emit('synced', msg.files);
        this.resolveSynced?.();
        this.resolveSynced = undefined;
        break;
      case 'flushDone': this.flushWaiters.get(msg.refSeq)?.(); this.flushWaiters.delete(msg.refSeq); break;
      case 'shareStatus': this.emit('shareStatus', msg); break;
      case 'heartbeat': this.emit('heartbeat', msg); break;
      case 'error':
        this.emit('guestError', msg);
        if (msg.code === 'sequence' || msg.code === 'framing') this.handshake();
        break;
      default: break;
    }
  }
}

/** What a frame says of its file, without extents (for a refusal). */
function fileOf(m: MessageOf<'fileExtents'>): GuestFile {
  return { fileId: m.fileId, inode: m.inode, generation: m.generation, path: m.path, disk: m.disk, size: m.size, extents: [], changedFrom: 0 };
}

/** Extents cut at `end` (the part of each extent before it). */
function clip(extents: Extent[], end: number): Extent[] {
  return extents.filter((x) => x.logical < end).map((x) => (x.logical + x.length > end ? { ...x, length: end - x.logical } : x));
}
