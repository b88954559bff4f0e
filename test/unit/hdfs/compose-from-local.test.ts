// compose-from-local: config validation, and composing from the compositions the host agent
// publishes for shared guest files (a real store; the agent's naming from src/host/naming.ts).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/store.js';
import { composeFromLocal, parseComposeConfig, publishedFileResolver, readComposeConfig } from '../../../src/hdfs/compose-from-local.js';
import { compositionName } from '../../../src/host/naming.js';

let dir: string;
let store: CompositionStore;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-cfl-'));
  store = CompositionStore.open(path.join(dir, 'state'));
});
afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('parseComposeConfig', () => {
  it('accepts {vm: path} objects and lists of pairs, in order', () => {
    expect(parseComposeConfig({ name: 'big', files: { web1: '/a', web2: '/b' } })).toEqual({
      name: 'big', files: [{ vm: 'web1', path: '/a' }, { vm: 'web2', path: '/b' }],
    });
    expect(parseComposeConfig({ files: [{ web1: '/a' }, { web1: '/b' }] }, 'x').files).toEqual([{ vm: 'web1', path: '/a' }, { vm: 'web1', path: '/b' }]);
  });
  it.each([
    [[], /expected an object/],
    [{ files: { a: '/x' } }, /"name"/],
    [{ name: '../x', files: { a: '/x' } }, /bad name/],
    [{ name: 'x', files: {} }, /empty/],
    [{ name: 'x', files: 'a' }, /"files"/],
    [{ name: 'x', files: [{ a: '/x', b: '/y' }] }, /files\[0\]/],
    [{ name: 'x', files: { 'a b': '/x' } }, /bad VM name/],
    [{ name: 'x', files: { a: 'relative' } }, /absolute/],
  ])('rejects %j', (cfg, msg) => expect(() => parseComposeConfig(cfg)).toThrow(msg));
  it('reports unreadable and non-JSON files', () => {
    expect(() => readComposeConfig(path.join(dir, 'none.json'))).toThrow(/cannot read/);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{');
    expect(() => readComposeConfig(path.join(dir, 'bad.json'))).toThrow(/not JSON/);
  });
});

describe('composeFromLocal over published compositions', () => {
  it('concatenates the shared files segment by segment, zero fill included', async () => {
    const img = path.join(dir, 'img');
    fs.writeFileSync(img, Buffer.from('0123456789abcdefghij'));
    store.compose(compositionName('web1', '/var/log/app.log'), [{ file: img, offset: 2, length: 5 }, { zero: true, length: 3 }]);
    store.compose(compositionName('web2', '/var/log/app.log'), [{ file: img, offset: 10, length: 4 }]);
    const cfg = parseComposeConfig({ name: 'big', files: { web1: '/var/log/app.log', web2: '/var/log/app.log' } });
    const r = await composeFromLocal(cfg, publishedFileResolver((n) => store.segments(n)), store);
    expect(r).toEqual({ name: 'big', size: 12, files: 2 });
    expect(store.segments('big')).toEqual([
      { at: 0, file: img, offset: 2, length: 5 },
      { at: 5, file: null, offset: 0, length: 3 },
      { at: 8, file: img, offset: 10, length: 4 },
    ]);
  });
  it('names the guest file that is not shared, and creates nothing', async () => {
    const cfg = parseComposeConfig({ name: 'big', files: { web9: '/nope' } });
    await expect(composeFromLocal(cfg, publishedFileResolver((n) => store.segments(n)), store)).rejects.toThrow(/web9:\/nope: not shared by the host agent/);
    expect(store.list()).toEqual([]);
  });
});
