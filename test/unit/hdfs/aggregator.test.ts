// Agent → aggregator reports over real HTTP: full and incremental reports, resync after an
// aggregator restart, validation of untrusted reports, name conflicts, bye.

import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompositionStore } from '../../../src/fs/store.js';
import { AgentReporter } from '../../../src/hdfs/agent.js';
import { Aggregator } from '../../../src/hdfs/aggregator.js';
import { LocalNamespace } from '../../../src/hdfs/namespace.js';
import { parseReport, REPORT_PATH, type Report } from '../../../src/hdfs/report.js';
import { startGateway, type Gateway } from '../../../src/hdfs/server.js';
import { storeSource } from '../../../src/hdfs/source.js';

let dir: string;
let img: string;
const cleanup: (() => unknown)[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-agg-'));
  img = path.join(dir, 'img');
  fs.writeFileSync(img, Buffer.alloc(1 << 16, 3));
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function aggregatorAt(port = 0, token?: string): Promise<{ agg: Aggregator; gw: Gateway }> {
  const agg = new Aggregator(token === undefined ? {} : { token });
  const gw = await startGateway({ namespace: agg, port, extraRoute: agg.route, blockSize: 1000 });
  cleanup.push(() => gw.close());
  return { agg, gw };
}

function agentOf(name: string, aggUrl: string, token?: string) {
  const store = CompositionStore.open(path.join(dir, name));
  cleanup.push(() => store.close());
  const source = storeSource(store);
  const ns = new LocalNamespace(source, { host: name, addr: `127.0.0.1:1`, url: `http://127.0.0.1:1` });
  const rep = new AgentReporter(source, ns, { aggregator: aggUrl, agent: name, url: 'http://127.0.0.1:1', host: name, ...(token ? { token } : {}) });
  cleanup.push(() => rep.stop());
  return { store, rep };
}

const report = (r: Partial<Report>): Report => ({
  agent: 'a', url: 'http://h:1', host: 'h', epoch: 'e1', seq: 0, full: true, files: [], removed: [], ...r,
});

describe('Aggregator.apply', () => {
  it('needs a full report first, then consecutive incremental ones', () => {
    const agg = new Aggregator();
    expect(agg.apply(report({ full: false, seq: 1 }))).toBe(false);
    expect(agg.apply(report({ files: [{ name: 'livemr_x', length: 5, mtimeMs: 1 }] }))).toBe(true);
    expect(agg.apply(report({ full: false, seq: 2, files: [{ name: 'livemr_x', length: 9, mtimeMs: 2 }] }))).toBe(false); // gap
    expect(agg.apply(report({ full: false, seq: 1, epoch: 'e2' }))).toBe(false); // agent restarted
    expect(agg.apply(report({ full: false, seq: 1, files: [{ name: 'livemr_x', length: 9, mtimeMs: 2 }] }))).toBe(true);
    expect(agg.get('livemr_x')).toMatchObject({ length: 9, location: { host: 'h', addr: 'h:1', url: 'http://h:1' } });
    expect(agg.apply(report({ full: false, seq: 2, removed: ['livemr_x'] }))).toBe(true);
    expect(agg.list()).toEqual([]);
  });

  it('keeps the first owner of a name; bye forgets an agent', () => {
    const agg = new Aggregator();
    agg.apply(report({ files: [{ name: 'livemr_x', length: 1, mtimeMs: 1 }] }));
    agg.apply(report({ agent: 'b', host: 'hb', files: [{ name: 'livemr_x', length: 2, mtimeMs: 1 }, { name: 'livemr_y', length: 3, mtimeMs: 1 }] }));
    expect(agg.get('livemr_x')!.location.host).toBe('h');
    expect(agg.get('livemr_y')!.location.host).toBe('hb');
    agg.apply(report({ bye: true, full: false }));
    expect(agg.list().map((f) => f.name)).toEqual(['livemr_y']);
  });

  it('parseReport rejects malformed reports field by field', () => {
    expect(() => parseReport(null)).toThrow(/not an object/);
    expect(() => parseReport({ ...report({}), agent: 'a/b' })).toThrow(/agent/);
    expect(() => parseReport({ ...report({}), url: 'file:///x' })).toThrow(/url scheme/);
    expect(() => parseReport({ ...report({}), seq: -1 })).toThrow(/seq/);
    expect(() => parseReport({ ...report({}), files: [{ name: 'x', length: 1.5, mtimeMs: 0 }] })).toThrow(/files\[0\]\.length/);
    expect(() => parseReport({ ...report({}), files: [{ name: 'a/b', length: 1, mtimeMs: 0 }] })).toThrow(/files\[0\]\.name/);
    expect(() => parseReport({ ...report({}), removed: [3] })).toThrow(/removed/);
    expect(parseReport(report({})).url).toBe('http://h:1');
  });
});

describe('report endpoint', () => {
  it('answers 400 to garbage, 403 without the token, 405 to GET, and stays up', async () => {
    const { gw } = await aggregatorAt(0, 'sekret');
    const post = (body: string, token?: string) =>
      fetch(gw.url + REPORT_PATH, { method: 'POST', body, headers: token ? { 'x-livemr-agent-token': token } : {} });
    expect((await post('{', 'sekret')).status).toBe(400);
    expect((await post(JSON.stringify(report({ seq: -5 })), 'sekret')).status).toBe(400);
    expect((await post(JSON.stringify(report({})))).status).toBe(403);
    expect((await fetch(gw.url + REPORT_PATH)).status).toBe(405);
    expect((await post(JSON.stringify(report({})), 'sekret')).status).toBe(200);
  });
});

describe('AgentReporter', () => {
  it('reports at start and on every change; after an aggregator restart it resends everything', async () => {
    const first = await aggregatorAt();
    const port = first.gw.port;
    const a = agentOf('agent-a', first.gw.url);
    a.store.compose('one', [{ file: img, offset: 0, length: 10 }]);
    await a.rep.start();
    expect(first.agg.get('livemr_one')!.length).toBe(10);

    let got = once(first.agg, 'report');
    a.store.append('one', [{ file: img, offset: 10, length: 2000 }]); // crosses block boundaries
    await got;
    expect(first.agg.get('livemr_one')!.length).toBe(2010);

    got = once(first.agg, 'report');
    a.store.compose('two', [{ file: img, offset: 0, length: 1 }]);
    a.store.remove('one');
    await got;
    await a.rep.idle();
    expect(first.agg.list().map((f) => f.name)).toEqual(['livemr_two']);

    // restart the aggregator on the same port: it knows nothing; the next change triggers 409 → full
    await first.gw.close();
    const second = await aggregatorAt(port);
    got = once(second.agg, 'report');
    a.store.append('two', [{ file: img, offset: 1, length: 1 }]);
    await got;
    await a.rep.idle();
    expect(second.agg.list().map((f) => [f.name, f.length])).toEqual([['livemr_two', 2]]);
  });

  it('an unreachable aggregator is retried later, not in a loop, and catches up with a full report', async () => {
    const { gw } = await aggregatorAt();
    const port = gw.port;
    await gw.close();
    const logs: string[] = [];
    const store = CompositionStore.open(path.join(dir, 'solo'));
    cleanup.push(() => store.close());
    const source = storeSource(store);
    const ns = new LocalNamespace(source, { host: 'solo', addr: '127.0.0.1:1', url: 'http://127.0.0.1:1' });
    const rep = new AgentReporter(source, ns, { aggregator: `http://127.0.0.1:${port}`, agent: 'solo', url: 'http://127.0.0.1:1', host: 'solo', log: (l) => logs.push(l) });
    cleanup.push(() => rep.stop());
    store.compose('f', [{ file: img, offset: 0, length: 3 }]);
    await rep.start();
    expect(logs.join('\n')).toMatch(/retrying in 500 ms/);
    const back = await aggregatorAt(port);
    await once(back.agg, 'report'); // the timer fires once and sends the full report
    expect(back.agg.get('livemr_f')!.length).toBe(3);
    expect(logs).toHaveLength(1);
  });
});
