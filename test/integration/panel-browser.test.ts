// The panel as an analytics user sees it, in real headless Chromium (Debian's, driven by
// playwright-core): request a file of a booted guest, the owner grants it inside the guest, the
// request turns granted live, compose it, run wordcount, see the result — equal to an independent
// count of the guest file. Screenshots go to test-artifacts/panel/.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePlan, parseMetrics, type Decision } from '../../src/cache/index.js';
import { HostAgent, parseConfig } from '../../src/host/index.js';
import { createLogger } from '../../src/host/log.js';
import { parsePanelConfig } from '../../src/panel/config.js';
import { Panel } from '../../src/panel/server.js';
import { createTestUser, type TestUser } from '../harness/users.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';

const FILE = '/mnt/data/words.log';
const SECRET = '/mnt/data/secret.log';
const shots = resolve('test-artifacts/panel');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let dir: string;
let vm: GuestVm | undefined;
let panel: Panel | undefined;
let agent: HostAgent | undefined;
let ctx: BrowserContext | undefined;
let page: Page;
let jobUser: TestUser | undefined;
const logs: string[] = [];

function wordCount(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const w of text.split(/\s+/).filter(Boolean)) m.set(w, (m.get(w) ?? 0) + 1);
  return m;
}

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'livemr-panel-ui-'));
  chmodSync(dir, 0o711); // the job user reaches its sandbox under it
  jobUser = createTestUser('lmrjob');
  vm = await bootGuest({ name: 'panel', channel: false });
  // alice's log: a few thousand words with a skewed distribution
  await vm.sh(`i=0; while [ $i -lt 400 ]; do echo "kvm guest log line $i kvm hadoop kvm"; i=$((i+1)); done > ${FILE}; echo top secret > ${SECRET}; chown alice ${FILE} ${SECRET}; sync`);
  agent = await HostAgent.start(parseConfig({
    mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null, apiSocket: join(dir, 'agent-api.sock'),
    vms: [{ name: 'vm1', qmp: vm.qmpSocket }],
  }), createLogger({ level: 'debug', sink: (l) => logs.push(l) }).child('host'));
  panel = await Panel.start(parsePanelConfig({
    agents: [{ socket: join(dir, 'agent-api.sock') }], stateDir: join(dir, 'panel'),
    listen: '127.0.0.1:0', cacheDecisions: join(dir, 'decisions.jsonl'), jobUser: jobUser.name, jobWorkDir: join(dir, 'jobs-work'),
  }), createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  ctx = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1366, height: 768 },
  });
  page = ctx.pages()[0] ?? (await ctx.newPage());
});

afterAll(async () => {
  await ctx?.close().catch(() => {});
  await panel?.stop().catch(() => {});
  await agent?.stop().catch(() => {});
  await vm?.shutdown();
  if (logs.length) console.error(logs.filter((l) => /"level":"(warn|error)"/.test(l)).slice(-30).join('\n'));
  try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
  rmSync(dir, { recursive: true, force: true });
  jobUser?.remove();
});

describe('panel in a browser', () => {
  it('request → owner grants in the guest → granted live → compose → wordcount → result', async () => {
    await page.goto(panel!.url);
    await page.screenshot({ path: join(shots, '0-login.png') });
    await page.fill('#token', 'not-the-token');
    await page.click('button[type=submit]');
    await page.waitForSelector('.error[role=alert]');
    await page.fill('#token', panel!.token);
    await page.click('button[type=submit]');
    await page.waitForSelector('#req-vm option[value=vm1]', { state: 'attached' });
    await page.waitForSelector('#live:not(.off)', { state: 'attached' });

    // an analytics user asks for alice's log
    await page.fill('#req-path', FILE);
    await page.click('#request-form button');
    const row = `#shares-table tr[data-path="${FILE}"]`;
    await page.waitForSelector(`${row} .badge[data-state=pending]`, { timeout: 30_000 });
    await page.fill('#req-path', SECRET);
    await page.click('#request-form button');
    await page.waitForSelector(`#shares-table tr[data-path="${SECRET}"] .badge[data-state=pending]`, { timeout: 30_000 });
    await page.screenshot({ path: join(shots, '1-requested.png') });
    // the requests reached the guest helper, which recorded them for alice
    const pending = await vm!.sh(`su alice -c 'livemr-guest requests'`);
    expect(pending).toContain(FILE);
    expect(pending).toContain(SECRET);
    // alice says no to one of them
    await vm!.sh(`su alice -c 'livemr-guest deny ${SECRET}'`);
    await page.waitForSelector(`#shares-table tr[data-path="${SECRET}"] .badge[data-state=denied]`, { timeout: 30_000 });

    // alice grants it inside the guest; the page turns granted by itself
    await vm!.sh(`su alice -c 'livemr-guest grant ${FILE}'`);
    await page.waitForSelector(`${row} .badge[data-state=granted]`, { timeout: 60_000 });
    // the guest keeps writing: the page shows the growth rate, live
    await vm!.sh(`i=0; while [ $i -lt 30 ]; do echo "kvm grows $i" >> ${FILE}; sleep 0.1; i=$((i+1)); done`);
    await page.waitForFunction((p) => /\/s$/.test(document.querySelector(`#shares-table tr[data-path="${p}"] td:nth-child(5)`)?.textContent ?? ''), FILE, { timeout: 15_000 });
    const text = await vm!.sh(`cat ${FILE}`);
    await page.waitForFunction(([p, n]) => document.querySelector(`#shares-table tr[data-path="${p}"]`)?.getAttribute('data-size') === String(n), [FILE, Buffer.byteLength(text)] as const, { timeout: 15_000 });
    await page.screenshot({ path: join(shots, '2-granted-growing.png') });

    // compose it into livemr_words
    await page.click('#tabs a[data-tab=compose]');
    await page.check(`#compose-sources input[data-path="${FILE}"]`);
    await page.fill('#compose-name', 'words');
    await page.click('#compose-form button[type=submit]');
    await page.waitForSelector('#composed-table tr[data-name=words]');
    await page.click('#composed-table tr[data-name=words]');
    await page.waitForSelector('#composed-detail h2:text("livemr_words")');
    const webhdfs = await page.textContent('#composed-detail code[data-kind=webhdfs]');
    expect(webhdfs).toBe(`${panel!.webhdfsBase}/livemr_words`);
    const mountPath = (await page.textContent('#composed-detail code[data-kind=mount]'))!;
    await page.screenshot({ path: join(shots, '3-composed.png') });
    expect(readFileSync(mountPath, 'utf8')).toBe(text);

    // run wordcount on it
    await page.click('#tabs a[data-tab=jobs]');
    await page.selectOption('#job-program', 'wordcount');
    await page.check('#job-inputs input[data-name=words]');
    await page.click('#job-form button[type=submit]');
    await page.waitForSelector('#jobs-table .badge[data-state=running], #jobs-table .badge[data-state=succeeded]', { timeout: 30_000 });
    await page.screenshot({ path: join(shots, '4-running.png') });
    await page.waitForSelector('#jobs-table .badge[data-state=succeeded]', { timeout: 150_000 });
    await page.click('#jobs-table tbody tr');
    await page.waitForSelector('#job-output tr');
    await page.screenshot({ path: join(shots, '5-result.png') });

    // the table shows the same counts as an independent count of the guest file
    const rows = await page.$$eval('#job-output tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td:not(.barcell)')].map((td) => td.textContent ?? '')));
    const expected = wordCount(text);
    expect(rows.length).toBe(Math.min(200, expected.size)); // the page shows the 200 largest
    for (const [w, n] of rows) expect(Number(n), w).toBe(expected.get(w!));
    const jobId = await page.getAttribute('#jobs-table tbody tr', 'data-id');
    const out = (await (await fetch(`${panel!.url}/api/v1/jobs/${jobId}/output`, { headers: { authorization: `Bearer ${panel!.token}` } })).json()) as { preview: string };
    expect(new Map(out.preview.trim().split('\n').map((l) => l.split('\t')).map(([w, n]) => [w!, Number(n)]))).toEqual(expected);
    expect(rows[0]).toEqual(['kvm', '1230']);
    expect(await page.textContent('#job-detail dd[data-kind=output]')).toMatch(/^file:\/\/.*\/output$/);

    // the other views render at laptop size
    await page.click('#tabs a[data-tab=hosts]');
    await page.waitForSelector('#vm-cards .card[data-vm=vm1]');
    await page.screenshot({ path: join(shots, '6-hosts.png') });
    await page.click('#tabs a[data-tab=cache]');
    expect(await page.textContent('#cache-chart')).toMatch(/has not written .*decisions.jsonl yet/);
    await page.screenshot({ path: join(shots, '7-cache-empty.png') });
    // the loop's decisions (as `livemr cache run --dry-run` prints them) appear without a reload
    const plan = makePlan(parseMetrics(JSON.parse(readFileSync('test/fixtures/cache/metrics.json', 'utf8'))));
    const at = new Date().toISOString();
    const ds: Decision[] = [
      { at, step: 0, action: 'baseline', reason: 'first sample: counters need a second one for rates', hysteresis: 0.05 },
      { at, step: 1, action: 'dry-run', reason: 'no weights applied yet: would apply (dry run)', hysteresis: 0.05, move: -1, plan: { solver: plan.solver, fitness: plan.fitness, rows: plan.rows } },
    ];
    writeFileSync(join(dir, 'decisions.jsonl'), ds.map((d) => JSON.stringify(d)).join('\n') + '\n');
    await page.waitForSelector('#cache-chart svg rect', { timeout: 10_000 });
    expect(await page.$$eval('#cache-chart svg rect', (r) => r.length)).toBe(2 * plan.rows.length);
    expect(await page.$$eval('#cache-table tbody tr', (r) => r.length)).toBe(2);
    await page.screenshot({ path: join(shots, '8-cache.png') });
  });
});
