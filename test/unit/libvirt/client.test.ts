// LibvirtClient against a scripted daemon (real unix socket, real framing): the open sequence, serial
// correlation, errors with libvirt's codes, timeouts, keepalive in both directions, protocol breaches.
import { afterEach, describe, expect, it } from 'vitest';
import {
  EventId, Feature, KEEPALIVE_PROGRAM, LibvirtAuthError, LibvirtClient, LibvirtConnectError, LibvirtDisconnectedError,
  LibvirtKeepaliveError, LibvirtProtocolError, LibvirtRpcError, LibvirtTimeoutError, PROC, VIR_ERR, XdrReader, XdrWriter,
  writeDomain, type DomainEvent,
} from '../../../src/libvirt/index.js';
import { until } from '../../harness/wait.js';
import { FakeDaemon } from './fake-daemon.js';

const DOM = { name: 'web1', uuid: '6c1f3e0a-55d1-4c5e-9a51-0d0c2b7e7a01', id: 3 };
let daemon: FakeDaemon | undefined;
let client: LibvirtClient | undefined;
afterEach(async () => {
  await client?.close();
  await daemon?.stop();
  client = daemon = undefined;
});

const open = async (d: FakeDaemon, o: Parameters<typeof LibvirtClient.connect>[0] = {}) =>
  (client = await LibvirtClient.connect({ uri: 'qemu:///system', socketPath: d.path, ...o }));

describe('LibvirtClient', () => {
  it('opens like libvirt\'s remote driver: AUTH_LIST, keepalive feature, CONNECT_OPEN with the URI', async () => {
    daemon = await new FakeDaemon().start();
    const c = await open(daemon, { uri: 'qemu:///system?socket=/ignored' });
    const calls = daemon.conns[0]!.calls;
    expect(calls.map((p) => p.header.procedure)).toEqual([PROC.AUTH_LIST, PROC.CONNECT_SUPPORTS_FEATURE, PROC.CONNECT_OPEN]);
    expect(new XdrReader(calls[1]!.payload).int()).toBe(Feature.PROGRAM_KEEPALIVE);
    const r = new XdrReader(calls[2]!.payload);
    expect(r.optional((x) => x.string(100))).toBe('qemu:///system'); // the socket parameter stays on our side
    expect(r.uint()).toBe(0);
    expect(calls.map((p) => p.header.serial)).toEqual([1, 2, 3]);
    expect(c.uri).toBe('qemu:///system');
  });

  it('refuses a daemon that wants SASL or polkit with a typed error', async () => {
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.procedure !== PROC.AUTH_LIST) return false;
      conn.reply(p, new XdrWriter().uint(1).int(1).toBuffer());
      return true;
    }).start();
    await expect(open(daemon)).rejects.toThrow(LibvirtAuthError);
  });

  it('names a missing socket with its errno', async () => {
    const e = await LibvirtClient.connect({ socketPath: '/nonexistent/livemr/libvirt-sock' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LibvirtConnectError);
    expect((e as LibvirtConnectError).errno).toBe('ENOENT');
    expect((e as LibvirtConnectError).code).toBe('LIBVIRT_CONNECT');
  });

  it('correlates replies by serial, in any order, and maps error replies to LibvirtRpcError', async () => {
    const held: Parameters<NonNullable<FakeDaemon['handler']>>[] = [];
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.procedure !== PROC.DOMAIN_LOOKUP_BY_NAME) return false;
      held.push([conn, p]);
      if (held.length === 3) {
        for (const [cn, pk] of held.reverse()) {
          const name = new XdrReader(pk.payload).string(100);
          if (name === 'missing') cn.error(pk, VIR_ERR.NO_DOMAIN, `no domain with matching name '${name}'`);
          else { const w = new XdrWriter(); writeDomain(w, { ...DOM, name }); cn.reply(pk, w.toBuffer()); }
        }
      }
      return true;
    }).start();
    const c = await open(daemon);
    const [a, b, m] = await Promise.allSettled([c.lookupDomain('a'), c.lookupDomain('b'), c.lookupDomain('missing')]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { name: 'a', uuid: DOM.uuid, id: 3 } });
    expect(b).toMatchObject({ status: 'fulfilled', value: { name: 'b' } });
    const err = (m as PromiseRejectedResult).reason as LibvirtRpcError;
    expect(err).toBeInstanceOf(LibvirtRpcError);
    expect([err.virCode, err.virCodeName, err.procedure, err.isNotFound]).toEqual([42, 'VIR_ERR_NO_DOMAIN', 'DOMAIN_LOOKUP_BY_NAME', true]);
    expect(err.serverMessage).toContain("'missing'");
  });

  it('times a call out, drops its late reply and keeps the connection', async () => {
    let late: (() => void) | undefined;
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.procedure !== PROC.CONNECT_GET_LIB_VERSION) return false;
      const answer = () => conn.reply(p, new XdrWriter().uhyper(9000000).toBuffer());
      if (!late) late = answer; else answer();
      return true;
    }).start();
    const c = await open(daemon, { callTimeoutMs: 100 });
    await expect(c.libVersion()).rejects.toThrow(LibvirtTimeoutError);
    late!();
    expect(await c.libVersion()).toBe(9000000);
    expect(c.isOpen).toBe(true);
  });

  it('drops the connection on a reply nobody asked for, failing what is pending', async () => {
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.procedure !== PROC.CONNECT_GET_LIB_VERSION) return false;
      conn.reply({ ...p, header: { ...p.header, serial: 999 } }, Buffer.alloc(8));
      return true;
    }).start();
    const c = await open(daemon);
    const e = await c.libVersion().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LibvirtDisconnectedError);
    expect((e as Error).cause).toBeInstanceOf(LibvirtProtocolError);
    expect(await c.closed).toBeInstanceOf(LibvirtProtocolError);
    await expect(c.libVersion()).rejects.toThrow(/unknown serial 999/);
  });

  it('fails pending calls when libvirtd goes away', async () => {
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.procedure !== PROC.CONNECT_GET_LIB_VERSION) return false;
      conn.socket.destroy();
      return true;
    }).start();
    const c = await open(daemon);
    await expect(c.libVersion()).rejects.toThrow(LibvirtDisconnectedError);
    expect(await c.closed).toBeInstanceOf(LibvirtDisconnectedError);
  });

  it('answers the daemon\'s PING with a PONG', async () => {
    daemon = await new FakeDaemon().start();
    await open(daemon);
    const conn = daemon.conns[0]!;
    conn.keepalive(1);
    const pong = await until('PONG', () => conn.calls.find((p) => p.header.program === KEEPALIVE_PROGRAM));
    expect([pong.header.procedure, pong.header.type, pong.payload.length]).toEqual([2, 2, 0]);
  });

  it('pings an idle daemon and declares it dead when nothing comes back', async () => {
    daemon = await new FakeDaemon((_conn, p) => p.header.program === KEEPALIVE_PROGRAM).start(); // swallow our PINGs
    const c = await open(daemon, { keepaliveIntervalMs: 40, keepaliveCount: 3 });
    const t0 = Date.now();
    expect(await c.closed).toBeInstanceOf(LibvirtKeepaliveError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3 * 40);
    expect(daemon.conns[0]!.calls.filter((p) => p.header.program === KEEPALIVE_PROGRAM && p.header.procedure === 1).length).toBeGreaterThanOrEqual(2);
  });

  it('keeps a daemon that answers PINGs', async () => {
    daemon = await new FakeDaemon((conn, p) => {
      if (p.header.program !== KEEPALIVE_PROGRAM) return false;
      conn.keepalive(2);
      return true;
    }).start();
    const c = await open(daemon, { keepaliveIntervalMs: 30, keepaliveCount: 2 });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.isOpen).toBe(true);
  });

  it('drops the connection on a garbage length word', async () => {
    daemon = await new FakeDaemon().start();
    const c = await open(daemon);
    daemon.conns[0]!.socket.write(Buffer.from('00000003', 'hex'));
    expect(await c.closed).toBeInstanceOf(LibvirtProtocolError);
  });

  it('registers events and delivers them decoded', async () => {
    daemon = await new FakeDaemon().start();
    const c = await open(daemon);
    const got: DomainEvent[] = [];
    c.onEvent((e) => got.push(e));
    expect(await c.registerEvent('BLOCK_THRESHOLD')).toBe(100 + EventId.BLOCK_THRESHOLD);
    const reg = new XdrReader(daemon.conns[0]!.calls.at(-1)!.payload);
    expect([reg.int(), reg.optional(() => 0)]).toEqual([EventId.BLOCK_THRESHOLD, null]);
    const w = new XdrWriter().int(124);
    writeDomain(w, DOM);
    w.string('vdb[1]', 100).optional('/img/data.qcow2', (x, s) => x.string(s, 100)).uhyper(5n << 30n).uhyper(4096n);
    daemon.conns[0]!.event(PROC.DOMAIN_EVENT_BLOCK_THRESHOLD, w.toBuffer());
    const ev = await until('event', () => got[0]);
    expect(ev).toEqual({ kind: 'block-threshold', callbackId: 124, domain: DOM, dev: 'vdb[1]', path: '/img/data.qcow2', threshold: 5n << 30n, excess: 4096n });
  });
});
