import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../../src/qmp/protocol/client.js';
import { DisconnectedError, EventOverflowError, EventTimeoutError, UnexpectedMessageError } from '../../../src/qmp/protocol/errors.js';
import { EventListener, type QmpEvent } from '../../../src/qmp/protocol/events.js';
import { startPeer, type Peer } from './support/peer.js';

const ev = (name: string, data: object = {}) =>
  `{"event": "${name}", "data": ${JSON.stringify(data)}, "timestamp": {"seconds": 1700000000, "microseconds": 500}}\r\n`;

let peer: Peer | undefined;
let client: QmpClient | undefined;
afterEach(async () => {
  await client?.close();
  await peer?.close();
  client = peer = undefined;
});

describe('events', () => {
  it('delivers to filtered listeners and handlers, with timestamps', async () => {
    peer = await startPeer();
    client = await QmpClient.connect(peer.path);
    const conn = await peer.accept();
    const stops = client.listen({ names: ['STOP'] });
    const all = client.listen();
    const seen: string[] = [];
    const off = client.onEvent((e) => seen.push(e.event), ['RESUME']);
    client.onEvent(() => {
      throw new Error('a faulty handler');
    });
    conn.send(ev('RESUME') + ev('STOP', { x: 1 }) + ev('RESUME'));
    const first = await stops.get();
    expect(first).toEqual({ event: 'STOP', data: { x: 1 }, timestampMs: 1700000000000.5 });
    const names: string[] = [];
    for await (const e of all) {
      names.push(e.event);
      if (names.length === 3) break; // break closes the listener
    }
    expect(names).toEqual(['RESUME', 'STOP', 'RESUME']);
    expect(seen).toEqual(['RESUME', 'RESUME']);
    off();
    conn.send(ev('RESUME'));
    // The reply comes after the event on the same stream, so once it resolves the event was dispatched.
    const ping = client.execute('ping');
    const req = await conn.nextRequest();
    conn.send(`{"return": {}, "id": ${JSON.stringify(req.id)}}\r\n`);
    await ping;
    expect(seen).toEqual(['RESUME', 'RESUME']);
  });

  it('queued events are delivered, then the iterator throws the disconnect reason', async () => {
    peer = await startPeer();
    client = await QmpClient.connect(peer.path);
    const conn = await peer.accept();
    const l = client.listen({ names: ['SHUTDOWN'] });
    conn.socket.end(ev('SHUTDOWN', { guest: true, reason: 'guest-shutdown' }));
    await client.closed;
    const got: QmpEvent[] = [];
    await expect(
      (async () => {
        for await (const e of l) got.push(e);
      })(),
    ).rejects.toBeInstanceOf(DisconnectedError);
    expect(got.map((e) => e.data.reason)).toEqual(['guest-shutdown']);
  });

  it('an event without a name is a protocol error', async () => {
    peer = await startPeer();
    client = await QmpClient.connect(peer.path);
    const conn = await peer.accept();
    conn.send('{"event": 5}\r\n');
    expect(await client.closed).toBeInstanceOf(UnexpectedMessageError);
  });
});

describe('EventListener', () => {
  const e = (name: string, n = 0): QmpEvent => ({ event: name, data: { n }, timestampMs: 0 });

  it('a slow consumer overflows into EventOverflowError instead of growing without bound', async () => {
    const l = new EventListener({ maxQueue: 3 });
    for (let i = 0; i < 5; i++) l.deliver(e('X', i));
    await expect(l.get()).rejects.toBeInstanceOf(EventOverflowError);
  });

  it('waitFor skips non-matching events and a timed-out wait loses no event', async () => {
    const l = new EventListener({ names: ['A'] });
    await expect(l.waitFor(() => true, 20, 'A')).rejects.toBeInstanceOf(EventTimeoutError);
    l.deliver(e('B'));
    l.deliver(e('A', 1));
    l.deliver(e('A', 2));
    expect((await l.waitFor((x) => x.data.n === 2, 100)).data.n).toBe(2);
    setTimeout(() => l.deliver(e('A', 3)), 10);
    expect((await l.get()).data.n).toBe(3);
  });

  it('close() ends iteration quietly', async () => {
    const l = new EventListener();
    setTimeout(() => l.close(), 10);
    const got: QmpEvent[] = [];
    for await (const x of l) got.push(x);
    expect(got).toEqual([]);
  });
});
