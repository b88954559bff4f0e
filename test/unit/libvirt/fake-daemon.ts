// A scripted libvirt daemon on a unix socket for the client's unit tests: real sockets and real
// framing, with a handler per test deciding how to answer each call.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodePacket, KEEPALIVE_PROGRAM, MessageStatus, MessageType, PacketSplitter, PROC, REMOTE_PROGRAM,
  writeRemoteError, XdrReader, XdrWriter, type Packet,
} from '../../../src/libvirt/index.js';

export class FakeConn {
  readonly calls: Packet[] = [];
  constructor(readonly socket: net.Socket) {}

  reply(p: Packet, payload: Buffer = Buffer.alloc(0)): void {
    this.socket.write(encodePacket({ ...p.header, type: MessageType.REPLY, status: MessageStatus.OK }, payload));
  }

  error(p: Packet, code: number, message: string): void {
    const w = new XdrWriter();
    writeRemoteError(w, { code, domain: 10, message, level: 2, dom: null, str1: message, str2: null, str3: null, int1: -1, int2: -1 });
    this.socket.write(encodePacket({ ...p.header, type: MessageType.REPLY, status: MessageStatus.ERROR }, w.toBuffer()));
  }

  event(procedure: number, payload: Buffer): void {
    this.socket.write(encodePacket({ program: REMOTE_PROGRAM, version: 1, procedure, type: MessageType.MESSAGE, serial: 0, status: 0 }, payload));
  }

  keepalive(procedure: 1 | 2): void {
    this.socket.write(encodePacket({ program: KEEPALIVE_PROGRAM, version: 1, procedure, type: MessageType.MESSAGE, serial: 0, status: 0 }));
  }
}

export type Handler = (conn: FakeConn, p: Packet) => boolean | void;

/** Answers the open sequence (AUTH_LIST → [none], keepalive feature → 1, OPEN, event registration, CLOSE). */
export function defaultAnswer(conn: FakeConn, p: Packet): boolean {
  const h = p.header;
  if (h.program !== REMOTE_PROGRAM) return false;
  switch (h.procedure) {
    case PROC.AUTH_LIST: conn.reply(p, new XdrWriter().uint(1).int(0).toBuffer()); return true;
    case PROC.CONNECT_SUPPORTS_FEATURE: conn.reply(p, new XdrWriter().int(1).toBuffer()); return true;
    case PROC.CONNECT_OPEN: conn.reply(p); return true;
    case PROC.CONNECT_CLOSE: conn.reply(p); return true;
    case PROC.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: {
      const ev = new XdrReader(p.payload).int();
      conn.reply(p, new XdrWriter().int(100 + ev).toBuffer());
      return true;
    }
    default: return false;
  }
}

export class FakeDaemon {
  readonly dir = mkdtempSync(join(tmpdir(), 'livemr-fakelv-'));
  readonly path = join(this.dir, 'libvirt-sock');
  readonly conns: FakeConn[] = [];
  private server!: net.Server;

  constructor(public handler: Handler = () => false) {}

  async start(): Promise<this> {
    this.server = net.createServer((s) => {
      const conn = new FakeConn(s);
      this.conns.push(conn);
      const split = new PacketSplitter();
      s.on('error', () => {});
      s.on('data', (b) => {
        for (const p of split.push(b)) {
          conn.calls.push(p);
          if (!this.handler(conn, p)) defaultAnswer(conn, p);
        }
      });
    });
    await new Promise<void>((r) => this.server.listen(this.path, r));
    return this;
  }

  /** Ends every open connection, as a stopping libvirtd does. */
  dropAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
