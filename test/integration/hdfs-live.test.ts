// Hadoop reads a live guest file while the guest keeps appending: a real guest under QEMU, the
// host agent (QMP, guest helper, image mapper, composition store), the gateway serving the agent's
// store in process, an aggregator fed by the agent's reports, and real Hadoop client code.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentReporter } from '../../src/hdfs/agent.js';
import { Aggregator } from '../../src/hdfs/aggregator.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { compositionName } from '../../src/host/naming.js';
import { fsShell, hadoopClasspath } from '../hadoop/hadoop.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until as waitUntil } from '../harness/wait.js';

const LOG = '/mnt/data/live.log';
const BLOCK = 4096; // small blocks, so the file crosses several boundaries while it is read
const FILE = `livemr_${compositionName('vm1', LOG)}`;

const until = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) => waitUntil(what, fn, timeoutMs, 100);

describe('Hadoop reads a guest file that is being appended to', () => {
  let vm: GuestVm | undefined;
  let agent: HostAgent | undefined;
  let dir: string;
  let cfg: AgentConfig;
  const gateways: Gateway[] = [];
  let reporter: AgentReporter | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    hadoopClasspath();
    dir = mkdtempSync(join(tmpdir(), 'livemr-hdfs-live-'));
    vm = await bootGuest({ name: 'hdfslive', channel: false });
    await vm.sh(`printf 'first line\\n' > ${LOG}; setfattr -n user.livemr.share -v 1 ${LOG}`);
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, share: [LOG] }],
    });
    agent = await HostAgent.start(cfg, createLogger({ level: 'info', sink: (l) => logs.push(l) }));
  });

  afterAll(async () => {
    await reporter?.stop();
    for (const g of gateways) await g.close();
    await agent?.stop();
    await vm?.shutdown();
    try {
      execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('every read is a prefix of the final file, reads see it grow, blocks grow at the aggregator, the last read is byte-exact', async () => {
    const source = storeSource(agent!.store);
    const ns = new LocalNamespace(source, { host: 'kvm-live', addr: '', url: '' });
    const gw = await startGateway({ namespace: ns, blockSize: BLOCK });
    gateways.push(gw);
    ns.location = { host: 'kvm-live', addr: `127.0.0.1:${gw.port}`, url: gw.url };
    const agg = new Aggregator();
    const aggGw = await startGateway({ namespace: agg, blockSize: BLOCK, extraRoute: agg.route });
    gateways.push(aggGw);
    reporter = new AgentReporter(source, ns, { aggregator: aggGw.url, agent: 'kvm-live', url: gw.url, host: 'kvm-live' });
    await reporter.start();
    await until('the shared file at the aggregator', async () => agg.get(FILE));

    // the guest appends batches of lines in the background (shell builtins only: no forks under TCG)
    // while Hadoop reads
    await vm!.sh(
      `(i=0; while [ $i -lt 40 ]; do j=0; while [ $j -lt 25 ]; do echo "batch $i line $j the quick brown fox jumps over the lazy dog" >> ${LOG}; j=$((j+1)); done; sleep 0.2; i=$((i+1)); done; touch /tmp/live.done) >/dev/null 2>&1 &`,
    );
    const u = `webhdfs://127.0.0.1:${aggGw.port}`; // through the aggregator: redirects to the agent
    const reads: Buffer[] = [];
    const blockCounts: number[] = [];
    for (let round = 0; round < 3; round++) {
      const r = await fsShell([['-cat', `${u}/${FILE}`], ['@blocks', `${u}/${FILE}`], ['-cat', `${u}/${FILE}`], ['-tail', `${u}/${FILE}`]]);
      for (const x of r) expect(x.rc, x.err).toBe(0);
      reads.push(r[0]!.out, r[2]!.out);
      blockCounts.push(r[1]!.out.toString().trim().split('\n').length);
      for (const l of r[1]!.out.toString().trim().split('\n')) expect(l).toMatch(new RegExp(` kvm-live 127\\.0\\.0\\.1:${gw.port}$`));
    }
    await until('the guest writer to finish', async () => (await vm!.exec('test -e /tmp/live.done')).code === 0, 180_000);
    const want = Buffer.from(await vm!.sh(`cat ${LOG}`), 'utf8');
    await until('the agent and the aggregator to catch up', async () => agg.get(FILE)?.length === want.length && ns.get(FILE)?.length === want.length);
    const [last, blocks] = await fsShell([['-cat', `${u}/${FILE}`], ['@blocks', `${u}/${FILE}`]]);
    expect(last!.out.equals(want)).toBe(true);
    expect(blocks!.out.toString().trim().split('\n')).toHaveLength(Math.ceil(want.length / BLOCK));

    for (const r of reads) expect(want.subarray(0, r.length).equals(r), 'a read during appends is a prefix of the final file').toBe(true);
    for (let i = 1; i < reads.length; i++) expect(reads[i]!.length).toBeGreaterThanOrEqual(reads[i - 1]!.length);
    expect(reads[0]!.length).toBeLessThan(want.length); // read while the guest was still writing
    expect(new Set(reads.map((r) => r.length)).size).toBeGreaterThan(1); // and saw it grow
    for (let i = 1; i < blockCounts.length; i++) expect(blockCounts[i]!).toBeGreaterThanOrEqual(blockCounts[i - 1]!);
    expect(blockCounts[0]!).toBeLessThan(Math.ceil(want.length / BLOCK)); // the block list grew with the file
    console.error(`[hdfs-live] read lengths ${reads.map((r) => r.length).join(' ')} → final ${want.length}; blocks ${blockCounts.join(' ')} → ${Math.ceil(want.length / BLOCK)}`);
  });
});
