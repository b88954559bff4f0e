// Peer credentials of loopback TCP connections (src/hdfs/peer.ts), on real sockets: the uid the
// kernel's socket tables give for the client end of a connection this process opened is its own,
// over IPv4, IPv6 and IPv4-mapped IPv6.
import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { addressBytes, admitLocalUids, isLoopback, peerUid } from '../../../src/hdfs/peer.js';

const open: (net.Server | net.Socket)[] = [];
afterEach(() => {
  for (const o of open.splice(0)) {
    if (o instanceof net.Server) o.close();
    else o.destroy();
  }
});

/** The server's end of a connection from this process to `listen` (host), dialed at `dial`. */
async function accepted(listen: string, dial: string): Promise<net.Socket> {
  const srv = net.createServer();
  open.push(srv);
  const got = new Promise<net.Socket>((resolve) => srv.once('connection', resolve));
  await new Promise<void>((resolve) => srv.listen(0, listen, resolve));
  const c = net.connect((srv.address() as net.AddressInfo).port, dial);
  open.push(c);
  const s = await got;
  open.push(s);
  return s;
}

/** IPv6 loopback configured here (a host without it skips the IPv6 case) */
const hasV6 = Object.values(os.networkInterfaces()).flat().some((i) => i?.address === '::1');

describe('peer credentials on loopback', () => {
  it('parses the addresses Node prints', () => {
    expect(addressBytes('127.0.0.1')!.toString('hex')).toBe('00000000000000000000ffff7f000001');
    expect(addressBytes('::ffff:127.0.0.1')!.toString('hex')).toBe('00000000000000000000ffff7f000001');
    expect(addressBytes('::1')!.toString('hex')).toBe('00000000000000000000000000000001');
    expect(addressBytes('fe80::1:2%eth0')!.toString('hex')).toBe('fe800000000000000000000000010002');
    expect(addressBytes('nope')).toBeUndefined();
    expect([isLoopback('127.0.0.5'), isLoopback('::1'), isLoopback('::ffff:127.0.0.1'), isLoopback('10.0.0.1'), isLoopback(undefined)]).toEqual([true, true, true, false, false]);
  });

  it('finds this process\'s uid for its own connection (IPv4)', async () => {
    const s = await accepted('127.0.0.1', '127.0.0.1');
    expect(peerUid(s)).toBe(process.getuid!());
    expect(admitLocalUids(new Set([process.getuid!()]))(s)).toBeUndefined();
    expect(admitLocalUids(new Set([process.getuid!() + 4242]))(s)).toBe(`uid ${process.getuid!()} may not read through this gateway (it serves the panel's jobs)`);
  });

  it.skipIf(!hasV6)('over IPv6 and IPv4-mapped IPv6', async () => {
    expect(peerUid(await accepted('::1', '::1'))).toBe(process.getuid!());
    expect(peerUid(await accepted('::', '127.0.0.1'))).toBe(process.getuid!());
  });
});
