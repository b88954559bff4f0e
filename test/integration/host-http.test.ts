// The agent's HTTP listeners (issue 14 #8): the metrics TCP address is open to every local user, so
// it must not hand out what names images and guest paths (/status, /events, /biglogs); those are
// served on the root-only unix socket. The real agent with its FUSE mount; no VM needed.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, statusSocketPath } from '../../src/host/agent.js';
import { parseConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';

let dir: string;
let agent: HostAgent | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-host-http-'));
  const cfg = parseConfig({ mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0', vms: [] });
  agent = await HostAgent.start(cfg, createLogger({ sink: () => {} }));
});
afterAll(async () => {
  await agent?.stop();
  rmSync(dir, { recursive: true, force: true });
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
    const unix = { socketPath: statusSocketPath(join(dir, 'state')) };
    expect((await get(tcp, '/metrics')).body).toMatch(/^livemr_compositions 0$/m);
    for (const p of ['/status', '/events', '/biglogs', '/compositions']) {
      const r = await get(tcp, p);
      expect([p, r.status]).toEqual([p, 403]);
      expect(r.body).not.toContain(dir);
    }
    const st = await get(unix, '/status');
    expect(st.status).toBe(200);
    expect(JSON.parse(st.body)).toMatchObject({ stateDir: join(dir, 'state') });
    expect((await get(unix, '/events')).body).toMatch(/^event: status$/m);
    expect((await get(unix, '/biglogs')).status).toBe(200);
  });
});
