// A scriptable QMP peer for robustness tests: it speaks just enough QMP to get a client connected,
// then misbehaves however a test tells it to. The main path is tested against real QEMU instead.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}\r\n';

export interface PeerConn {
  socket: net.Socket;
  /** next request the client sent (parsed) */
  nextRequest(): Promise<{ execute: string; id: unknown; arguments?: unknown }>;
  send(text: string): void;
}

export interface Peer {
  path: string;
  /** resolves with each accepted connection, after greeting + negotiation when `negotiate` */
  accept(): Promise<PeerConn>;
  close(): Promise<void>;
}

export async function startPeer(opts: { greeting?: string | null; negotiate?: boolean; path?: string } = {}): Promise<Peer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmp-peer-'));
  const sockPath = opts.path ?? path.join(dir, 'qmp.sock');
  const conns: PeerConn[] = [];
  const waiting: ((c: PeerConn) => void)[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const conn = wrap(socket);
    const greeting = opts.greeting === undefined ? GREETING : opts.greeting;
    if (greeting !== null) socket.write(greeting);
    void (async () => {
      if (opts.negotiate !== false && greeting !== null) {
        const req = await conn.nextRequest();
        conn.send(`{"return": {}, "id": ${JSON.stringify(req.id)}}\r\n`);
      }
      const w = waiting.shift();
      if (w) w(conn);
      else conns.push(conn);
    })().catch(() => {});
  });
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  return {
    path: sockPath,
    accept: () => new Promise((resolve) => {
      const c = conns.shift();
      if (c) resolve(c);
      else waiting.push(resolve);
    }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function wrap(socket: net.Socket): PeerConn {
  let buf = '';
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  socket.on('data', (d) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return {
    socket,
    nextRequest: async () => {
      const line = lines.shift() ?? (await new Promise<string>((resolve) => waiters.push(resolve)));
      return JSON.parse(line);
    },
    send: (text) => void socket.write(text),
  };
}
