import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAddress, QmpClient } from '../../../src/qmp/protocol/client.js';
import { ConnectError, QmpError } from '../../../src/qmp/protocol/errors.js';
import { backoffDelay, connectWithBackoff } from '../../../src/qmp/protocol/reconnect.js';
import { startPeer, type Peer } from './support/peer.js';

let peer: Peer | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await peer?.close();
  peer = undefined;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpSock(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'qmp-rc-'));
  dirs.push(d);
  return path.join(d, 'qmp.sock');
}

describe('connecting', () => {
  it('a missing socket is a ConnectError with the errno code', async () => {
    const e = await QmpClient.connect(tmpSock()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConnectError);
    expect((e as ConnectError).errno).toBe('ENOENT');
    expect((e as ConnectError).code).toBe('QMP_CONNECT');
  });

  it('connectWithBackoff waits for a server that appears later', async () => {
    const sock = tmpSock();
    const retries: number[] = [];
    setTimeout(() => void startPeer({ path: sock }).then((p) => (peer = p)), 300);
    const client = await connectWithBackoff(sock, { initialDelayMs: 50, onRetry: (n) => retries.push(n) });
    expect(retries.length).toBeGreaterThan(0);
    expect(client.greeting.version.qemu.major).toBe(7);
    await client.close();
  });

  it('gives up after the attempts and can be aborted', async () => {
    const sock = tmpSock();
    await expect(connectWithBackoff(sock, { attempts: 3, initialDelayMs: 5 })).rejects.toBeInstanceOf(ConnectError);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 50);
    await expect(connectWithBackoff(sock, { attempts: Infinity, initialDelayMs: 20, signal: ac.signal })).rejects.toThrow('stop');
  });

  it('backoff grows geometrically to the cap, with jitter', () => {
    for (let i = 0; i < 20; i++) {
      expect(backoffDelay(1)).toBeGreaterThanOrEqual(80);
      expect(backoffDelay(1)).toBeLessThanOrEqual(120);
      expect(backoffDelay(4)).toBeGreaterThanOrEqual(640);
      expect(backoffDelay(30, { maxDelayMs: 1000 })).toBeLessThanOrEqual(1200);
    }
  });

  it('parses unix and TCP addresses', () => {
    expect(parseAddress('/run/q.sock')).toEqual({ path: '/run/q.sock' });
    expect(parseAddress('unix:rel.sock')).toEqual({ path: 'rel.sock' });
    expect(parseAddress('tcp:127.0.0.1:4444')).toEqual({ host: '127.0.0.1', port: 4444 });
    expect(parseAddress('localhost:4444')).toEqual({ host: 'localhost', port: 4444 });
    expect(parseAddress('[::1]:4444')).toEqual({ host: '::1', port: 4444 });
    expect(parseAddress('q.sock')).toEqual({ path: 'q.sock' });
    expect(() => parseAddress('host:99999')).toThrow(QmpError);
  });
});
