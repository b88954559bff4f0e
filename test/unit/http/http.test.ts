// The root error class, the code table and the shared HTTP layer, on a real node:http server.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheInputError, InfeasibleError } from '../../../src/cache/index.js';
import { UsageError } from '../../../src/cli/args.js';
import { ERROR_CODES, httpStatus, LiveMrError } from '../../../src/errors/index.js';
import { FsError } from '../../../src/fs/index.js';
import { WebHdfsError } from '../../../src/hdfs/index.js';
import { BigLogError, ConfigError } from '../../../src/host/index.js';
import { LayoutError } from '../../../src/host/layout.js';
import { badRequest, errorBody, HttpError, readJson, Router, sendError, sendJson } from '../../../src/http/index.js';
import { CorruptImageError, ImageRangeError, UnsupportedImageError } from '../../../src/image/index.js';
import { LibvirtUriError } from '../../../src/libvirt/index.js';
import { ConnectError, ExecuteError, LineTooLongError, QmpError } from '../../../src/qmp/index.js';

describe('error codes', () => {
  it('docs/errors.md has exactly the codes of the table, with the same statuses', () => {
    const md = readFileSync(join(import.meta.dirname, '../../../docs/errors.md'), 'utf8');
    const rows = [...md.matchAll(/^\| `([^`]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(rows).toEqual(Object.entries(ERROR_CODES).map(([c, e]) => [c, e.status]));
  });

  it('every area\'s error is a LiveMrError with its own code and keeps its class', () => {
    const cases: [LiveMrError, string, number][] = [
      [new FsError('EBADNAME', 'x'), 'EBADNAME', 400],
      [new FsError('ENOFILE', 'x'), 'ENOFILE', 404],
      [new BigLogError('HOST_UNKNOWN_VM', 'x'), 'HOST_UNKNOWN_VM', 404],
      [new BigLogError('BIGLOG_NAME_TAKEN', 'x'), 'BIGLOG_NAME_TAKEN', 409],
      [new LayoutError('x'), 'HOST_LAYOUT', 500],
      [new LayoutError('x', 'HOST_BAD_GUEST_PATH'), 'HOST_BAD_GUEST_PATH', 400],
      [new ConfigError('x'), 'HOST_CONFIG', 400],
      [new CacheInputError('x'), 'CACHE_INPUT', 400],
      [new InfeasibleError('x'), 'CACHE_INFEASIBLE', 400],
      [new UnsupportedImageError('x'), 'IMAGE_UNSUPPORTED', 500],
      [new CorruptImageError('x', 12), 'IMAGE_CORRUPT', 500],
      [new ImageRangeError('x'), 'IMAGE_RANGE', 400],
      [new ConnectError('/x', 'ENOENT'), 'QMP_CONNECT', 502],
      [new ExecuteError('c', 'GenericError', 'd'), 'QMP_EXECUTE', 502],
      [new LineTooLongError(10), 'QMP_PROTOCOL', 502],
      [new QmpError('x'), 'QMP_ERROR', 500],
      [new LibvirtUriError('x'), 'LIBVIRT_URI', 400],
      [new WebHdfsError('HDFS_NOT_FOUND', 'x'), 'HDFS_NOT_FOUND', 404],
      [new UsageError('x'), 'CLI_USAGE', 400],
      [new HttpError('too-large', 'x'), 'too-large', 413],
    ];
    for (const [e, code, status] of cases) {
      expect(e).toBeInstanceOf(LiveMrError);
      expect(e).toBeInstanceOf(Error);
      expect([e.name, e.code, httpStatus(e)]).toEqual([e.constructor.name, code, status]);
    }
    expect(new ConnectError('/x', 'ENOENT').errno).toBe('ENOENT');
    expect(new WebHdfsError('HDFS_IO', 'x').javaClassName).toBe('java.io.IOException');
    expect(httpStatus(new Error('bad name x'))).toBe(500); // message text never picks a status
    expect(errorBody(new TypeError('boom'))).toEqual({ error: { code: 'internal', message: 'boom' } });
  });
});

describe('Router and replies on a real server', () => {
  let server: Server;
  let base = '';
  const router = new Router('/api')
    .on('GET', '/items/:id', ({ res, params }) => sendJson(res, 200, { id: params.id }))
    .on('POST', '/items', async ({ req, res }) => sendJson(res, 201, await readJson(req, 100)))
    .on('GET', '/fail', () => { throw new BigLogError('BIGLOG_NAME_TAKEN', 'taken'); })
    .on('GET', '/untyped', () => { throw new Error('oops'); })
    .on('GET', '/late', ({ res }) => { res.writeHead(200, { 'content-length': 10 }); res.write('12345'); throw badRequest('too late'); });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      router.dispatch(req, res, url).catch((e: unknown) => sendError(res, e));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const get = async (p: string, init?: RequestInit) => {
    const r = await fetch(base + p, init);
    return { status: r.status, body: (await r.json()) as { error?: { code: string; message: string }; id?: string } };
  };

  it('routes on decoded segments: %2F stays inside its parameter', async () => {
    expect(await get('/api/items/a%2Fb')).toEqual({ status: 200, body: { id: 'a/b' } });
  });

  it('404 for no path, 405 for another method, 400 for bad encoding', async () => {
    expect((await get('/api/nope')).body.error?.code).toBe('not-found');
    expect((await get('/api/items/1/x')).status).toBe(404);
    const m = await get('/api/items/1', { method: 'DELETE' });
    expect([m.status, m.body.error?.code]).toEqual([405, 'method-not-allowed']);
    const b = await get('/api/items/%E0%A4%A');
    expect([b.status, b.body.error?.message]).toEqual([400, expect.stringMatching(/percent-encoding/)]);
  });

  it('answers an error with its code\'s status, an untyped one with 500 internal', async () => {
    expect(await get('/api/fail')).toEqual({ status: 409, body: { error: { code: 'BIGLOG_NAME_TAKEN', message: 'taken' } } });
    expect(await get('/api/untyped')).toEqual({ status: 500, body: { error: { code: 'internal', message: 'oops' } } });
  });

  it('JSON bodies: 415 without the type, 400 for bad JSON, 413 above the limit', async () => {
    const post = (body: string, type = 'application/json') => get('/api/items', { method: 'POST', body, headers: { 'content-type': type } });
    expect(await post('{"a":1}')).toEqual({ status: 201, body: { a: 1 } });
    expect((await post('{"a":1}', 'text/plain')).status).toBe(415);
    expect((await post('{"a":')).body.error?.code).toBe('bad-request');
    expect((await post(JSON.stringify({ a: 'x'.repeat(200) }))).status).toBe(413);
  });

  it('an error after the headers cuts the connection: a short body, never an error body appended', async () => {
    const r = await fetch(`${base}/api/late`);
    expect(r.status).toBe(200);
    await expect(r.text()).rejects.toThrow();
  });
});
