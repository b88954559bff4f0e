// GuestSession (host end) over a real unix socket, with the test playing the guest by encoding frames
// itself: handshake by nonce, stale frames ignored, table updates (from / more / truncate / remove),
// and recovery from garbage, sequence gaps and a guest restart by a new handshake.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestSession } from '../../../src/guest/host-session.js';
import { encodeFrame, EXTENT_PENDING, FrameDecoder, type Message, type MessageOf } from '../../../src/guest/protocol.js';

let dir: string;
let server: Server;
let guest: Socket;
let session: GuestSession;
const fromHost: Message[] = [];
let hostDecoder: FrameDecoder;
let seq = 0;

const send = (m: Message, s = ++seq) => guest.write(encodeFrame(s, m));
const hello = (nonce: number): Message => ({ type: 'guestHello', nonce, protoMin: 1, protoMax: 1, guestId: 'g', software: 't', capabilities: [], disks: [] });
const lastHostHello = () => fromHost.filter((m): m is MessageOf<'hostHello'> => m.type === 'hostHello').at(-1);
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
async function until<T>(f: () => T | undefined | false): Promise<T> {
  for (let i = 0; i < 1000; i++) { const v = f(); if (v) return v; await tick(10); }
  throw new Error('timeout');
}
const ext = (logical: number, physical: number, length: number) => ({ logical, physical, length, flags: 0 });
const fileMsg = (from: number, extents: ReturnType<typeof ext>[], more = false): Message =>
  ({ type: 'fileExtents', fileId: 1, inode: 12, generation: 1, path: '/a', disk: 'data', size: 20480, from, more, rewritten: false, extents });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-sess-'));
  fromHost.length = 0;
  seq = 0;
  hostDecoder = new FrameDecoder('host');
  const accepted = new Promise<Socket>((res) => { server = createServer(res); });
  await new Promise<void>((r) => server.listen(join(dir, 's'), r));
  const hostSock = connect(join(dir, 's'));
  guest = await accepted;
  guest.on('data', (b: Buffer) => { for (const ev of hostDecoder.push(b)) if (ev.kind === 'frame') fromHost.push(ev.frame.msg); });
  session = new GuestSession(hostSock, { hostId: 'h', helloIntervalMs: 100 });
});
afterEach(() => {
  session.close();
  guest.destroy();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function handshake(): Promise<void> {
  const h = await until(lastHostHello);
  seq = 0;
  send(hello(h.nonce));
  send({ type: 'resyncDone', files: 0 });
  await session.synced();
}

describe('GuestSession', () => {
  it('ignores stale frames and a wrong nonce, then accepts the answer to its hello', async () => {
    const h = await until(lastHostHello);
    send(fileMsg(0, [ext(0, 4096, 4096)])); // leftovers of an older connection
    send(hello((h.nonce ^ 1) >>> 0));
    await tick();
    expect(session.files.size).toBe(0);
    expect(session.guest).toBeUndefined();
    await handshake();
    expect(session.guest?.guestId).toBe('g');
  });

  it('applies extents from `from`, across `more` frames, then truncate and remove', async () => {
    await handshake();
    const files: number[] = [];
    session.on('file', (f) => files.push(f.extents.length));
    send(fileMsg(0, [ext(0, 4096, 4096)], true));
    send({ ...fileMsg(4096, [ext(4096, 65536, 8192)]) });
    await until(() => files.length === 1);
    expect(session.files.get(1)!.extents).toEqual([ext(0, 4096, 4096), ext(4096, 65536, 8192)]);
    send(fileMsg(8192, [ext(8192, 69632, 12288)])); // replaces the tail from 8192 on
    await until(() => files.length === 2);
    expect(session.files.get(1)!.extents).toEqual([ext(0, 4096, 4096), ext(4096, 65536, 4096), ext(8192, 69632, 12288)]);
    send({ type: 'truncate', fileId: 1, size: 6000 });
    await until(() => session.files.get(1)!.size === 6000);
    expect(session.files.get(1)!.extents).toEqual([ext(0, 4096, 4096), ext(4096, 65536, 1904)]);
    const removed = new Promise<string>((r) => session.on('remove', (_f, reason) => r(reason)));
    send({ type: 'remove', fileId: 1, reason: 'deleted' });
    expect(await removed).toBe('deleted');
    expect(session.files.size).toBe(0);
  });

  it('a report starting past what the host was told leaves those bytes pending, never a hole (zeros)', async () => {
    await handshake();
    const errors: string[] = [];
    session.on('protocolError', (e) => errors.push(e.code));
    const files: number[] = [];
    session.on('file', (f) => files.push(f.size));
    send(fileMsg(0, [ext(0, 4096, 20480)]));
    send({ type: 'truncate', fileId: 1, size: 0 }); // a shrink withdraws the file
    send(fileMsg(8192, [ext(8192, 12288, 12288)])); // a report planned before the withdrawal
    await until(() => files.length === 2);
    expect(session.files.get(1)!.extents).toEqual([{ logical: 0, physical: 0, length: 8192, flags: EXTENT_PENDING }, ext(8192, 12288, 12288)]);
    expect(errors).toEqual(['bad-payload']);
    send(fileMsg(0, [ext(0, 4096, 20480)])); // described again from 0: whole
    await until(() => files.length === 3);
    expect(session.files.get(1)!.extents).toEqual([ext(0, 4096, 20480)]);
  });

  it('tracks the lowest offset that may have changed until the consumer acts on it; rewritten means 0', async () => {
    await handshake();
    const seen: number[] = [];
    session.on('file', (f) => { seen.push(f.changedFrom); f.changedFrom = Infinity; });
    send(fileMsg(0, [ext(0, 4096, 8192)]));
    send(fileMsg(8192, [])); // growth: the mapping from 8192 on
    send({ ...(fileMsg(8192, []) as MessageOf<'fileExtents'>), rewritten: true }); // written somewhere: everything may have changed
    await until(() => seen.length === 3);
    expect(seen).toEqual([0, 8192, 0]);
  });

  it('answers garbage with an error frame and a new handshake, and keeps working', async () => {
    await handshake();
    const first = lastHostHello()!.nonce;
    const errors: string[] = [];
    session.on('protocolError', (e) => errors.push(e.code));
    guest.write(Buffer.from('LM\x01\x02garbage garbage garbage garbage'));
    send({ type: 'heartbeat', uptimeMs: 1, files: 0, pending: 0 });
    await until(() => errors.includes('framing'));
    await until(() => fromHost.some((m) => m.type === 'error'));
    const again = await until(() => { const h = lastHostHello(); return h && h.nonce !== first && h; });
    seq = 0;
    send(hello(again.nonce));
    send(fileMsg(0, [ext(0, 4096, 4096)]));
    await until(() => session.files.size === 1);
  });

  it('a sequence gap or a guest announce (restart) leads to a new handshake and a cleared table', async () => {
    await handshake();
    send(fileMsg(0, [ext(0, 4096, 4096)]));
    await until(() => session.files.size === 1);
    let n = lastHostHello()!.nonce;
    send({ type: 'heartbeat', uptimeMs: 1, files: 0, pending: 0 }, seq + 5);
    const h2 = await until(() => { const h = lastHostHello(); return h && h.nonce !== n && h; });
    seq = 0;
    send(hello(h2.nonce));
    await until(() => session.files.size === 0);
    n = h2.nonce;
    send(hello(0)); // the helper restarted
    await until(() => { const h = lastHostHello(); return h && h.nonce !== n && h; });
  });

  it('share and flush carry sequence numbers the guest answers to', async () => {
    await handshake();
    const s = session.share('/mnt/data/x');
    const flushed = session.flush(2000);
    await until(() => fromHost.some((m) => m.type === 'flush'));
    expect(fromHost.find((m) => m.type === 'share')).toEqual({ type: 'share', path: '/mnt/data/x' });
    send({ type: 'flushDone', refSeq: s + 1 });
    await flushed;
  });
});
