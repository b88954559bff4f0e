// Hadoop as users run it: a real YARN (MiniMRYarnCluster: ResourceManager, two NodeManagers,
// JobHistoryServer) and a real HDFS (MiniDFSCluster) started by the harness (test/hadoop/cluster.ts:
// loopback, an unprivileged account, lean memory), one cluster for the whole file. The two
// NodeManagers have host names of their own (nm0/nm1.livemr.test on 127.0.0.2/3, through the JVMs'
// hosts file), so locality is real.
// - The panel's job runner (src/panel/jobs.ts) submits wordcount to YARN over three composed files
//   read through an aggregator with three host agents; the output lands in HDFS and equals an
//   independent count. Locality: agents A and B name NodeManager 0's and 1's host as their data
//   host, agent C a host that is not in the cluster. A's and B's maps are data-local and ran on the
//   NodeManager their blocks name (the container's own log says which split it read, and sits in
//   that NodeManager's log directory); C's is not. The job record reports what the JobHistoryServer's
//   REST API says (state, counters, the host of each map), checked against the REST API here.
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
import { words, wordCount } from '../hadoop/wordcount.js';
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
let near0: Buffer;
let near1: Buffer;
let far: Buffer;
const NM_HOSTS = ['nm0.livemr.test', 'nm1.livemr.test'];

const VOCAB = ['kvm', 'guest', 'log', 'error', 'warn', 'info', 'hadoop', 'yarn', 'block', 'copy', 'live', 'mr', 'disk'];

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
  // Delay scheduling by time: the CapacityScheduler's (default) waits for a node-local container at
  // most as many scheduling opportunities as the cluster has nodes — two here — so under load a node
  // that heartbeats three times before the other once takes the other's split rack-local (seen:
  // 1 of 2 data-local). The FairScheduler with continuous scheduling waits a time instead.
  cluster = await startCluster({
    nodeHosts: NM_HOSTS,
    conf: {
      'yarn.resourcemanager.scheduler.class': 'org.apache.hadoop.yarn.server.resourcemanager.scheduler.fair.FairScheduler',
      'yarn.scheduler.fair.continuous-scheduling-enabled': 'true',
      'yarn.scheduler.fair.continuous-scheduling-sleep-ms': '100',
      'yarn.scheduler.fair.locality-delay-node-ms': '15000',
      'yarn.scheduler.fair.locality-delay-rack-ms': '15000',
    },
  });
  expect(cluster.nodeManagers.map((n) => n.split(':')[0])).toEqual(NM_HOSTS);
  jobUser = createTestUser('lmrjob');
  const aggregator = new Aggregator();
  agg = await startGateway({ namespace: aggregator, blockSize: 64 * MiB, extraRoute: aggregator.route });
  gateways.push(agg);
  const a = await agent('agent-a', NM_HOSTS[0]!, agg.url);
  const b = await agent('agent-b', NM_HOSTS[1]!, agg.url);
  const c = await agent('agent-c', 'elsewhere.invalid', agg.url);
  near0 = composeText(a.store, 'near0.log', words(200_000, 3, VOCAB));
  near1 = composeText(b.store, 'near1.log', words(170_000, 7, VOCAB));
  far = composeText(c.store, 'far.log', words(150_000, 5, VOCAB));
  for (const x of [a, b, c]) await x.rep.start();
  expect(aggregator.list().map((f) => f.name)).toEqual(['livemr_far.log', 'livemr_near0.log', 'livemr_near1.log']);
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
  it("the panel's wordcount runs on YARN through the aggregator: HDFS output equals an independent count; each split on a NodeManager's host ran there, data-local, as the JobHistoryServer reports", async () => {
    const c = cluster!;
    runner = new JobRunner({
      dir: path.join(dir, 'panel', 'jobs'), jarsDir: path.join(dir, 'panel', 'jars'), user: jobUser!.name, workDir: path.join(dir, 'jobs-work'),
      yarn: c.rm, hadoopConf: c.confDir, outputBase: `${c.fs}/user/${jobUser!.name}/jobs`, timeoutMs: 600_000, jvmOptions: c.jvm,
    });
    const u = `webhdfs://127.0.0.1:${agg.port}`;
    const names = ['livemr_near0.log', 'livemr_near1.log', 'livemr_far.log'];
    const sub = runner.submit({ program: 'wordcount', args: [], inputs: names.map((name) => ({ name, uri: `${u}/${name}` })) });
    expect(sub.runner).toBe(`yarn ${c.rm}`);
    const j = await until<JobRecord>('the YARN job to finish and the JobHistoryServer to report it', () => {
      const r = runner!.get(sub.id)!;
      return r.state !== 'queued' && r.state !== 'running' && (r.history || r.historyMessage) ? r : undefined;
    }, 600_000, 500);
    expect(j.state, `${j.message}\n${runner.logTail(j.id).slice(-40).join('\n')}`).toBe('succeeded');
    expect(j.output).toBe(`${c.fs}/user/${jobUser!.name}/jobs/${j.id}`);
    expect(j.hadoopJobId).toMatch(/^job_\d+_\d+$/);

    // the job detail is what the JobHistoryServer's REST API says
    expect(j.historyMessage).toBeUndefined();
    const h = j.history!;
    const rest = async <T>(p: string): Promise<T> => {
      const r = await fetch(`http://${c.jhsWeb}/ws/v1/history/mapreduce/jobs/${j.hadoopJobId}${p}`, { headers: { accept: 'application/json' } });
      expect(r.status, p).toBe(200);
      return (await r.json()) as T;
    };
    const job = (await rest<{ job: { state: string; mapsTotal: number; reducesTotal: number } }>('')).job;
    expect(h.url).toBe(`http://${c.jhsWeb}/ws/v1/history/mapreduce/jobs/${j.hadoopJobId}`);
    expect([h.state, h.maps.total, h.maps.completed, h.reduces.total]).toEqual([job.state, 3, 3, job.reducesTotal]);
    expect(job.state).toBe('SUCCEEDED');
    const groups = (await rest<{ jobCounters: { counterGroup: { counterGroupName: string; counter: { name: string; totalCounterValue: number }[] }[] } }>('/counters')).jobCounters.counterGroup;
    for (const g of groups) expect(h.counters[g.counterGroupName], g.counterGroupName).toEqual(Object.fromEntries(g.counter.map((x) => [x.name, x.totalCounterValue])));
    const jc = h.counters['org.apache.hadoop.mapreduce.JobCounter']!;
    // the JobHistoryServer's counters and the job client's (the record's locality) agree
    expect(j.locality).toEqual({ launchedMaps: jc.TOTAL_LAUNCHED_MAPS, dataLocalMaps: jc.DATA_LOCAL_MAPS ?? 0, rackLocalMaps: jc.RACK_LOCAL_MAPS ?? 0, otherLocalMaps: jc.OTHER_LOCAL_MAPS ?? 0 });
    // A's and B's splits data-local, C's (a host outside the cluster) not
    expect(j.locality!.launchedMaps).toBe(3);
    expect(j.locality!.dataLocalMaps).toBe(2);
    expect(j.locality!.rackLocalMaps + j.locality!.otherLocalMaps).toBe(1);

    // where each map ran: its container's log directory (which NodeManager's) and the split its log
    // names, against the host the job detail reports for it and the split's data host
    const app = j.hadoopJobId!.replace(/^job_/, 'application_');
    // (a NodeManager makes a container's directory in each of its log directories; the JVM writes in one)
    const containers = new Map<string, { nm: Set<number>; dirs: string[] }>();
    const walk = (d: string, depth: number, nm: number) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        const at = /-logDir-nm-(\d+)_\d+$/.exec(e.name);
        if (e.name === app) {
          for (const x of fs.readdirSync(path.join(d, e.name))) {
            if (!x.startsWith('container_')) continue;
            const ct = containers.get(x) ?? { nm: new Set<number>(), dirs: [] };
            ct.nm.add(nm);
            ct.dirs.push(path.join(d, e.name, x));
            containers.set(x, ct);
          }
        } else if (depth < 8) walk(path.join(d, e.name), depth + 1, at ? Number(at[1]) : nm);
      }
    };
    walk(c.work, 0, -1);
    expect(containers.size).toBe(5); // the AM, three maps, the reduce
    const dataHost: Record<string, string> = { 'livemr_near0.log': NM_HOSTS[0]!, 'livemr_near1.log': NM_HOSTS[1]!, 'livemr_far.log': 'elsewhere.invalid' };
    expect(h.mapTasks).toHaveLength(3);
    const placed: string[] = [];
    for (const t of h.mapTasks) {
      const ct = containers.get(t.container);
      expect(ct, `${t.task}'s container ${t.container} in a NodeManager's log directory`).toBeDefined();
      expect(t.state).toBe('SUCCEEDED');
      expect([...ct!.nm], `${t.container} in one NodeManager's log directories`).toHaveLength(1);
      expect(t.host, `${t.task}: the job detail names the NodeManager that holds its container`).toBe(NM_HOSTS[[...ct!.nm][0]!]);
      // the task logs the split it reads ("Processing split: URI:start+length") in its container's logs
      const files = ct!.dirs.flatMap((d) => fs.readdirSync(d).map((f) => path.join(d, f)));
      const logText = files.map((f) => { try { return fs.readFileSync(f, 'latin1'); } catch { return ''; } }).join('\n');
      const split = /Processing split: webhdfs:\/\/[^/]+\/(livemr_[^:]+):0\+\d+/.exec(logText)?.[1];
      expect(split, `${t.task}'s split in its logs (${files.join(', ')})`).toBeDefined();
      placed.push(`${split}@${t.host}`);
      if (dataHost[split!] !== 'elsewhere.invalid') expect(t.host, `${split} ran on the host its blocks name`).toBe(dataHost[split!]);
    }
    expect(placed.map((p) => p.split('@')[0]).sort()).toEqual([...names].sort());

    // the output, read back from HDFS, equals an independent count of the composed bytes
    const [cat] = await fsShell([['-cat', `${j.output}/part-r-00000`]]);
    expect(cat!.rc, cat!.err).toBe(0);
    expect(cat!.out.toString('latin1')).toBe(wordCount(Buffer.concat([near0, near1, far])));
    console.error(`[hdfs-yarn] maps ${placed.join(' ')}; ${JSON.stringify(j.locality)}`);
  }, 700_000);

  it('distcp -update -skipcrccheck copies from the gateway into HDFS, byte for byte', async () => {
    const c = cluster!;
    const u = `webhdfs://127.0.0.1:${agg.port}`;
    // on YARN (the cluster's configuration): the client reaches the ApplicationMaster by its NodeManager's name
    const r = await runJava('org.apache.hadoop.tools.DistCp', ['-update', '-skipcrccheck', '-m', '2', `${u}/livemr_near0.log`, `${u}/livemr_far.log`, `${c.fs}/distcp`], {
      classpath: c.classpath, user: 'livemr', timeoutMs: 600_000, jvm: c.jvm,
    });
    expect(r.rc, r.stderr.slice(-3000)).toBe(0);
    const [a, b, ls] = await fsShell([['-cat', `${c.fs}/distcp/livemr_near0.log`], ['-cat', `${c.fs}/distcp/livemr_far.log`], ['-ls', `${c.fs}/distcp`]]);
    expect(ls!.rc, ls!.err).toBe(0);
    expect(a!.rc, a!.err).toBe(0);
    expect(a!.out.equals(near0)).toBe(true);
    expect(b!.out.equals(far)).toBe(true);
  }, 700_000);
});
