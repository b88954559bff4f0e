// The client against a misbehaving socket peer: every pending command must reject with a typed error,
// the connection must end cleanly, and no timers, listeners or buffers may be left behind.

import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../../src/qmp/protocol/client.js';
import {
  CommandTimeoutError,
  DisconnectedError,
  ExecInterruptedError,
  ExecuteError,
  GreetingError,
  LineTooLongError,
  ServerParseError,
  StateError,
  UnexpectedMessageError,
} from '../../../src/qmp/protocol/errors.js';
import { startPeer, type Peer } from './support/peer.js';

let peer: Peer | undefined;
let client: QmpClient | undefined;
afterEach(async () => {
  await client?.close();
  await peer?.close();
  client = peer = undefined;
});

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

async function connected(opts: Parameters<typeof QmpClient.connect>[1] = {}) {
  peer = await startPeer();
  client = await QmpClient.connect(peer.path, opts);
  const conn = await peer.accept();
  return { client, conn };
}

/** Send three commands and wait until the peer has read all of them. */
async function threeInFlight(c: QmpClient, conn: Awaited<ReturnType<typeof connected>>['conn']) {
  const results = ['a', 'b', 'c'].map((cmd) => c.execute(cmd).then(() => null, (e: unknown) => e));
  for (let i = 0; i < 3; i++) await conn.nextRequest();
  expect(c.inFlight).toBe(3);
  return results;
}

async function expectAllInterrupted(results: Promise<unknown>[], cause: new (...a: never[]) => Error) {
  for (const e of await Promise.all(results)) {
    expect(e).toBeInstanceOf(ExecInterruptedError);
    expect((e as ExecInterruptedError).cause).toBeInstanceOf(cause);
  }
}

describe('QMP client with a misbehaving peer', () => {
  it('correlates replies sent out of order by id', async () => {
    const { client: c, conn } = await connected();
    const p1 = c.execute('first');
    const p2 = c.execute('second', { x: 1 });
    const r1 = await conn.nextRequest();
    const r2 = await conn.nextRequest();
    expect(r2).toMatchObject({ execute: 'second', arguments: { x: 1 } });
    conn.send(`{"return": 2, "id": ${JSON.stringify(r2.id)}}\r\n`);
    conn.send(`{"error": {"class": "GenericError", "desc": "nope"}, "id": ${JSON.stringify(r1.id)}}\r\n`);
    expect(await p2).toBe(2);
    const err = await p1.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecuteError);
    expect(err).toMatchObject({ command: 'first', errorClass: 'GenericError', desc: 'nope' });
  });

  it('garbage: pending commands reject with ServerParseError as cause', async () => {
    const before = timers();
    const { client: c, conn } = await connected();
    const results = await threeInFlight(c, conn);
    conn.send('this is not json\r\n');
    await expectAllInterrupted(results, ServerParseError);
    expect(await c.closed).toBeInstanceOf(ServerParseError);
    expect(c.state).toBe('closed');
    expect(c.inFlight).toBe(0);
    expect(timers()).toBeLessThanOrEqual(before);
  });

  it('truncated JSON then close: pending commands reject with DisconnectedError as cause', async () => {
    const { client: c, conn } = await connected();
    const results = await threeInFlight(c, conn);
    conn.socket.end('{"return": {}, "id": "liv');
    await expectAllInterrupted(results, DisconnectedError);
    expect(await c.closed).toBeInstanceOf(DisconnectedError);
  });

  it('truncated JSON on a complete line is a parse error', async () => {
    const { client: c, conn } = await connected();
    const results = await threeInFlight(c, conn);
    conn.send('{"return": {}, "id": \r\n');
    await expectAllInterrupted(results, ServerParseError);
  });

  it('a 100 MiB line: bounded buffer, LineTooLongError, no crash', async () => {
    const { client: c, conn } = await connected({ maxLineBytes: 1 << 20 });
    const results = await threeInFlight(c, conn);
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const chunk = Buffer.alloc(1 << 20, 0x61);
    let sent = 0;
    // Write with backpressure until the client hangs up; it must do so long before 100 MiB.
    while (sent < 100 << 20 && !conn.socket.destroyed && !conn.socket.writableEnded) {
      const ok = conn.socket.write(chunk);
      sent += chunk.length;
      if (!ok) {
        await new Promise<void>((r) => {
          conn.socket.once('drain', r);
          conn.socket.once('close', r);
        });
      }
    }
    await expectAllInterrupted(results, LineTooLongError);
    expect(await c.closed).toBeInstanceOf(LineTooLongError);
    expect(sent).toBeLessThan(100 << 20);
    const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    expect(heapAfter - heapBefore).toBeLessThan(64 << 20);
  });

  it('close mid-command: the command rejects, later commands fail with StateError', async () => {
    const { client: c, conn } = await connected();
    const p = c.execute('slow').catch((e: unknown) => e);
    await conn.nextRequest();
    conn.socket.destroy();
    const e = await p;
    expect(e).toBeInstanceOf(ExecInterruptedError);
    expect((e as ExecInterruptedError).cause).toBeInstanceOf(DisconnectedError);
    await expect(c.execute('after')).rejects.toBeInstanceOf(StateError);
  });

  it('a reply with an unknown id ends the connection', async () => {
    const { client: c, conn } = await connected();
    const results = await threeInFlight(c, conn);
    conn.send('{"return": {}, "id": "someone-else"}\r\n');
    await expectAllInterrupted(results, UnexpectedMessageError);
  });

  it('a malformed error reply ends the connection', async () => {
    const { client: c, conn } = await connected();
    const p = c.execute('x').catch((e: unknown) => e);
    const r = await conn.nextRequest();
    conn.send(`{"error": "flat string", "id": ${JSON.stringify(r.id)}}\r\n`);
    expect(await p).toBeInstanceOf(UnexpectedMessageError);
    expect(await c.closed).toBeInstanceOf(UnexpectedMessageError);
  });

  it('per-command timeout; a late reply is dropped and the connection stays usable', async () => {
    const { client: c, conn } = await connected();
    const slow = c.execute('slow', undefined, { timeoutMs: 50 }).catch((e: unknown) => e);
    const r1 = await conn.nextRequest();
    const e = await slow;
    expect(e).toBeInstanceOf(CommandTimeoutError);
    expect(e).toMatchObject({ command: 'slow', timeoutMs: 50 });
    conn.send(`{"return": "late", "id": ${JSON.stringify(r1.id)}}\r\n`);
    const fast = c.execute('fast');
    const r2 = await conn.nextRequest();
    conn.send(`{"return": "ok", "id": ${JSON.stringify(r2.id)}}\r\n`);
    expect(await fast).toBe('ok');
    expect(c.state).toBe('open');
  });

  it('orderly close rejects pending commands and leaves no timers', async () => {
    const before = timers();
    const { client: c, conn } = await connected();
    const results = await threeInFlight(c, conn);
    await c.close();
    await expectAllInterrupted(results, DisconnectedError);
    expect(await c.closed).toBeNull();
    expect(timers()).toBeLessThanOrEqual(before);
  });
});

describe('connecting to a misbehaving peer', () => {
  it('something that is not a greeting', async () => {
    peer = await startPeer({ greeting: '{"hello": 1}\r\n' });
    await expect(QmpClient.connect(peer.path)).rejects.toBeInstanceOf(GreetingError);
  });

  it('garbage instead of a greeting', async () => {
    peer = await startPeer({ greeting: 'SSH-2.0-OpenSSH\r\n' });
    await expect(QmpClient.connect(peer.path)).rejects.toBeInstanceOf(ServerParseError);
  });

  it('silence: GreetingError after the connect timeout', async () => {
    peer = await startPeer({ greeting: null });
    const t0 = Date.now();
    await expect(QmpClient.connect(peer.path, { connectTimeoutMs: 200 })).rejects.toBeInstanceOf(GreetingError);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('negotiation refused: NegotiationError carries class and desc', async () => {
    peer = await startPeer({ negotiate: false });
    const p = QmpClient.connect(peer.path).catch((e: unknown) => e);
    const conn = await peer.accept();
    const req = await conn.nextRequest();
    expect(req.execute).toBe('qmp_capabilities');
    conn.send(`{"error": {"class": "CommandNotFound", "desc": "no"}, "id": ${JSON.stringify(req.id)}}\r\n`);
    expect(await p).toMatchObject({ name: 'NegotiationError', errorClass: 'CommandNotFound', desc: 'no' });
  });
});
