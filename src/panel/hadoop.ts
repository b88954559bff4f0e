// Where the panel finds Hadoop: the client jars that scripts/build-native-hadoop.sh resolves from
// Maven Central into its cache (the same jars the WebHDFS gateway's tests run), including
// hadoop-mapreduce-examples. Resolved once per process. And what the panel reads of a cluster's
// client configuration (the JobHistoryServer's address).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescapeXml = (s: string) => s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e: string) =>
  e[0] === '#' ? String.fromCodePoint(Number(e[1] === 'x' || e[1] === 'X' ? `0${e.slice(1)}` : e.slice(1))) : XML_ENTITIES[e] ?? m);

/**
 * The properties of one Hadoop configuration file (`<property><name>…</name><value>…</value>`),
 * `${other.key}` references expanded from the same file; an unreadable file is empty.
 */
export function readHadoopConf(file: string): Map<string, string> {
  const props = new Map<string, string>();
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch {
    return props;
  }
  for (const m of xml.matchAll(/<property\b[^>]*>([\s\S]*?)<\/property>/g)) {
    const name = /<name>([\s\S]*?)<\/name>/.exec(m[1]!)?.[1];
    const value = /<value>([\s\S]*?)<\/value>|<value\s*\/>/.exec(m[1]!);
    if (name !== undefined && value) props.set(unescapeXml(name.trim()), unescapeXml(value[1] ?? ''));
  }
  for (const [k, v] of props) {
    let x = v;
    for (let i = 0; i < 20 && x.includes('${'); i++) x = x.replace(/\$\{([^}$]+)\}/g, (r, key: string) => props.get(key) ?? r);
    props.set(k, x);
  }
  return props;
}

/**
 * The JobHistoryServer's web address (host:port) a cluster's client configuration directory names
 * (`mapreduce.jobhistory.webapp.address` in mapred-site.xml); undefined when it names none or only a
 * wildcard host.
 */
export function jobHistoryAddress(confDir: string): string | undefined {
  const a = readHadoopConf(join(confDir, 'mapred-site.xml')).get('mapreduce.jobhistory.webapp.address')?.trim();
  if (!a || a.includes('${') || !/^[^\s:]+:\d+$/.test(a) || a.startsWith('0.0.0.0:')) return undefined;
  return a;
}
