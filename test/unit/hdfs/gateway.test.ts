// The WebHDFS endpoint over HTTP (real server, real files): JSON fields, errors and status codes as
// WebHDFS.md gives them, paging, auth, ranges and live growth. Hadoop itself is exercised in
// test/integration/hdfs.test.ts.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/store.js';
import { blocksOf } from '../../../src/hdfs/blocks.js';
import { LocalNamespace } from '../../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../../src/hdfs/server.js';
import { storeSource } from '../../../src/hdfs/source.js';

let dir: string;
let store: CompositionStore;
let gw: Gateway;
let img: string;
let data: Buffer;
const BLOCK = 4096;

const get = (p: string, q = '', user = 'alice') =>
  fetch(`${gw.url}/webhdfs/v1${p}?${user ? `user.name=${user}&` : ''}${q}`, { redirect: 'manual' });
const remote = async (r: Response) => ((await r.json()) as { RemoteException: Record<string, string> }).RemoteException;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-unit-'));
  img = path.join(dir, 'img');
  data = Buffer.alloc(64 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
  fs.writeFileSync(img, data);
  store = CompositionStore.open(path.join(dir, 'state'));
  for (const n of ['a', 'b', 'c', 'd', 'e']) store.compose(n, [{ file: img, offset: 100, length: 1000 }]);
  store.compose('big', [
    { file: img, offset: 10_000, length: 5000 },
    { zero: true, length: 3000 },
    { file: img, offset: 0, length: 2000 },
  ]);
  const ns = new LocalNamespace(storeSource(store), { host: 'kvmhost', addr: '', url: '' });
  gw = await startGateway({ namespace: ns, blockSize: BLOCK, users: ['alice', 'bob'], listLimit: 2, owner: 'o', group: 'g' });
  ns.location = { host: 'kvmhost', addr: `127.0.0.1:${gw.port}`, url: gw.url };
});

afterAll(async () => {
  await gw?.close();
  store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const bigBytes = () => Buffer.concat([data.subarray(10_000, 15_000), Buffer.alloc(3000), data.subarray(0, 2000)]);

describe('metadata', () => {
  it('GETFILESTATUS of a file and of the root carries every FileStatus field', async () => {
    const f = (await (await get('/livemr_big', 'op=GETFILESTATUS')).json()) as { FileStatus: Record<string, unknown> };
    expect(f.FileStatus).toMatchObject({
      blockSize: BLOCK, group: 'g', length: 10_000, owner: 'o', pathSuffix: '', permission: '444', replication: 1, type: 'FILE', childrenNum: 0,
    });
    for (const k of ['accessTime', 'modificationTime', 'fileId', 'storagePolicy']) expect(typeof f.FileStatus[k]).toBe('number');
    const root = (await (await get('/', 'op=GETFILESTATUS')).json()) as { FileStatus: Record<string, unknown> };
    expect(root.FileStatus).toMatchObject({ type: 'DIRECTORY', permission: '555', childrenNum: 6, length: 0, fileId: 16385 });
  });

  it('LISTSTATUS lists the root in byte order; a file lists itself', async () => {
    const l = (await (await get('/', 'op=LISTSTATUS')).json()) as { FileStatuses: { FileStatus: { pathSuffix: string }[] } };
    expect(l.FileStatuses.FileStatus.map((s) => s.pathSuffix)).toEqual(['livemr_a', 'livemr_b', 'livemr_big', 'livemr_c', 'livemr_d', 'livemr_e']);
    const one = (await (await get('/livemr_a', 'op=LISTSTATUS')).json()) as { FileStatuses: { FileStatus: { pathSuffix: string; length: number }[] } };
    expect(one.FileStatuses.FileStatus).toMatchObject([{ pathSuffix: '', length: 1000 }]);
  });

  it('LISTSTATUS_BATCH pages with startAfter and remainingEntries', async () => {
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const r = (await (await get('/', `op=LISTSTATUS_BATCH&startAfter=${after}`)).json()) as {
        DirectoryListing: { partialListing: { FileStatuses: { FileStatus: { pathSuffix: string }[] } }; remainingEntries: number };
      };
      const names = r.DirectoryListing.partialListing.FileStatuses.FileStatus.map((s) => s.pathSuffix);
      expect(names.length).toBeLessThanOrEqual(2);
      seen.push(...names);
      if (r.DirectoryListing.remainingEntries === 0) break;
      expect(r.DirectoryListing.remainingEntries).toBe(6 - seen.length);
      after = names.at(-1)!;
    }
    expect(seen).toEqual(['livemr_a', 'livemr_b', 'livemr_big', 'livemr_c', 'livemr_d', 'livemr_e']);
  });

  it('GETCONTENTSUMMARY, GETQUOTAUSAGE, GETHOMEDIRECTORY, GETSERVERDEFAULTS, CHECKACCESS', async () => {
    const cs = (await (await get('/', 'op=GETCONTENTSUMMARY')).json()) as { ContentSummary: Record<string, number> };
    expect(cs.ContentSummary).toMatchObject({ directoryCount: 1, fileCount: 6, length: 15_000, spaceConsumed: 15_000, quota: -1, spaceQuota: -1 });
    const qu = (await (await get('/livemr_a', 'op=GETQUOTAUSAGE')).json()) as { QuotaUsage: Record<string, number> };
    expect(qu.QuotaUsage).toMatchObject({ fileAndDirectoryCount: 1, spaceConsumed: 1000 });
    expect(await (await get('/', 'op=GETHOMEDIRECTORY', 'bob')).json()).toEqual({ Path: '/user/bob' });
    const sd = (await (await get('/', 'op=GETSERVERDEFAULTS')).json()) as { FsServerDefaults: Record<string, unknown> };
    expect(sd.FsServerDefaults).toMatchObject({ blockSize: BLOCK, replication: 1, checksumType: 0, trashInterval: 0 });
    expect((await get('/livemr_a', 'op=CHECKACCESS&fsaction=r--')).status).toBe(200);
    expect((await get('/', 'op=CHECKACCESS&fsaction=r-x')).status).toBe(200);
    const w = await get('/livemr_a', 'op=CHECKACCESS&fsaction=rw-');
    expect(w.status).toBe(403);
    expect((await remote(w)).javaClassName).toBe('org.apache.hadoop.security.AccessControlException');
  });

  it('GETFILEBLOCKLOCATIONS: blocks overlapping the range, on the host that serves the file', async () => {
    const r = (await (await get('/livemr_big', `op=GETFILEBLOCKLOCATIONS&offset=5000&length=4000`)).json()) as {
      BlockLocations: { BlockLocation: Record<string, unknown>[] };
    };
    expect(r.BlockLocations.BlockLocation).toEqual([
      expect.objectContaining({ offset: 4096, length: 4096, hosts: ['kvmhost'], names: [`127.0.0.1:${gw.port}`], corrupt: false, cachedHosts: [], storageTypes: ['DISK'], topologyPaths: [`/default-rack/127.0.0.1:${gw.port}`] }),
      expect.objectContaining({ offset: 8192, length: 10_000 - 8192 }),
    ]);
  });
});

describe('OPEN', () => {
  it('reads the whole file, a range, and the tail; zero fill reads as zeros', async () => {
    const whole = await get('/livemr_big', 'op=OPEN');
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await whole.arrayBuffer()).equals(bigBytes())).toBe(true);
    const part = await get('/livemr_big', 'op=OPEN&offset=4990&length=3020&buffersize=4096');
    expect(part.headers.get('content-length')).toBe('3020');
    expect(Buffer.from(await part.arrayBuffer()).equals(bigBytes().subarray(4990, 8010))).toBe(true);
    const tail = await get('/livemr_big', 'op=OPEN&offset=9990&length=1000000');
    expect(Buffer.from(await tail.arrayBuffer()).equals(bigBytes().subarray(9990))).toBe(true);
    const end = await get('/livemr_big', 'op=OPEN&offset=10000');
    expect(end.headers.get('content-length')).toBe('0');
  });

  it('takes Long.MAX_VALUE as "to the end"', async () => {
    const r = await get('/livemr_big', 'op=OPEN&offset=9000&length=9223372036854775807');
    expect(Buffer.from(await r.arrayBuffer()).equals(bigBytes().subarray(9000))).toBe(true);
    const b = (await (await get('/livemr_big', 'op=GETFILEBLOCKLOCATIONS&offset=0&length=9223372036854775807')).json()) as {
      BlockLocations: { BlockLocation: unknown[] };
    };
    expect(b.BlockLocations.BlockLocation).toHaveLength(3);
    expect((await get('/livemr_big', 'op=OPEN&length=9223372036854775808')).status).toBe(400);
  });

  it('noredirect answers with the URL to read from', async () => {
    const r = await get('/livemr_a', 'op=OPEN&noredirect=true&offset=3');
    expect(await r.json()).toEqual({ Location: `${gw.url}/webhdfs/v1/livemr_a?user.name=alice&op=OPEN&offset=3` });
  });

  it('noredirect never builds the Location from the Host header the client sent', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gw.port, path: '/webhdfs/v1/livemr_a?user.name=alice&op=OPEN&noredirect=true', headers: { host: 'evil.example' } }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve(b));
      });
      req.on('error', reject).end();
    });
    expect(JSON.parse(body)).toEqual({ Location: `${gw.url}/webhdfs/v1/livemr_a?user.name=alice&op=OPEN` });
  });

  it('sees growth at once: length, bytes and block list follow appends', async () => {
    store.compose('grow', [{ file: img, offset: 0, length: 4000 }]);
    const blocks = async () =>
      ((await (await get('/livemr_grow', 'op=GETFILEBLOCKLOCATIONS')).json()) as { BlockLocations: { BlockLocation: unknown[] } }).BlockLocations
        .BlockLocation.length;
    expect(await blocks()).toBe(1);
    store.append('grow', [{ file: img, offset: 4000, length: 200 }]);
    expect(await blocks()).toBe(2);
    const r = await get('/livemr_grow', 'op=OPEN');
    expect(Buffer.from(await r.arrayBuffer()).equals(data.subarray(0, 4200))).toBe(true);
  });

  it('a source shorter than its segment cuts the response short instead of sending wrong bytes', async () => {
    const short = path.join(dir, 'short');
    fs.writeFileSync(short, Buffer.alloc(100, 1));
    store.compose('short', [{ file: short, offset: 0, length: 3 * 1024 * 1024 }]);
    await expect(get('/livemr_short', 'op=OPEN').then((r) => r.arrayBuffer())).rejects.toThrow();
    // the gateway is still up
    expect((await get('/livemr_a', 'op=GETFILESTATUS')).status).toBe(200);
    store.remove('short');
  });
});

describe('errors', () => {
  const cases: [string, string, string, number, string, RegExp][] = [
    ['missing file', '/livemr_zz', 'op=GETFILESTATUS', 404, 'java.io.FileNotFoundException', /File does not exist: \/livemr_zz/],
    ['below a file', '/livemr_a/x', 'op=GETFILESTATUS', 404, 'java.io.FileNotFoundException', /does not exist/],
    ['unknown op', '/', 'op=FROB', 400, 'java.lang.IllegalArgumentException', /Invalid value for webhdfs parameter "op"/],
    ['write op on GET', '/', 'op=CREATE', 400, 'java.lang.IllegalArgumentException', /GetOpParam\.Op\.CREATE/],
    ['no op', '/', '', 400, 'java.lang.IllegalArgumentException', /"op"/],
    ['bad offset', '/livemr_a', 'op=OPEN&offset=-1', 400, 'java.lang.IllegalArgumentException', /"offset"/],
    ['offset not a number', '/livemr_a', 'op=OPEN&offset=1e3', 400, 'java.lang.IllegalArgumentException', /"offset"/],
    ['offset past the end', '/livemr_a', 'op=OPEN&offset=1001', 403, 'java.io.IOException', /out of the range/],
    ['OPEN a directory', '/', 'op=OPEN', 404, 'java.io.FileNotFoundException', /not a file/],
    ['encoded slash', '/%2E%2E%2Fetc', 'op=GETFILESTATUS', 400, 'java.lang.IllegalArgumentException', /Invalid path/],
    ['checksum', '/livemr_a', 'op=GETFILECHECKSUM', 403, 'java.io.IOException', /-skipcrccheck/],
    ['user not allowed', '/', 'op=LISTSTATUS&user.name=mallory', 403, 'org.apache.hadoop.security.AccessControlException', /user=mallory/],
    ['proxy user', '/', 'op=LISTSTATUS&user.name=alice&doas=bob', 403, 'org.apache.hadoop.security.AccessControlException', /impersonate/],
    ['bad user name', '/', 'op=LISTSTATUS&user.name=a%20b', 400, 'java.lang.IllegalArgumentException', /user\.name/],
  ];
  for (const [what, p, q, status, cls, msg] of cases)
    it(`${what}: ${status} ${cls.split('.').pop()}`, async () => {
      const r = await fetch(`${gw.url}/webhdfs/v1${p}?${q.includes('user.name') ? '' : 'user.name=alice&'}${q}`);
      expect(r.status).toBe(status);
      const e = await remote(r);
      expect(e.javaClassName).toBe(cls);
      expect(e.exception).toBe(cls.split('.').pop());
      expect(e.message).toMatch(msg);
    });

  it('a dot-dot path segment: 400 IllegalArgumentException', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: gw.port, path: '/webhdfs/v1/a/../../etc?user.name=alice&op=GETFILESTATUS' }, resolve).on('error', reject),
    );
    res.resume();
    expect(res.statusCode).toBe(400);
  });

  it('no user.name: 401 with the reason in the status line', async () => {
    const r = await get('/', 'op=LISTSTATUS', '');
    expect(r.status).toBe(401);
    expect(r.statusText).toMatch(/user\.name/);
  });

  it('every write or namespace change is refused with AccessControlException, whatever the op', async () => {
    for (const [method, op] of [['PUT', 'CREATE'], ['PUT', 'MKDIRS'], ['PUT', 'RENAME'], ['POST', 'APPEND'], ['POST', 'TRUNCATE'], ['DELETE', 'DELETE'], ['PUT', 'SETPERMISSION']]) {
      const r = await fetch(`${gw.url}/webhdfs/v1/livemr_a?user.name=alice&op=${op}`, { method, body: method === 'DELETE' ? undefined : 'x' });
      expect(r.status).toBe(403);
      const e = await remote(r);
      expect(e.javaClassName).toBe('org.apache.hadoop.security.AccessControlException');
      expect(e.message).toContain(`${op} is refused on /livemr_a`);
    }
    expect(fs.readFileSync(img).equals(data)).toBe(true);
  });
});

describe('blocksOf', () => {
  it('covers exactly the requested range, last block short', () => {
    expect(blocksOf(0, 10)).toEqual([]);
    expect(blocksOf(25, 10)).toEqual([{ offset: 0, length: 10 }, { offset: 10, length: 10 }, { offset: 20, length: 5 }]);
    expect(blocksOf(25, 10, 10, 1)).toEqual([{ offset: 10, length: 10 }]);
    expect(blocksOf(25, 10, 9, 2)).toEqual([{ offset: 0, length: 10 }, { offset: 10, length: 10 }]);
    expect(blocksOf(25, 10, 25)).toEqual([]);
    expect(blocksOf(25, 10, 3, 0)).toEqual([]);
    expect(() => blocksOf(25, 0)).toThrow(RangeError);
  });
});
