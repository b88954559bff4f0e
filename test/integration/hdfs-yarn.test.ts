// Hadoop as users run it: a real YARN (MiniMRYarnCluster: ResourceManager, NodeManager,
// JobHistoryServer) and a real HDFS (MiniDFSCluster) started by the harness (test/hadoop/cluster.ts:
// loopback, an unprivileged account, lean memory), one cluster for the whole file.
// - The panel's job runner (src/panel/jobs.ts) submits wordcount to YARN over two composed files
//   read through an aggregator with two host agents; the output lands in HDFS and equals an
//   independent count. Locality: agent A names the NodeManager's host (`localhost`) as its data host,
//   agent B a host that is not in the cluster, so exactly A's map is data-local (job counters, in
//   the job record), and the job's containers are in that NodeManager's log directories.
// - `hadoop distcp -update -skipcrccheck` copies from the gateway into the MiniDFSCluster byte for byte.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore, type SegmentSpec } from '../../src/fs/store.js';
import { AgentReporter } from '../../src/hdfs/agent.js';
import { Aggregator } from '../../src/hdfs/aggregator.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { JobRunner, type JobRecord } from '../../src/panel/jobs.js';
import { startCluster, type Cluster } from '../hadoop/cluster.js';
import { fsShell, hadoopClasspath, runJava } from '../hadoop/hadoop.js';
import { createTestUser, type TestUser } from '../harness/users.js';
import { until } from '../harness/wait.js';

const MiB = 1024 * 1024;
let dir: string;
let cluster: Cluster | undefined;
let jobUser: TestUser | undefined;
let runner: JobRunner | undefined;
const stores: CompositionStore[] = [];
const gateways: Gateway[] = [];
const reporters: AgentReporter[] = [];
let agg: Gateway;
let near: Buffer;
let far: Buffer;

function words(n: number, seed: number): string {
  const vocab = ['kvm', 'guest', 'log', 'error', 'warn', 'info', 'hadoop', 'yarn', 'block', 'copy', 'live', 'mr', 'disk'];
  let x = seed;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out.push(vocab[x % vocab.length]! + (x % 7 === 0 ? String(x % 100) : ''), x % 11 === 0 ? '\n' : ' ');
  }
  return out.join('') + '\n';
}

/** Word count the way WordCount tokenizes (StringTokenizer), in Text byte order. */
function wordCount(data: Buffer): string {
  const counts = new Map<string, number>();
  for (const w of data.toString('latin1').split(/[ \t\n\r\f]+/)) if (w) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'))).map(([w, c]) => `${w}\t${c}\n`).join('');
}

/** A composition of a text laid out in 256 KiB pieces in reverse order in an image file. */
function composeText(store: CompositionStore, name: string, text: string): Buffer {
  const data = Buffer.from(text, 'latin1');
  const img = path.join(dir, `${name}.img`);
  const piece = 256 * 1024;
  const n = Math.ceil(data.length / piece);
  const fd = fs.openSync(img, 'w');
  const specs: SegmentSpec[] = [];
  for (let i = 0; i < n; i++) {
    const at = 4096 + (n - 1 - i) * piece;
    const part = data.subarray(i * piece, (i + 1) * piece);
    fs.writeSync(fd, part, 0, part.length, at);
    specs.push({ file: img, offset: at, length: part.length });
  }
  fs.closeSync(fd);
  store.compose(name, specs);
  return data;
}

async function agent(id: string, host: string, aggUrl: string) {
  const store = CompositionStore.open(path.join(dir, `state-${id}`));
  stores.push(store);
  const source = storeSource(store);
  const ns = new LocalNamespace(source, { host, addr: '', url: '' });
  const gw = await startGateway({ namespace: ns, blockSize: 64 * MiB });
  gateways.push(gw);
  ns.location = { host, addr: `127.0.0.1:${gw.port}`, url: gw.url };
  const rep = new AgentReporter(source, ns, { aggregator: aggUrl, agent: id, url: gw.url, host });
  reporters.push(rep);
  return { store, rep };
}

beforeAll(async () => {
  hadoopClasspath();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-yarn-'));
  fs.chmodSync(dir, 0o711); // the job user reaches its sandbox below
  cluster = await startCluster({ nodeManagers: 1 });
  jobUser = createTestUser('lmrjob');
  const aggregator = new Aggregator();
  agg = await startGateway({ namespace: aggregator, blockSize: 64 * MiB, extraRoute: aggregator.route });
  gateways.push(agg);
  const nmHost = cluster.nodes[0]!.split(':')[0]!;
  const a = await agent('agent-a', nmHost, agg.url);
  const b = await agent('agent-b', 'elsewhere.invalid', agg.url);
  near = composeText(a.store, 'near.log', words(200_000, 3));
  far = composeText(b.store, 'far.log', words(150_000, 5));
  await a.rep.start();
  await b.rep.start();
  expect(aggregator.list().map((f) => f.name)).toEqual(['livemr_far.log', 'livemr_near.log']);
}, 420_000);

afterAll(async () => {
  await runner?.stop();
  for (const r of reporters) await r.stop().catch(() => {});
  for (const g of gateways) await g.close();
  for (const s of stores) s.close();
  await cluster?.stop();
  jobUser?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('YARN + HDFS (MiniYARNCluster, MiniDFSCluster)', () => {
  it("the panel's wordcount runs on YARN through the aggregator: HDFS output equals an independent count; the split on the NodeManager's host ran data-local", async () => {
    const c = cluster!;
    runner = new JobRunner({
      dir: path.join(dir, 'panel', 'jobs'), jarsDir: path.join(dir, 'panel', 'jars'), user: jobUser!.name, workDir: path.join(dir, 'jobs-work'),
      yarn: c.rm, hadoopConf: c.confDir, outputBase: `${c.fs}/user/${jobUser!.name}/jobs`, timeoutMs: 600_000,
    });
    const u = `webhdfs://127.0.0.1:${agg.port}`;
    const sub = runner.submit({ program: 'wordcount', args: [], inputs: [{ name: 'livemr_near.log', uri: `${u}/livemr_near.log` }, { name: 'livemr_far.log', uri: `${u}/livemr_far.log` }] });
    expect(sub.runner).toBe(`yarn ${c.rm}`);
    const j = await until<JobRecord>('the YARN job to finish', () => {
      const r = runner!.get(sub.id)!;
      return r.state !== 'queued' && r.state !== 'running' ? r : undefined;
    }, 600_000, 500);
    expect(j.state, `${j.message}\n${runner.logTail(j.id).slice(-40).join('\n')}`).toBe('succeeded');
    expect(j.output).toBe(`${c.fs}/user/${jobUser!.name}/jobs/${j.id}`);
    expect(j.hadoopJobId).toMatch(/^job_\d+_\d+$/);

    // locality, from the job's own counters (the job record): A's split names the NodeManager's host
    expect(j.locality).toBeDefined();
    expect(j.locality!.launchedMaps).toBe(2);
    expect(j.locality!.dataLocalMaps).toBe(1);
    expect(j.locality!.rackLocalMaps + j.locality!.otherLocalMaps).toBe(1);

    // and its containers (AM, two maps, reduce) ran in that NodeManager: the NM's own log directories
    // (with one NodeManager this is where they must be; the data-local count above is the placement)
    const app = j.hadoopJobId!.replace(/^job_/, 'application_');
    const containers = await until('the containers of the job in the NodeManager log dirs', () => {
      const found = new Set<string>();
      const walk = (d: string, depth: number) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (!e.isDirectory()) continue;
          if (e.name === app) {
            for (const c of fs.readdirSync(path.join(d, e.name))) if (c.startsWith('container_')) found.add(c);
          } else if (depth < 8) walk(path.join(d, e.name), depth + 1);
        }
      };
      walk(c.work, 0);
      return found.size >= 4 ? found : undefined;
    }, 60_000, 500);
    expect(containers.size).toBe(4);

    // the output, read back from HDFS, equals an independent count of the composed bytes
    const [cat] = await fsShell([['-cat', `${j.output}/part-r-00000`]]);
    expect(cat!.rc, cat!.err).toBe(0);
    expect(cat!.out.toString('latin1')).toBe(wordCount(Buffer.concat([near, far])));
  }, 700_000);

  it('distcp -update -skipcrccheck copies from the gateway into HDFS, byte for byte', async () => {
    const c = cluster!;
    const u = `webhdfs://127.0.0.1:${agg.port}`;
    const r = await runJava('org.apache.hadoop.tools.DistCp', ['-update', '-skipcrccheck', '-m', '2', `${u}/livemr_near.log`, `${u}/livemr_far.log`, `${c.fs}/distcp`], {
      classpath: c.classpath, user: 'livemr', timeoutMs: 600_000,
    });
    expect(r.rc, r.stderr.slice(-3000)).toBe(0);
    const [a, b, ls] = await fsShell([['-cat', `${c.fs}/distcp/livemr_near.log`], ['-cat', `${c.fs}/distcp/livemr_far.log`], ['-ls', `${c.fs}/distcp`]]);
    expect(ls!.rc, ls!.err).toBe(0);
    expect(a!.rc, a!.err).toBe(0);
    expect(a!.out.equals(near)).toBe(true);
    expect(b!.out.equals(far)).toBe(true);
  }, 700_000);
});
