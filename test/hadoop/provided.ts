// A real NameNode + DataNode started on the output of `livemr hdfs export` (test/hadoop/provided/src/
// ProvidedHdfs.java, jars from Maven Central cached by scripts/build-native-hadoop.sh provided).
//
// - Unprivileged: the JVM runs as the given throwaway account, which must be able to read the FUSE
//   mount (the test mounts it with that account's group) and owns the export's name directory (the
//   NameNode writes its edits there). The cached jars sit under root's home, so they are hard-linked
//   (or copied) into the work directory.
// - Loopback only: every address is 127.0.0.1 with an ephemeral port; a JVM hosts file maps this
//   host's name to 127.0.0.1.
// - Configured from the export's own settings (export.json `settings`, the hdfs-site.xml it wrote),
//   plus a DISK directory for the DataNode and the addresses.
// - Never left running (test/hadoop/jvm.ts).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestUser } from '../harness/users.js';
import { ADD_OPENS, JvmWorkDir } from './jvm.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ProvidedCluster {
  /** hdfs://127.0.0.1:PORT */
  fs: string;
  /** the NameNode's HTTP address (fsck talks to it) */
  http: string;
  blockPoolId: string;
  /** the client configuration the daemons run with (live ports) */
  confDir: string;
  /** java -cp for HDFS admin tools (fsck): confDir and every jar of the profile */
  classpath: string;
  jvm: string[];
  /** the DataNode's DISK directory (PROVIDED blocks never land here) */
  diskDir: string;
  work: string;
  log: string;
  stop(): Promise<void>;
}

let jarsDir: string | undefined;
/** The cache directory of the `provided` jars, built on first use (Maven: minutes on a cold cache,
 * so asynchronously: a test worker must keep answering its runner meanwhile). */
export async function providedJars(): Promise<string> {
  if (jarsDir) return jarsDir;
  const r = await promisify(execFile)('bash', [path.join(root, 'scripts/build-native-hadoop.sh'), '--print', 'provided'], { encoding: 'utf8', maxBuffer: 16 << 20 });
  return (jarsDir = r.stdout.trim());
}

export async function startProvided(opts: { user: TestUser; settings: Record<string, string>; conf?: Record<string, string>; timeoutMs?: number }): Promise<ProvidedCluster> {
  const cache = await providedJars();
  const dir = new JvmWorkDir('livemr-provided-');
  const work = dir.dir;
  const { uid, gid } = opts.user;
  const stop = () => dir.stop();
  try {
    dir.linkFrom(cache, ['jars', 'classes']);
    fs.mkdirSync(path.join(work, 'conf'));
    // WARN, but what the PROVIDED machinery and safe mode say at INFO (the log is read on failure)
    fs.writeFileSync(path.join(work, 'conf', 'log4j.properties'), [
      `log4j.rootLogger=${process.env.LIVEMR_PROVIDED_LOG ?? 'WARN'},file`,
      'log4j.appender.file=org.apache.log4j.ConsoleAppender',
      'log4j.appender.file.Target=System.err',
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=%d{HH:mm:ss,SSS} %p %c{1}: %m%n',
      ...['org.apache.hadoop.hdfs.server.blockmanagement.ProvidedStorageMap', 'org.apache.hadoop.hdfs.server.datanode.fsdataset.impl.ProvidedVolumeImpl',
        'org.apache.hadoop.hdfs.server.blockmanagement.BlockManagerSafeMode', 'org.apache.hadoop.hdfs.StateChange'].map((c) => `log4j.logger.${c}=INFO`),
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(work, 'hosts'), `127.0.0.1 localhost ${os.hostname()}\n`);
    const diskDir = path.join(work, 'dn-disk');
    const jvm = [`-Djdk.net.hosts.file=${path.join(work, 'hosts')}`, ...ADD_OPENS];
    const conf: Record<string, string> = {
      ...opts.settings,
      // the export names the PROVIDED volume; a DataNode also keeps a DISK directory of its own
      'dfs.datanode.data.dir': `[DISK]file://${diskDir},${opts.settings['dfs.datanode.data.dir']}`,
      'fs.defaultFS': 'hdfs://127.0.0.1:0',
      'dfs.namenode.rpc-address': '127.0.0.1:0',
      'dfs.namenode.http-address': '127.0.0.1:0',
      'dfs.datanode.address': '127.0.0.1:0',
      'dfs.datanode.http.address': '127.0.0.1:0',
      'dfs.datanode.ipc.address': '127.0.0.1:0',
      'hadoop.tmp.dir': path.join(work, 'tmp'),
      'dfs.replication': '1',
      'dfs.namenode.safemode.extension': '0',
      'dfs.heartbeat.interval': '1',
      // no background block scanner reading every PROVIDED block through the mount
      'dfs.block.scanner.volume.bytes.per.second': '0',
      ...opts.conf,
    };
    const { ready, log } = await dir.start({
      heap: '-Xmx512m', jvm, mainClass: 'ProvidedHdfs', args: [work, ...Object.entries(conf).map(([k, v]) => `${k}=${v}`)],
      uid, gid, readyMarker: 'LIVEMR-PROVIDED-READY', what: 'NameNode/DataNode', timeoutMs: opts.timeoutMs ?? 180_000,
    });
    const confDir = path.join(work, 'conf');
    return {
      fs: String(ready.fs), http: String(ready.http), blockPoolId: String(ready.blockPoolId), confDir, classpath: `${confDir}:${path.join(work, 'jars')}/*`, jvm, diskDir, work, log, stop,
    };
  } catch (e) {
    // keep the log readable in the error; the work directory goes
    await stop();
    throw e;
  }
}
