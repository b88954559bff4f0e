// Peer credentials of a loopback TCP connection: the uid that owns the client's end, read from the
// kernel's socket tables (/proc/net/tcp and tcp6: each connection's two addresses and the uid that
// opened it). WebHDFS clients (Hadoop) cannot be made to send a token, but on loopback the kernel
// knows who they are — the panel's gateway admits only the accounts it serves (issue 14 #8).
import { readFileSync } from 'node:fs';
import { isIPv4, type Socket } from 'node:net';

/** 16 bytes of an address as Node prints it ('127.0.0.1', '::1', '::ffff:127.0.0.1'), IPv4 as IPv4-mapped. */
export function addressBytes(a: string): Buffer | undefined {
  const v4 = (s: string) => {
    if (!isIPv4(s)) return undefined;
    return Buffer.from(s.split('.').map(Number));
  };
  const mapped = (b: Buffer) => Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), b]);
  const four = v4(a);
  if (four) return mapped(four);
  const zone = a.indexOf('%');
  const s = zone >= 0 ? a.slice(0, zone) : a;
  let tail: Buffer | undefined;
  let head = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tail = v4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const words = (p: string) => (p === '' ? [] : p.split(':'));
  const left = words(halves[0]!);
  const right = halves.length === 2 ? words(halves[1]!) : [];
  const fill = 8 - left.length - right.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...left, ...Array<string>(fill).fill('0'), ...right];
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) {
    const w = all[i]!;
    if (!/^[0-9a-f]{1,4}$/i.test(w)) return undefined;
    out.writeUInt16BE(parseInt(w, 16), 2 * i);
  }
  if (tail) tail.copy(out, 12);
  return out;
}

/** An address of /proc/net/tcp{,6} ("0100007F:1F90": 32-bit words in host order, then the port) as bytes and port. */
function procAddress(field: string): { bytes: Buffer; port: number } | undefined {
  const [hex, port] = field.split(':');
  if (!hex || !port) return undefined;
  const raw = Buffer.from(hex, 'hex');
  if (raw.length !== 4 && raw.length !== 16) return undefined;
  const net = Buffer.alloc(raw.length);
  for (let i = 0; i < raw.length; i += 4) net.writeUInt32BE(raw.readUInt32LE(i), i); // little-endian hosts
  const bytes = raw.length === 4 ? Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), net]) : net;
  return { bytes, port: parseInt(port, 16) };
}

export function isLoopback(address: string | undefined): boolean {
  const b = address === undefined ? undefined : addressBytes(address);
  if (!b) return false;
  const mappedV4 = b.subarray(0, 12).equals(Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff])]));
  if (mappedV4) return b[12] === 127;
  return b.equals(Buffer.concat([Buffer.alloc(15), Buffer.from([1])]));
}

/**
 * The uid owning the other end of `sock` (a TCP connection on this host), or undefined when the
 * kernel's tables do not show it (not loopback, gone already).
 */
export function peerUid(sock: Socket, tables = ['/proc/net/tcp', '/proc/net/tcp6']): number | undefined {
  const local = sock.localAddress && addressBytes(sock.localAddress);
  const remote = sock.remoteAddress && addressBytes(sock.remoteAddress);
  if (!local || !remote || sock.localPort === undefined || sock.remotePort === undefined) return undefined;
  for (const t of tables) {
    let text: string;
    try {
      text = readFileSync(t, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 8) continue;
      // the client's socket: its local end is our remote one and the other way round
      const l = procAddress(f[1]!);
      const r = procAddress(f[2]!);
      if (!l || !r || l.port !== sock.remotePort || r.port !== sock.localPort) continue;
      if (!l.bytes.equals(remote) || !r.bytes.equals(local)) continue;
      const uid = Number(f[7]);
      if (Number.isInteger(uid)) return uid;
    }
  }
  return undefined;
}

/**
 * An `admit` check for the gateway: loopback peers whose uid is one of `uids`. Everyone else is
 * refused with the reason (the uid is named; nothing about the files).
 */
export function admitLocalUids(uids: ReadonlySet<number>): (sock: Socket) => string | undefined {
  return (sock) => {
    if (!isLoopback(sock.remoteAddress)) return `this gateway serves loopback clients of this host only, not ${sock.remoteAddress}`;
    const uid = peerUid(sock);
    if (uid === undefined) return 'the connection\'s local account cannot be determined';
    if (!uids.has(uid)) return `uid ${uid} may not read through this gateway (it serves the panel's jobs)`;
    return undefined;
  };
}
