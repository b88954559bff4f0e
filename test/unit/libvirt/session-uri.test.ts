// LibvirtSession (reconnect, event registration per connection, fan-out by domain) against the
// scripted daemon, and the URI → socket mapping.
import { afterEach, describe, expect, it } from 'vitest';
import {
  EventId, LibvirtSession, LibvirtStateError, LibvirtUriError, PROC, resolveUri, XdrReader, XdrWriter, writeDomain,
  type DomainEvent,
} from '../../../src/libvirt/index.js';
import { until } from '../../harness/wait.js';
import { FakeDaemon } from './fake-daemon.js';

let daemon: FakeDaemon | undefined;
let session: LibvirtSession | undefined;
afterEach(async () => {
  await session?.stop();
  await daemon?.stop();
  session = daemon = undefined;
});

const lifecycle = (name: string, event: number) => {
  const w = new XdrWriter().int(100);
  writeDomain(w, { name, uuid: '00000000-0000-0000-0000-0000000000' + String(name.length).padStart(2, '0'), id: 1 });
  return w.int(event).int(0).toBuffer();
};

describe('LibvirtSession', () => {
  it('registers its events on every connection, reconnects after the daemon drops it, and fans events out by domain', async () => {
    daemon = await new FakeDaemon().start();
    session = new LibvirtSession({ socketPath: daemon.path, events: ['LIFECYCLE', 'BLOCK_THRESHOLD'], initialDelayMs: 10, maxDelayMs: 50 });
    const web1: DomainEvent[] = [];
    const all: DomainEvent[] = [];
    session.subscribe('web1', (e) => web1.push(e));
    session.subscribe(null, (e) => all.push(e));
    const connects: number[] = [];
    session.onConnected(() => connects.push(session!.generation));
    await session.start();
    const registered = (i: number) => daemon!.conns[i]!.calls
      .filter((p) => p.header.procedure === PROC.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY)
      .map((p) => new XdrReader(p.payload).int());
    expect(registered(0)).toEqual([EventId.LIFECYCLE, EventId.BLOCK_THRESHOLD]);

    daemon.dropAll();
    await until('reconnected', () => session!.generation === 2 && session!.connected);
    expect(registered(1)).toEqual([EventId.LIFECYCLE, EventId.BLOCK_THRESHOLD]);
    expect(connects).toEqual([1, 2]);

    daemon.conns[1]!.event(PROC.DOMAIN_EVENT_CALLBACK_LIFECYCLE, lifecycle('web1', 2));
    daemon.conns[1]!.event(PROC.DOMAIN_EVENT_CALLBACK_LIFECYCLE, lifecycle('db', 5));
    await until('events', () => all.length === 2);
    expect(web1.map((e) => e.kind === 'lifecycle' && e.event)).toEqual(['STARTED']);
    expect(all.map((e) => e.domain.name)).toEqual(['web1', 'db']);
  });

  it('keeps retrying while the daemon is away and connects once it is back', async () => {
    daemon = new FakeDaemon();
    session = new LibvirtSession({ socketPath: daemon.path, initialDelayMs: 10, maxDelayMs: 40 });
    const first = session.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(session.connected).toBe(false);
    expect(session.lastError?.code).toBe('LIBVIRT_CONNECT');
    await daemon.start();
    const c = await first;
    expect(c.isOpen).toBe(true);
  });

  it('stop() rejects whoever waits for a connection', async () => {
    session = new LibvirtSession({ socketPath: '/nonexistent/livemr/sock', initialDelayMs: 10 });
    const waiting = expect(session.start()).rejects.toThrow(LibvirtStateError);
    await session.stop();
    await waiting;
    await expect(session.client()).rejects.toThrow(LibvirtStateError);
  });
});

describe('resolveUri', () => {
  const none = () => false;
  it('maps qemu:///system to the monolithic or the modular daemon\'s socket', () => {
    expect(resolveUri('qemu:///system', { exists: none })).toEqual({ socketPath: '/run/libvirt/libvirt-sock', name: 'qemu:///system' });
    expect(resolveUri('qemu:///system', { exists: (p) => p.endsWith('virtqemud-sock') }).socketPath).toBe('/run/libvirt/virtqemud-sock');
    expect(resolveUri('qemu+unix:///system?socket=/x/sock&mode=legacy', { exists: none })).toEqual({ socketPath: '/x/sock', name: 'qemu:///system?mode=legacy' });
  });
  it('refuses remote hosts, other transports and unknown paths', () => {
    expect(() => resolveUri('qemu+ssh://host/system')).toThrow(LibvirtUriError);
    expect(() => resolveUri('qemu+tls:///system')).toThrow(/transport 'tls'/);
    expect(() => resolveUri('qemu:///embed')).toThrow(/unknown path/);
    expect(() => resolveUri('not a uri')).toThrow(LibvirtUriError);
  });
});
