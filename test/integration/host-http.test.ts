// The agent's HTTP listeners (issue 14 #8): the metrics TCP address is open to every local user, so
// it must not hand out what names images and guest paths (/status, /events, /biglogs); those are
// served on the root-only unix socket. The real agent with its FUSE mount; no VM needed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, statusSocketPath } from '../../src/host/agent.js';
import { parseConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';

let dir: string;
let shm: string;
let agent: HostAgent | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-host-http-'));
  // the journal on tmpfs: the event stream test makes thousands of compositions
  shm = mkdtempSync('/dev/shm/livemr-host-http-');
  const cfg = parseConfig({ mountpoint: join(dir, 'mnt'), stateDir: join(shm, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0', vms: [] });
  agent = await HostAgent.start(cfg, createLogger({ sink: () => {} }));
});
afterAll(async () => {
  await agent?.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

function get(target: { port: number } | { socketPath: string }, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...('port' in target ? { host: '127.0.0.1', port: target.port } : target), path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      // an event stream stays open: its first event is enough
      res.on('data', (d: string) => { body += d; if (res.headers['content-type'] === 'text/event-stream') { req.destroy(); resolve({ status: res.statusCode!, body }); } });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('agent HTTP listeners', () => {
  it('the metrics address serves /metrics only; status, events and BigLogs on the unix socket', async () => {
    const tcp = { port: agent!.metricsAddress()!.port };
    const unix = { socketPath: statusSocketPath(join(shm, 'state')) };
    expect((await get(tcp, '/metrics')).body).toMatch(/^livemr_compositions 0$/m);
    for (const p of ['/status', '/events', '/biglogs', '/compositions']) {
      const r = await get(tcp, p);
      expect([p, r.status]).toEqual([p, 403]);
      expect(r.body).not.toContain(dir);
    }
    const st = await get(unix, '/status');
    expect(st.status).toBe(200);
    expect(JSON.parse(st.body)).toMatchObject({ stateDir: join(shm, 'state') });
    expect((await get(unix, '/events')).body).toMatch(/^event: status$/m);
    expect((await get(unix, '/biglogs')).status).toBe(200);
  });

  it('event streams: at most 32 at once (503 too-many-streams), and a client that does not read is dropped', async () => {
    const socketPath = statusSocketPath(join(shm, 'state'));
    const open = await Promise.all(Array.from({ length: 32 }, () => new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath, path: '/events' }, resolve);
      req.on('error', reject);
      req.end();
    })));
    expect(open.map((r) => r.statusCode)).toEqual(open.map(() => 200));
    const over = await get({ socketPath }, '/events');
    expect([over.status, JSON.parse(over.body).error.code]).toEqual([503, 'too-many-streams']);
    for (const r of open) r.destroy();

    // snapshots of ~1 MB: 2000 compositions with long names
    const src = join(dir, 'src.bin');
    writeFileSync(src, 'x');
    const long = (i: number) => `c${i}-${'n'.repeat(190)}`;
    for (let i = 0; i < 2000; i++) agent!.store.compose(long(i), [{ file: src, offset: 0, length: 1 }]);
    // a client that asks for events and never reads them
    const slow = connect(socketPath);
    slow.pause();
    slow.on('error', () => {});
    slow.write('GET /events HTTP/1.1\r\nHost: agent\r\n\r\n');
    await new Promise((r) => setTimeout(r, 300));
    // every change is one more full snapshot queued for it
    for (let i = 0; i < 16; i++) {
      agent!.store.remove(long(i));
      await new Promise((r) => setTimeout(r, 150));
    }
    const ended = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 5000);
      slow.once('close', () => { clearTimeout(t); resolve(true); });
      slow.resume();
    });
    slow.destroy();
    expect(ended).toBe(true);
    // and streams open again
    expect((await get({ socketPath }, '/events')).body).toMatch(/^event: status$/m);
  }, 60_000);
});
