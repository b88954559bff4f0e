// A removal or shrink applied while a WebHDFS OPEN is streaming: the real gateway must not send one
// byte of the removed range after it was applied — even though the source blocks still exist and now
// hold other data (the guest reused them). Both body paths: JS buffers (src/hdfs/reader.ts) and
// sendfile(2) (src/hdfs/sendfile.ts), where one native call would otherwise go on sending up to 16 MiB
// past the removal (issue 14 #2, docs/security.md).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../src/fs/store.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { CHUNK } from '../../src/hdfs/reader.js';
import { sendStats } from '../../src/hdfs/sendfile.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { until } from '../harness/wait.js';

const MiB = 1 << 20;
const SIZE = 64 * MiB; // far more than the socket buffers hold
let dir: string;
let store: CompositionStore;
const gateways: Gateway[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-revoke-'));
  store = CompositionStore.open(path.join(dir, 'state'));
});
afterAll(async () => {
  for (const g of gateways) await g.close();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Bytes the gateway has handed to the kernel on its connection(s) from `port`: acknowledged plus
 * queued (ss's bytes_acked + Send-Q). After a removal this must not grow.
 */
function handedToKernel(port: number): number {
  const out = execFileSync('ss', ['-tinH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  let total = 0;
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const cols = lines[i]!.trim().split(/\s+/);
    if (cols.length < 4 || !/^\d+$/.test(cols[1]!)) continue;
    const info = lines[i + 1] ?? '';
    // bytes_acked counts from the SYN: one more than the bytes written
    const acked = Number(/bytes_acked:(\d+)/.exec(info)?.[1] ?? 1) - 1;
    total += acked + Number(cols[1]);
  }
  return total;
}

/** Starts an OPEN and reads nothing until told: the gateway blocks on a full socket. */
function stalledOpen(gw: Gateway, name: string) {
  const chunks: Buffer[] = [];
  let res: http.IncomingMessage | undefined;
  const done = new Promise<{ bytes: Buffer; complete: boolean }>((resolve) => {
    const req = http.get(`${gw.url}/webhdfs/v1/${name}?op=OPEN&user.name=alice`, (r) => {
      res = r;
      r.pause();
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ bytes: Buffer.concat(chunks), complete: true }));
      r.on('error', () => resolve({ bytes: Buffer.concat(chunks), complete: false }));
      r.on('aborted', () => resolve({ bytes: Buffer.concat(chunks), complete: false }));
    });
    req.on('error', () => resolve({ bytes: Buffer.concat(chunks), complete: false }));
  });
  return { started: () => res !== undefined, resume: () => res!.resume(), done };
}

describe.each([
  ['buffers', false],
  ['sendfile', true],
])('an OPEN in flight (%s)', (label, zeroCopy) => {
  let gw: Gateway;
  let src: string;
  beforeAll(async () => {
    src = path.join(dir, `img-${label}`);
    fs.writeFileSync(src, Buffer.alloc(SIZE, 'g')); // the consented file's bytes
    const ns = new LocalNamespace(storeSource(store), { host: 'localhost', addr: '', url: '' });
    gw = await startGateway({ namespace: ns, zeroCopy });
    gateways.push(gw);
    ns.location = { host: 'localhost', addr: `127.0.0.1:${gw.port}`, url: gw.url };
  });

  it('stops at a removal: nothing after it, and never the blocks\' new contents', async () => {
    const name = `rm-${label}`;
    store.compose(name, [{ file: src, offset: 0, length: SIZE }]);
    const zc0 = sendStats.zeroCopy;
    const r = stalledOpen(gw, `livemr_${name}`);
    await until('the response to start', () => r.started(), 10_000);
    await new Promise((res) => setTimeout(res, 300)); // the gateway fills the socket and waits
    expect(sendStats.zeroCopy - zc0).toBe(zeroCopy ? 1 : 0); // this response went the way under test
    store.remove(name);
    const handed = handedToKernel(gw.port);
    // the guest gives the blocks to other data
    const fd = fs.openSync(src, 'r+');
    fs.writeSync(fd, Buffer.alloc(SIZE, 's'), 0, SIZE, 0);
    fs.closeSync(fd);
    r.resume();
    const { bytes, complete } = await r.done;
    expect(complete).toBe(false);
    expect(bytes.length).toBeLessThan(SIZE);
    // nothing went to the socket after the removal: the body is what was in the kernel then (and,
    // on the buffered path, at most the one chunk checked before it, copied into Node's buffer)
    expect(bytes.length).toBeLessThanOrEqual(handed + (zeroCopy ? 0 : CHUNK));
    if (!zeroCopy) expect(bytes.includes('s')).toBe(false);
    // sendfile's queued bytes refer to the page cache, so they would carry the blocks' new
    // contents: the connection is reset (its queue dropped), not drained. What a loopback client's
    // own receive queue already held is still read (docs/security.md, open).
    else expect(bytes.length).toBeLessThan(handed - 512 * 1024);
  });

  it('stops at a shrink: nothing of the removed range', async () => {
    const name = `tr-${label}`;
    fs.writeFileSync(src, Buffer.alloc(SIZE, 'g'));
    store.compose(name, [{ file: src, offset: 0, length: SIZE }]);
    const r = stalledOpen(gw, `livemr_${name}`);
    await until('the response to start', () => r.started(), 10_000);
    await new Promise((res) => setTimeout(res, 300));
    store.truncate(name, MiB);
    const handed = handedToKernel(gw.port);
    const fd = fs.openSync(src, 'r+');
    fs.writeSync(fd, Buffer.alloc(SIZE - MiB, 's'), 0, SIZE - MiB, MiB);
    fs.closeSync(fd);
    r.resume();
    const { bytes, complete } = await r.done;
    expect(complete).toBe(false);
    expect(bytes.includes('s')).toBe(false);
    // below the new size the response may go on; nothing past it after the shrink
    expect(bytes.length).toBeLessThanOrEqual(Math.max(handed + (zeroCopy ? 0 : CHUNK), MiB));
    store.remove(name);
  });
});
