// The host agent's parts, each on its own and then VmLink put together from them: the QMP control
// plane against the fake QMP peer, the guest channel and VmLink over an in-memory channel with the
// test playing the guest, the file sync on a real qcow2 image and a real composition store.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/index.js';
import type { MessageOf } from '../../../src/guest/protocol.js';
import { QmpControl, type VmControlSession, type VmEvent } from '../../../src/host/control/index.js';
import { GuestChannel } from '../../../src/host/guest-channel.js';
import { createLogger } from '../../../src/host/log.js';
import { Metrics } from '../../../src/host/metrics.js';
import { nextShareStatus, ShareBook, SHARE_RECORD_STATUS } from '../../../src/host/shares.js';
import { VmLink } from '../../../src/host/vm-link.js';
import { until } from '../../harness/wait.js';
import { startPeer, type Peer, type PeerConn } from '../qmp/support/peer.js';
import { disksModel, duplexPair, FakeGuest, MemoryControl, oneDiskModel } from './support/memory.js';

const log = createLogger({ sink: () => {} });
const C = 65536;

describe('share book', () => {
  it('moves requests through the guest\'s answers, file reports and removals', () => {
    expect(nextShareStatus(undefined, { kind: 'requested' })).toBe('requested');
    expect(nextShareStatus('denied', { kind: 'requested' })).toBe('requested');
    expect(nextShareStatus('requested', { kind: 'answered', status: 'pending-consent' })).toBe('pending-consent');
    expect(nextShareStatus('pending-consent', { kind: 'file' })).toBe('shared');
    expect(nextShareStatus('shared', { kind: 'file' })).toBeUndefined();
    expect(nextShareStatus('shared', { kind: 'removed', reason: 'consent-revoked' })).toBe('revoked');
    expect(nextShareStatus('shared', { kind: 'removed', reason: 'deleted' })).toBe('deleted');
    expect(nextShareStatus('shared', { kind: 'removed', reason: 'unshared' })).toBe('unshared');
    expect(SHARE_RECORD_STATUS).toContain('not-mappable'); // every guest answer is a record status
  });

  it('asks again on hello except where the owner decides, and after resync only what got no answer', () => {
    let changes = 0;
    const b = new ShareBook(['/cfg'], ['/kept'], () => changes++);
    expect(b.get('/kept')!.status).toBe('requested');
    expect(changes).toBe(0);
    b.record('/p', { kind: 'requested' }, 'asked');
    b.record('/p', { kind: 'answered', status: 'pending-consent' }, 'waiting');
    b.record('/d', { kind: 'answered', status: 'denied' }, 'no');
    b.record('/s', { kind: 'file' }, 'shared by the owner');
    const before = b.get('/s')!;
    expect(b.record('/s', { kind: 'file' }, 'again')).toBe(before); // no change, no update
    expect(changes).toBe(4);
    expect(b.wanted()).toEqual(['/cfg', '/kept', '/p', '/d', '/s']);
    expect(b.toAskOnHello()).toEqual(['/cfg', '/kept', '/s']);
    expect(b.toAskAfterResync()).toEqual(['/cfg', '/kept']);
  });
});

describe('QMP control plane (fake QMP peer)', () => {
  let peer: Peer;
  let ctl: VmControlSession;
  let conn: PeerConn;
  beforeAll(async () => {
    peer = await startPeer();
    const connecting = new QmpControl(peer.path).connect(new AbortController().signal);
    conn = await peer.accept();
    ctl = await connecting;
  });
  afterAll(async () => {
    await ctl?.close();
    await peer?.close();
  });
  const reply = async (execute: string, ret: unknown) => {
    const r = await conn.nextRequest();
    expect(r.execute).toBe(execute);
    conn.send(JSON.stringify({ return: ret, id: r.id }) + '\r\n');
    return r;
  };
  const fail = async (execute: string, desc: string) => {
    const r = await conn.nextRequest();
    expect(r.execute).toBe(execute);
    conn.send(JSON.stringify({ error: { class: 'GenericError', desc }, id: r.id }) + '\r\n');
  };
  const block = (top: string) => [{
    device: '', qdev: '/machine/peripheral/disk0/virtio-backend',
    inserted: { 'node-name': 'fmt0', drv: 'qcow2', file: top, ro: false, image: { filename: top, format: 'qcow2', 'virtual-size': 1 << 24, 'backing-image': { filename: '/base.qcow2', format: 'qcow2', 'virtual-size': 1 << 24 } } },
  }];

  it('signs the image chains so that a new top image changes the signature', async () => {
    const a = ctl.chainSignature();
    await reply('query-block', block('/top.qcow2'));
    const b = ctl.chainSignature();
    await reply('query-block', block('/top.qcow2'));
    const c = ctl.chainSignature();
    await reply('query-block', block('/snap.qcow2'));
    expect(await a).toBe(await b);
    expect(await c).not.toBe(await a);
    expect(await a).toContain('qcow2:/base.qcow2');
  });

  it('hot-plugs the channel, and recognises one an earlier run plugged', async () => {
    const first = ctl.plugChannel('/run/x.sock');
    await reply('qom-list', [{ name: 'vser0', type: 'child<virtio-serial-pci>' }]);
    const add = await reply('chardev-add', {});
    expect(add.arguments).toMatchObject({ id: 'livemr-channel-chr', backend: { type: 'socket', data: { addr: { data: { path: '/run/x.sock' } } } } });
    const dev = await reply('device_add', {});
    expect(dev.arguments).toMatchObject({ driver: 'virtserialport', id: 'livemr-channel', bus: 'vser0.0', name: 'org.livemr.0' });
    expect(await first).toBe('plugged');
    const second = ctl.plugChannel('/run/x.sock');
    await reply('qom-list', [{ name: 'vser0', type: 'child<virtio-serial-pci>' }]);
    await fail('chardev-add', "attempt to add duplicate property 'livemr-channel-chr' to object (type 'container')");
    expect(await second).toBe('already-plugged');
    const third = ctl.plugChannel('/run/y.sock');
    await reply('qom-list', [{ name: 'vser0', type: 'child<virtio-serial-pci>' }]);
    await fail('chardev-add', 'socket path too long');
    await expect(third).rejects.toThrow(/too long/);
  });

  it('maps QMP events to graph changes and run states', async () => {
    const seen: VmEvent[] = [];
    const off = ctl.onEvent((ev) => seen.push(ev));
    const ev = (event: string, data: unknown = {}) => conn.send(JSON.stringify({ event, data, timestamp: { seconds: 1, microseconds: 0 } }) + '\r\n');
    ev('STOP'); ev('BLOCK_JOB_COMPLETED', { type: 'commit', device: 'd', len: 1, offset: 1, speed: 0 }); ev('RESUME'); ev('POWERDOWN');
    await until('events', () => seen.length >= 3, 5000, 5);
    off();
    expect(seen).toEqual([
      { kind: 'lifecycle', name: 'STOP', runState: 'paused' },
      { kind: 'graph-changed', name: 'BLOCK_JOB_COMPLETED', data: { type: 'commit', device: 'd', len: 1, offset: 1, speed: 0 } },
      { kind: 'lifecycle', name: 'RESUME', runState: 'running' },
    ]);
  });

  it('reports the end of the connection', async () => {
    expect(ctl.open).toBe(true);
    conn.socket.destroy();
    expect(await ctl.closed).toBeInstanceOf(Error);
    expect(ctl.open).toBe(false);
  });
});

describe('guest channel (in-memory)', () => {
  it('runs a session per stream and dials again after a drop, until closed', async () => {
    const guests: FakeGuest[] = [];
    const sessions: unknown[] = [];
    const ch = new GuestChannel({
      hostId: 'h', log, live: () => true, retryMs: 10, helloIntervalMs: 50,
      dial: async () => { const [host, guest] = duplexPair(); guests.push(new FakeGuest(guest)); return host; },
      onSession: (s) => sessions.push(s),
    });
    expect(ch.state).toBe('none');
    ch.open('/mem');
    await until('connected', () => ch.state === 'connected', 2000, 5);
    await guests[0]!.hello();
    await ch.session!.synced();
    expect(ch.session!.guest?.guestId).toBe('guest-1');
    guests[0]!.stream.destroy();
    await until('redialed', () => guests.length === 2 && ch.state === 'connected', 2000, 5);
    expect(sessions.length).toBe(2);
    ch.close();
    expect(ch.state).toBe('none');
    expect(guests[1]!.stream.destroyed).toBe(true);
  });

  it('keeps dialing while the socket refuses, and stops when the VM is gone', async () => {
    let live = true;
    let dials = 0;
    const ch = new GuestChannel({ hostId: 'h', log, live: () => live, retryMs: 10, onSession: () => {}, dial: async () => { dials++; throw new Error('ECONNREFUSED'); } });
    ch.open('/mem');
    await until('redials', () => dials >= 3, 2000, 5);
    expect(ch.state).toBe('connecting');
    live = false;
    const n = dials;
    await new Promise((r) => setTimeout(r, 60));
    expect(dials).toBeLessThanOrEqual(n + 1);
    ch.close();
  });
});

describe('VmLink from its parts (in-memory control plane and channel, real qcow2 image)', () => {
  let dir: string;
  let img: string;
  let store: CompositionStore;
  let link: { l: VmLink; metrics: Metrics } | undefined;
  /** host offsets of guest clusters 0..3 in the image, from qemu-img map (independent of the mapper) */
  let hostOffset: number[];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-vmlink-unit-'));
    img = join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 ${2 * C} ${2 * C}`, '-c', `write -P 0x62 0 ${2 * C}`, img]);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', img], { encoding: 'utf8' })) as { start: number; length: number; data: boolean; offset?: number }[];
    hostOffset = [0, 1, 2, 3].map((k) => {
      const e = map.find((m) => m.data && m.start <= k * C && k * C < m.start + m.length)!;
      return e.offset! + (k * C - e.start);
    });
    store = CompositionStore.open(join(dir, 'state'));
  });
  afterEach(async () => { await link?.l.stop(); link = undefined; logLines.length = 0; });
  afterAll(() => {
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const logLines: string[] = [];
  function start(control: MemoryControl, guests: FakeGuest[], opts: { share?: string[]; requested?: string[]; discardPollMs?: number } = {}) {
    const metrics = new Metrics();
    const l = new VmLink({ name: 'vm1', qmp: '/unused', share: opts.share ?? [] }, {
      store, log: createLogger({ sink: (line) => logLines.push(line) }), metrics, runDir: join(dir, 'run'), hostId: 'h', control, requested: opts.requested ?? [],
      channelRetryMs: 10, controlRetryMs: 10, ...(opts.discardPollMs !== undefined ? { discardPollMs: opts.discardPollMs } : {}),
      dial: async () => { const [host, guest] = duplexPair(); guests.push(new FakeGuest(guest)); return host; },
    });
    return { l, metrics };
  }
  const hostRanges = (name: string) => store.segments(name).map((x) => [x.offset, x.length]);
  const merge = (r: number[][]) => r.reduce<number[][]>((a, [o, n]) => {
    const last = a.at(-1);
    if (last && last[0]! + last[1]! === o) last[1]! += n!; else a.push([o!, n!]);
    return a;
  }, []);
  const bytesOf = (name: string) => Buffer.concat(store.segments(name).map((x) => {
    const b = Buffer.alloc(x.length);
    if (x.file === null) return b; // zero fill
    const fd = openSync(x.file!, 'r');
    try { readSync(fd, b, 0, x.length, x.offset); } finally { closeSync(fd); }
    return b;
  }));
  const fileMsg = (path: string, extents: { logical: number; physical: number; length: number }[], size: number, disk = 'data'): MessageOf<'fileExtents'> =>
    ({ type: 'fileExtents', fileId: 7, inode: 12, generation: 1, path, disk, size, from: 0, more: false, rewritten: false, extents: extents.map((x) => ({ ...x, flags: 0 })) });

  it('plugs the channel, asks for the wanted paths and publishes what the guest reports', async () => {
    const control = new MemoryControl(oneDiskModel(img, 'qcow2'));
    const guests: FakeGuest[] = [];
    link = start(control, guests, { share: ['/cfg.log'] });
    const { l } = link;
    await until('dialed', () => guests.length === 1, 2000, 5);
    expect([...control.plugged]).toEqual([join(dir, 'run', 'vm1.channel.sock')]);
    expect(control.current!.watches.map((w) => [w.disk.serial, w.o.step])).toEqual([['data', 16 << 20]]);
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
    expect((await g.next('share')).path).toBe('/cfg.log');
    // guest clusters 2,3 then 0 (file order differs from disk order)
    g.send(fileMsg('/cfg.log', [{ logical: 0, physical: 2 * C, length: 2 * C }, { logical: 2 * C, physical: 0, length: C }], 3 * C - 100));
    const name = 'vm1_cfg.log';
    await until('published', () => store.get(name)?.segments.size === 3 * C - 100, 3000, 5);
    // the composition points at the image bytes qemu-img map names for guest clusters 2, 3, 0
    expect(store.segments(name).every((x) => x.file === img)).toBe(true);
    expect(hostRanges(name)).toEqual(merge([[hostOffset[2]!, C], [hostOffset[3]!, C], [hostOffset[0]!, C - 100]]));
    expect(bytesOf(name).equals(Buffer.concat([Buffer.alloc(2 * C, 0x61), Buffer.alloc(C - 100, 0x62)]))).toBe(true);
    const st = l.status();
    expect(st).toMatchObject({ qmp: 'connected', channel: 'connected', runState: 'running', guest: { guestId: 'guest-1', software: 'fake' }, pendingRanges: 0, control: { kind: control.kind, address: control.address } });
    expect(st.files).toEqual([expect.objectContaining({ path: '/cfg.log', name, guestSize: 3 * C - 100, servedSize: 3 * C - 100, pendingRanges: 0 })]);
    expect(st.shares).toEqual([expect.objectContaining({ path: '/cfg.log', status: 'shared' })]);
    // revoked: the composition goes and the share says why
    g.send({ type: 'remove', fileId: 7, reason: 'consent-revoked' });
    await until('removed', () => !store.get(name), 3000, 5);
    expect(l.status().shares[0]).toMatchObject({ status: 'revoked', message: 'removed: consent-revoked' });
    expect(l.status().files).toEqual([]);
  });

  it('refuses a file on a disk the VM does not have, and does not re-ask the owner on reconnect', async () => {
    const control = new MemoryControl(oneDiskModel(img, 'qcow2'));
    const guests: FakeGuest[] = [];
    link = start(control, guests, { requested: ['/wait', '/no'] });
    const { l, metrics } = link;
    await until('dialed', () => guests.length === 1, 2000, 5);
    const g = guests[0]!;
    await g.hello();
    // asked on hello, and again after the resync while they had no answer
    await until('shares', () => g.of('share').length === 4, 2000, 5);
    expect(g.of('share').map((m) => m.path)).toEqual(['/wait', '/no', '/wait', '/no']);
    g.send({ type: 'shareStatus', refSeq: 1, path: '/wait', status: 'pending-consent', fileId: 0, message: 'waiting for the owner' });
    g.send({ type: 'shareStatus', refSeq: 2, path: '/no', status: 'denied', fileId: 0, message: 'denied' });
    g.send(fileMsg('/x', [{ logical: 0, physical: 0, length: C }], C, 'other-disk'));
    await until('refused', () => l.status().files[0]?.refused !== undefined, 3000, 5);
    expect(l.status().files[0]!.refused).toMatch(/disk serial 'other-disk'/);
    expect(store.get('vm1_x')).toBeUndefined();
    expect(metrics.render()).toMatch(/livemr_refused_updates_total\{vm="vm1"\} 1/);
    expect(l.status().shares.map((s) => [s.path, s.status])).toEqual([['/wait', 'pending-consent'], ['/no', 'denied'], ['/x', 'shared']]);
    // the channel drops and comes back: a new hello, no new requests for the owner
    g.stream.destroy();
    await until('redialed', () => guests.length === 2, 2000, 5);
    const g2 = guests[1]!;
    await g2.hello();
    // the agent logs the end of the resync after it re-asked what had no answer: wait for that
    await until('second resync done', () => logLines.filter((x) => x.includes('guest resync done')).length === 2, 2000, 5);
    expect(g2.of('share').map((m) => m.path)).toEqual(['/x']);
    // an explicit request asks again
    expect(l.requestShare('/wait').status).toBe('requested');
    await until('re-asked', () => g2.of('share').some((m) => m.path === '/wait'), 2000, 5);
    expect(() => l.requestShare('relative')).toThrow(/bad guest path/);
  });

  it('keeps a rotated file under its new name when the file it replaced is reported gone after the rename', async () => {
    // logrotate's rename: app.log (fileId 7) is renamed over app.log.1 (fileId 8, whose inode goes);
    // the helper may report 8's removal after 7's new path, and that removal must not take 7's composition
    const control = new MemoryControl(oneDiskModel(img, 'qcow2'));
    const guests: FakeGuest[] = [];
    link = start(control, guests);
    const { l } = link;
    await until('dialed', () => guests.length === 1, 2000, 5);
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
    g.send({ ...fileMsg('/app.log.1', [{ logical: 0, physical: 0, length: C }], C), fileId: 8, inode: 13 });
    g.send(fileMsg('/app.log', [{ logical: 0, physical: 2 * C, length: C }], C - 10));
    await until('both published', () => store.get('vm1_app.log.1')?.segments.size === C && store.get('vm1_app.log')?.segments.size === C - 10, 3000, 5);
    // the new app.log (fileId 9) is reported before the renamed one: the rename must not take it away
    g.send({ ...fileMsg('/app.log', [{ logical: 0, physical: 3 * C, length: C }], 100), fileId: 9, inode: 14 });
    await until('new app.log', () => store.get('vm1_app.log')?.segments.size === 100, 3000, 5);
    const removed: string[] = [];
    const onRemove = (n: string) => removed.push(n);
    store.on('remove', onRemove);
    g.send(fileMsg('/app.log.1', [{ logical: 0, physical: 2 * C, length: C }], C - 10));
    await until('renamed', () => store.get('vm1_app.log.1')?.segments.size === C - 10, 3000, 5);
    store.off('remove', onRemove);
    // another inode took the name: a new composition (an open handle on the old one never reads into this one)
    expect(removed).toEqual(['vm1_app.log.1']);
    // the replaced file shows nowhere any more, before its removal arrives
    expect(l.status().files.map((f) => f.fileId).sort()).toEqual([7, 9]);
    g.send({ type: 'remove', fileId: 8, reason: 'deleted' });
    // frames are applied in order: once app.log's growth after the removal shows, the removal was applied
    g.send({ ...fileMsg('/app.log', [{ logical: 0, physical: 3 * C, length: C }], 200), fileId: 9, inode: 14 });
    await until('applied past the removal', () => store.get('vm1_app.log')?.segments.size === 200, 3000, 5);
    expect(l.status().files.map((f) => [f.fileId, f.path, f.servedSize]).sort()).toEqual([[7, '/app.log.1', C - 10], [9, '/app.log', 200]]);
    expect(hostRanges('vm1_app.log.1')).toEqual([[hostOffset[2]!, C - 10]]);
    expect(hostRanges('vm1_app.log')).toEqual([[hostOffset[3]!, 200]]);
    // the same inode under a new id (the helper restarted) keeps its composition
    store.on('remove', onRemove);
    g.send({ ...fileMsg('/app.log.1', [{ logical: 0, physical: 2 * C, length: C }], C), fileId: 20 });
    await until('new id', () => l.status().files.some((f) => f.fileId === 20 && f.servedSize === C), 3000, 5);
    store.off('remove', onRemove);
    expect(removed).toEqual(['vm1_app.log.1']);
    expect(l.status().files.map((f) => f.fileId).sort((a, b) => a - b)).toEqual([9, 20]);
  });

  it('maps a file id the guest reuses for a file on another disk on that disk, as a new composition', async () => {
    const img2 = join(dir, 'logs.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img2, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x63 0 ${C}`, img2]);
    const control = new MemoryControl(disksModel([{ file: img, format: 'qcow2', serial: 'data' }, { file: img2, format: 'qcow2', serial: 'logs' }]));
    const guests: FakeGuest[] = [];
    link = start(control, guests);
    const { l } = link;
    await until('dialed', () => guests.length === 1, 2000, 5);
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }, { serial: 'logs', size: 16 << 20, partitions: [] }]);
    g.send(fileMsg('/x', [{ logical: 0, physical: 0, length: C }], C));
    await until('published', () => store.get('vm1_x')?.segments.size === C, 3000, 5);
    expect(bytesOf('vm1_x').equals(Buffer.alloc(C, 0x62))).toBe(true);
    const removed: string[] = [];
    const onRemove = (n: string) => removed.push(n);
    store.on('remove', onRemove);
    // the same id and path, now another inode on the other disk: its extents are that disk's offsets
    g.send({ ...fileMsg('/x', [{ logical: 0, physical: 0, length: C }], C, 'logs'), inode: 40 });
    await until('mapped on the other disk', () => store.segments('vm1_x')[0]?.file === img2, 3000, 5);
    store.off('remove', onRemove);
    expect(bytesOf('vm1_x').equals(Buffer.alloc(C, 0x63))).toBe(true);
    // another file: a new composition, so a handle open on the old one ends instead of reading on
    expect(removed).toEqual(['vm1_x']);
    expect(l.status().files).toEqual([expect.objectContaining({ fileId: 7, disk: 'logs', servedSize: C, pendingRanges: 0 })]);
  });

  it('re-verifies every file of a disk whose unmap counters moved (QEMU reused a discarded cluster), and again on the flushes after', async () => {
    const disc = join(dir, 'discard.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disc, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${4 * C}`, disc]);
    const qom = '/machine/peripheral/disk0/virtio-backend';
    const control = new MemoryControl(oneDiskModel(disc, 'qcow2'));
    control.counters.set(qom, { unmapOperations: 3, unmapBytes: 4096, flushOperations: 10 });
    const guests: FakeGuest[] = [];
    link = start(control, guests, { discardPollMs: 10 });
    const { metrics } = link;
    await until('dialed', () => guests.length === 1, 2000, 5);
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
    g.send(fileMsg('/d', [{ logical: 0, physical: 0, length: 4 * C }], 4 * C));
    await until('published', () => store.get('vm1_d')?.segments.size === 4 * C, 3000, 5);
    // the guest discards guest cluster 1; QEMU frees its host cluster and reuses it for another write
    execFileSync('qemu-io', ['-f', 'qcow2', '-d', 'unmap', '-c', `discard ${C} ${C}`, '-c', `write -P 0x7a ${8 * C} ${C}`, disc]);
    // nothing told the agent: what it serves there is now the other write's bytes
    expect(bytesOf('vm1_d').subarray(C, 2 * C).equals(Buffer.alloc(C, 0x7a))).toBe(true);
    const reads = control.counterReads;
    await until('polled', () => control.counterReads > reads + 2, 3000, 5);
    expect(metrics.render()).not.toMatch(/livemr_disk_reverify_total/);
    control.counters.set(qom, { unmapOperations: 4, unmapBytes: 4096 + C, flushOperations: 10 });
    await until('re-verified', () => bytesOf('vm1_d').subarray(C, 2 * C).equals(Buffer.alloc(C)), 3000, 5);
    expect(bytesOf('vm1_d').equals(Buffer.concat([Buffer.alloc(C, 0x61), Buffer.alloc(C), Buffer.alloc(2 * C, 0x61)]))).toBe(true);
    expect(metrics.render()).toMatch(/livemr_disk_reverify_total\{vm="vm1",why="discard"\} 1/);
    // QEMU writes a discard's metadata when it flushes: the guest is asked to, and each of the next two flushes verifies again
    await g.next('flush');
    for (const flushes of [11, 12]) {
      control.counters.set(qom, { unmapOperations: 4, unmapBytes: 4096 + C, flushOperations: flushes });
      await until(`flush ${flushes} verified`, () => metrics.render().includes(`livemr_disk_reverify_total{vm="vm1",why="flush"} ${flushes - 10}`), 3000, 5);
    }
    control.counters.set(qom, { unmapOperations: 4, unmapBytes: 4096 + C, flushOperations: 13 });
    const after = control.counterReads;
    await until('polled', () => control.counterReads > after + 2, 3000, 5);
    expect(metrics.render()).toMatch(/livemr_disk_reverify_total\{vm="vm1",why="flush"\} 2/);
  });

  it('remaps on a graph event, follows run states, and reconnects when the control plane drops', async () => {
    const control = new MemoryControl(oneDiskModel(img, 'qcow2'));
    control.failConnects = 1; // the monitor is not there yet
    const guests: FakeGuest[] = [];
    link = start(control, guests);
    const { l, metrics } = link;
    await until('dialed', () => guests.length === 1, 3000, 5);
    expect(l.status().lastError).toBe('no monitor yet');
    const g = guests[0]!;
    await g.hello([{ serial: 'data', size: 16 << 20, partitions: [] }]);
    g.send(fileMsg('/r', [{ logical: 0, physical: 0, length: C }], C));
    await until('published', () => store.get('vm1_r')?.segments.size === C, 3000, 5);
    const s1 = control.current!;
    s1.fire({ kind: 'lifecycle', name: 'STOP', runState: 'paused' });
    expect(l.status().runState).toBe('paused');
    // a block job moved the data: the model now says the disk is a raw file with other bytes
    const raw = join(dir, 'moved.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', img, raw]);
    control.model = oneDiskModel(raw, 'raw');
    s1.fire({ kind: 'graph-changed', name: 'BLOCK_JOB_COMPLETED' });
    await until('remapped', () => store.segments('vm1_r')[0]?.file === raw, 3000, 5);
    expect(store.segments('vm1_r').map((s) => [s.file, s.offset, s.length])).toEqual([[raw, 0, C]]);
    expect(metrics.render()).toMatch(/livemr_qmp_events_total\{vm="vm1",event="BLOCK_JOB_COMPLETED"\} 1/);
    // QEMU goes away: watches stop, the channel closes, a new control session and channel follow
    s1.drop();
    await until('reconnected', () => control.sessions.length === 2 && guests.length === 2, 3000, 5);
    expect(g.stream.destroyed).toBe(true);
    expect(l.status().qmp).toBe('connected');
    await l.stop();
    expect(control.current!.open).toBe(false);
    expect(l.status()).toMatchObject({ qmp: 'connecting', channel: 'none' });
  });
});
