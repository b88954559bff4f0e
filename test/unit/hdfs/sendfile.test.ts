// OPEN's zero-copy path (sendfile(2) through the native addon) against the JS-buffer path, over real
// HTTP: byte-exact bodies across segments, holes and the 16 MiB call size, a client that stops
// reading for a while (EAGAIN/poll in the addon), a client that disconnects mid-body, more readers
// than zero-copy slots, keep-alive reuse, and a source shorter than its segment.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/store.js';
import { LocalNamespace } from '../../../src/hdfs/namespace.js';
import { MAX_ZERO_COPY, sendStats, zeroCopyAddon } from '../../../src/hdfs/sendfile.js';
import { startGateway, type Gateway } from '../../../src/hdfs/server.js';
import { storeSource } from '../../../src/hdfs/source.js';
import { Rng } from '../../../src/cache/rng.js';
import { until } from '../../harness/wait.js';

const MiB = 1 << 20;
let dir: string;
let store: CompositionStore;
let zc: Gateway;
let js: Gateway;
let img: string;
let expected: Buffer;
let data: Buffer;
const data12 = () => data.subarray(0, 12 * MiB);

/** GET the body with node:http (its own agent per call unless given), optionally pausing mid-body. */
function read(gw: Gateway, name: string, q = '', opts: { pauseAfter?: number; pauseMs?: number; abortAfter?: number; agent?: http.Agent } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${gw.url}/webhdfs/v1/${name}?op=OPEN&user.name=t${q}`, { agent: opts.agent ?? false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      const parts: Buffer[] = [];
      let got = 0;
      let paused = false;
      res.on('data', (b: Buffer) => {
        parts.push(b);
        got += b.length;
        if (opts.abortAfter !== undefined && got >= opts.abortAfter) {
          req.destroy();
          resolve(Buffer.concat(parts));
        }
        if (opts.pauseAfter !== undefined && !paused && got >= opts.pauseAfter) {
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), opts.pauseMs ?? 500);
        }
      });
      res.on('end', () => {
        const body = Buffer.concat(parts);
        const want = Number(res.headers['content-length']);
        if (body.length !== want) reject(new Error(`short body ${body.length} of ${want}`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-sendfile-'));
  img = path.join(dir, 'img');
  const rng = new Rng(7);
  data = Buffer.alloc(40 * MiB);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(rng.int(2 ** 32), i);
  fs.writeFileSync(img, data);
  store = CompositionStore.open(path.join(dir, 'state'));
  // out of order, a 3 MiB hole (more than the 1 MiB zero file), one segment over the 16 MiB call size
  const segs = [
    { file: img, offset: 20 * MiB + 5, length: 18 * MiB },
    { zero: true as const, length: 3 * MiB + 17 },
    { file: img, offset: 1, length: 4 * MiB - 3 },
    { file: img, offset: 9 * MiB, length: 7 },
  ];
  store.compose('f', segs);
  // segments on several source files: each first use opens its file (an await between sendfiles)
  const multi = [];
  for (let i = 0; i < 6; i++) {
    const f = path.join(dir, `img${i}`);
    fs.writeFileSync(f, data.subarray(i * 2 * MiB, (i + 1) * 2 * MiB));
    multi.push({ file: f, offset: 0, length: 2 * MiB });
  }
  store.compose('multi', multi);
  store.compose('short', [{ file: path.join(dir, 'shortimg'), offset: 0, length: 2 * MiB }]);
  expected = Buffer.concat([data.subarray(20 * MiB + 5, 38 * MiB + 5), Buffer.alloc(3 * MiB + 17), data.subarray(1, 4 * MiB - 2), data.subarray(9 * MiB, 9 * MiB + 7)]);
  const ns = new LocalNamespace(storeSource(store), { host: 'h', addr: '', url: '' });
  zc = await startGateway({ namespace: ns });
  js = await startGateway({ namespace: ns, zeroCopy: false });
});

afterAll(async () => {
  await zc?.close();
  await js?.close();
  store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('zero-copy OPEN', () => {
  it('the addon has the sendfile binding (built by scripts/build-native-fuse.sh)', () => {
    expect(zeroCopyAddon()).toBeDefined();
  });

  it('whole file and ranges are byte-exact, by sendfile and by JS buffers alike', async () => {
    const before = { ...sendStats };
    expect((await read(zc, 'livemr_f')).equals(expected)).toBe(true);
    expect(sendStats.zeroCopy).toBe(before.zeroCopy + 1);
    // the gateway counts once the last sendfile call has returned, which may be after the client's end
    await until('the zero-copy response to finish', () => sendStats.inFlight === 0, 10_000, 10);
    expect(sendStats.zeroCopyBytes - before.zeroCopyBytes).toBe(expected.length);
    for (const [off, len] of [[0, 1], [18 * MiB - 10, 3 * MiB + 40], [21 * MiB + 16, 5], [expected.length - 3, 100], [5 * MiB, 20 * MiB]] as const) {
      const want = expected.subarray(off, off + len);
      expect((await read(zc, 'livemr_f', `&offset=${off}&length=${len}`)).equals(want)).toBe(true);
      expect((await read(js, 'livemr_f', `&offset=${off}&length=${len}`)).equals(want)).toBe(true);
    }
    expect(sendStats.buffered).toBeGreaterThanOrEqual(before.buffered + 5);
  });

  it('a reader that stops for a while gets every byte (the addon waits for room in the socket)', async () => {
    const body = await read(zc, 'livemr_f', '', { pauseAfter: 2 * MiB, pauseMs: 800 });
    expect(body.equals(expected)).toBe(true);
  });

  it('a reader that disconnects mid-body frees its slot; later reads still go zero-copy', async () => {
    for (let i = 0; i < MAX_ZERO_COPY + 1; i++) {
      const part = await read(zc, 'livemr_f', '', { abortAfter: MiB });
      expect(part.equals(expected.subarray(0, part.length))).toBe(true);
    }
    await until('the aborted responses to free their slots', () => sendStats.inFlight === 0, 10_000, 10);
    const before = sendStats.zeroCopy;
    expect((await read(zc, 'livemr_f')).equals(expected)).toBe(true);
    expect(sendStats.zeroCopy).toBe(before + 1);
  });

  it('a reader that closes mid-body, then a new connection: the new one gets its own bytes (no stale socket fd)', async () => {
    const multi = data12();
    for (let i = 0; i < 8; i++) {
      const part = await read(zc, 'livemr_multi', '', { abortAfter: 256 * 1024 + i * 4096 });
      expect(part.equals(multi.subarray(0, part.length))).toBe(true);
      const off = multi.length - 10 - i;
      const small = await read(zc, 'livemr_multi', `&offset=${off}&length=10`);
      expect(small.equals(multi.subarray(off, off + 10))).toBe(true);
    }
  });

  it('more readers than zero-copy slots: all byte-exact, the extra ones on the JS path', async () => {
    // the previous test aborts responses mid-body; their slots free asynchronously, and a slot still
    // held would send every reader here down the JS path
    await until('earlier aborted responses to free their slots', () => sendStats.inFlight === 0, 10_000, 10);
    const before = { ...sendStats };
    const bodies = await Promise.all(Array.from({ length: MAX_ZERO_COPY + 2 }, () => read(zc, 'livemr_f', '', { pauseAfter: MiB, pauseMs: 300 })));
    for (const b of bodies) expect(b.equals(expected)).toBe(true);
    expect(sendStats.zeroCopy - before.zeroCopy).toBeGreaterThanOrEqual(1);
    expect(sendStats.buffered - before.buffered).toBeGreaterThanOrEqual(2);
  });

  it('keep-alive: several OPENs on one connection stay in sync', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const [off, len] of [[0, 100], [3, 2 * MiB], [20 * MiB, 7], [0, expected.length]] as const)
        expect((await read(zc, 'livemr_f', `&offset=${off}&length=${len}`, { agent })).equals(expected.subarray(off, off + len))).toBe(true);
      const status = await fetch(`${zc.url}/webhdfs/v1/livemr_f?op=GETFILESTATUS&user.name=t`);
      expect(status.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it('a source shorter than its segment: a short read, never wrong bytes', async () => {
    fs.writeFileSync(path.join(dir, 'shortimg'), Buffer.alloc(MiB + 5, 0x61));
    await expect(read(zc, 'livemr_short')).rejects.toThrow();
    // the gateway is still serving
    expect((await read(zc, 'livemr_f', '&offset=0&length=10')).equals(expected.subarray(0, 10))).toBe(true);
  });
});
