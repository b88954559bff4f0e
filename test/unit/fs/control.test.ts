import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlClient, serveControl, socketPath } from '../../../src/fs/control.js';
import { FsError } from '../../../src/fs/errors.js';
import { CompositionStore } from '../../../src/fs/store.js';

let dir: string;
let store: CompositionStore;
let server: net.Server;
let shutdowns = 0;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-control-'));
  store = CompositionStore.open(dir);
  shutdowns = 0;
  server = await serveControl(store, socketPath(dir), () => shutdowns++);
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('control socket', () => {
  it('serves compose / append / truncate / ls / segments / decompose', async () => {
    const c = (await ControlClient.connect(dir))!;
    try {
      expect(await c.request({ op: 'ping' })).toBe('pong');
      const info = await c.compose('x', [{ file: '/img', offset: 4, length: 10 }]);
      expect(info).toMatchObject({ fileName: 'livemr_x', size: 10, segments: 1 });
      await c.append('x', [{ file: '/img', offset: 14, length: 6 }, { zero: true, length: 5 }]);
      await c.truncate('x', 18);
      expect(await c.segments('x')).toEqual([{ at: 0, file: '/img', offset: 4, length: 16 }, { at: 16, file: null, offset: 0, length: 2 }]);
      expect((await c.list()).map((f) => f.size)).toEqual([18]);
      expect(store.get('x')!.segments.size).toBe(18); // the daemon's store is the one changed
      expect(await c.decompose('x')).toBe(true);
      expect(await c.decompose('x')).toBe(false);
    } finally {
      c.close();
    }
  });

  it('returns typed errors and keeps serving', async () => {
    const c = (await ControlClient.connect(dir))!;
    try {
      const err = await c.append('nope', [{ file: '/img', offset: 0, length: 1 }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FsError);
      expect((err as FsError).code).toBe('ENOFILE');
      const bad = await c.compose('x', [{ file: 'rel', offset: 0, length: 1 }]).catch((e: unknown) => e);
      expect((bad as FsError).code).toBe('EBADSEGMENT');
      const unknown = await c.request({ op: 'frobnicate' } as never).catch((e: unknown) => e);
      expect((unknown as FsError).code).toBe('EPROTO');
      expect(await c.request({ op: 'ping' })).toBe('pong');
    } finally {
      c.close();
    }
  });

  it('answers malformed lines with EPROTO', async () => {
    const sock = net.createConnection(socketPath(dir));
    const reply = await new Promise<string>((resolve) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf);
      });
      sock.write('{not json\n');
    });
    sock.destroy();
    expect(JSON.parse(reply)).toMatchObject({ ok: false, error: { code: 'EPROTO' } });
  });

  it('runs the shutdown callback after replying', async () => {
    const c = (await ControlClient.connect(dir))!;
    expect(await c.request({ op: 'shutdown' })).toBe(true);
    c.close();
    for (let i = 0; i < 50 && shutdowns === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(shutdowns).toBe(1);
  });

  it('connect() says "no daemon" when nothing listens', async () => {
    expect(await ControlClient.connect(path.join(dir, 'elsewhere'))).toBeUndefined();
  });
});
