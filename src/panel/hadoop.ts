// Where the panel finds Hadoop: the client jars that scripts/build-native-hadoop.sh resolves from
// Maven Central into its cache (the same jars the WebHDFS gateway's tests run), including
// hadoop-mapreduce-examples. Resolved once per process.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

export interface HadoopInstall {
  /** java -cp value: client configuration, the driver classes, every jar */
  classpath: string;
  examplesJar: string;
  /** the cache directory (conf/, classes/, jars/) */
  dir: string;
}

let cached: HadoopInstall | undefined;

export function hadoopInstall(): HadoopInstall {
  if (cached) return cached;
  const r = spawnSync('bash', [join(root, 'scripts/build-native-hadoop.sh'), '--print'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot resolve the Hadoop jars (scripts/build-native-hadoop.sh): ${r.stderr.trim().slice(-500)}`);
  const dir = r.stdout.trim();
  const examples = readdirSync(join(dir, 'jars')).find((f) => /^hadoop-mapreduce-examples-.*\.jar$/.test(f));
  if (!examples) throw new Error(`no hadoop-mapreduce-examples jar in ${dir}/jars`);
  return (cached = { classpath: `${dir}/conf:${dir}/classes:${dir}/jars/*`, examplesJar: join(dir, 'jars', examples), dir });
}

/** A log4j configuration that keeps Hadoop quiet except the job's progress lines. */
export function progressLog4jText(): string {
  return [
    'log4j.rootLogger=WARN,stderr',
    'log4j.logger.org.apache.hadoop.mapreduce.Job=INFO',
    'log4j.appender.stderr=org.apache.log4j.ConsoleAppender',
    'log4j.appender.stderr.Target=System.err',
    'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.stderr.layout.ConversionPattern=%d{HH:mm:ss} %p %c{1}: %m%n',
    '',
  ].join('\n');
}
