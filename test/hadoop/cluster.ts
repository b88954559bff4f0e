// A real Hadoop cluster for the tests: MiniDFSCluster + MiniMRYarnCluster (ResourceManager,
// NodeManagers, JobHistoryServer) in one JVM (test/hadoop/cluster/src/LiveMRCluster.java), jars
// from Maven Central cached by scripts/build-native-hadoop.sh cluster.
//
// - Unprivileged: the JVM runs as a throwaway account (test/harness/users.ts), so YARN containers
//   (the job's own code) do too. The cached jars sit under root's home, so they are hard-linked (or
//   copied) into the work directory (0755: job clients of another account read its conf and jars).
// - Loopback only: a JVM hosts file (-Djdk.net.hosts.file) maps localhost and this host's name to
//   127.0.0.1, for the cluster and every container JVM; the NodeManagers register as `localhost`,
//   unless `nodeHosts` names one host per NodeManager: NodeManager i then listens on 127.0.0.(2+i),
//   which the hosts file names nodeHosts[i], and registers under that name (no /etc/hosts change;
//   clients that talk to the job's ApplicationMaster need `jvm`, which carries the hosts file).
// - Lean memory for 2 cores / 24 GiB: one 768 MiB JVM for the daemons, 512 MiB containers.
// - Never left running (test/hadoop/jvm.ts): stop() also kills containers naming the work dir.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestUser } from '../harness/users.js';
import { ADD_OPENS, JvmWorkDir } from './jvm.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Cluster {
  /** hdfs://localhost:PORT */
  fs: string;
  /** host:port of the ResourceManager */
  rm: string;
  jhsWeb: string;
  rmWeb: string;
  /** NodeManager ids, host:port */
  nodes: string[];
  /** NodeManager ids by index (NodeManager i's local and log directories, under `work`, end in -localDir-nm-i_N / -logDir-nm-i_N) */
  nodeManagers: string[];
  /** a $HADOOP_CONF_DIR for clients: the cluster's live configuration */
  confDir: string;
  /** java -cp for clients: confDir, log4j, every cluster jar */
  classpath: string;
  /** JVM flags clients need (hosts file, add-opens) */
  jvm: string[];
  /** the cluster's work directory (its HDFS and YARN directories are below it) */
  work: string;
  /** the account the daemons and containers run as */
  user: string;
  /** the cluster's own log */
  log: string;
  stop(): Promise<void>;
}

export async function startCluster(opts: { nodeManagers?: number; nodeHosts?: string[]; conf?: Record<string, string>; timeoutMs?: number } = {}): Promise<Cluster> {
  const nms = opts.nodeHosts?.length ?? opts.nodeManagers ?? 1;
  if (opts.nodeHosts && opts.nodeManagers !== undefined && opts.nodeManagers !== nms) throw new Error('nodeHosts names one host per NodeManager');
  if (nms > 250) throw new Error('at most 250 NodeManagers (127.0.0.2-251)');
  const r = execFileSync('bash', [path.join(root, 'scripts/build-native-hadoop.sh'), '--print', 'cluster'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const cache = r.trim();
  const user = createTestUser('lmryarn');
  const dir = new JvmWorkDir('livemr-yarn-', () => user.remove());
  const work = dir.dir;
  const { uid, gid } = user;
  const stop = () => dir.stop();
  try {
    dir.linkFrom(cache, ['jars', 'conf', 'classes']);
    fs.rmSync(path.join(work, 'conf', 'core-site.xml')); // the cluster writes the live one
    fs.writeFileSync(path.join(work, 'hosts'), `127.0.0.1 localhost ${os.hostname()}\n${(opts.nodeHosts ?? []).map((h, i) => `127.0.0.${2 + i} ${h}\n`).join('')}`);
    const jars = path.join(work, 'jars');
    const jvm = [`-Djdk.net.hosts.file=${path.join(work, 'hosts')}`, ...ADD_OPENS];
    const task = ['-Xmx300m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', ...jvm].join(' ');
    const conf: Record<string, string> = {
      'yarn.nodemanager.resource.memory-mb': '3072',
      'yarn.nodemanager.resource.cpu-vcores': '4',
      'yarn.scheduler.minimum-allocation-mb': '256',
      'yarn.scheduler.maximum-allocation-mb': '1024',
      'yarn.app.mapreduce.am.resource.mb': '512',
      'yarn.app.mapreduce.am.command-opts': task,
      'mapreduce.map.memory.mb': '512',
      'mapreduce.map.java.opts': task,
      'mapreduce.reduce.memory.mb': '512',
      'mapreduce.reduce.java.opts': task,
      // no speculative attempts: on a loaded 2-core machine a slow map gets a twin, which costs a
      // container and makes the attempt counts (and the locality counters) vary from run to run
      'mapreduce.map.speculative': 'false',
      'mapreduce.reduce.speculative': 'false',
      'yarn.nodemanager.vmem-check-enabled': 'false',
      'yarn.nodemanager.pmem-check-enabled': 'false',
      'yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage': '99.9',
      // containers run the jars of this cluster, as on an installed Hadoop
      'yarn.application.classpath': `${path.join(work, 'conf')},${jars}/*`,
      'mapreduce.application.classpath': `${jars}/*`,
      'dfs.permissions.enabled': 'false',
      'dfs.replication': '1',
      'yarn.timeline-service.enabled': 'false',
      'hadoop.tmp.dir': path.join(work, 'tmp'),
      ...(opts.nodeHosts ? { 'livemr.nodemanager.hosts': opts.nodeHosts.join(',') } : {}),
      ...opts.conf,
    };
    const { ready, log } = await dir.start({
      heap: '-Xmx768m', jvm, mainClass: 'LiveMRCluster', args: [work, String(nms), ...Object.entries(conf).map(([k, v]) => `${k}=${v}`)],
      uid, gid, readyMarker: 'LIVEMR-CLUSTER-READY', what: 'cluster', timeoutMs: opts.timeoutMs ?? 300_000,
    });
    const confDir = path.join(work, 'conf');
    return {
      fs: String(ready.fs), rm: String(ready.rm), jhsWeb: String(ready.jhsWeb), rmWeb: String(ready.rmWeb),
      nodes: ready.nodes as string[], nodeManagers: ready.nodeManagers as string[], confDir, classpath: `${confDir}:${jars}/*`, jvm, work, user: user.name, log, stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
