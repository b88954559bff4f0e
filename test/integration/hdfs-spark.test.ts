// Spark reading composed files through the WebHDFS gateway: spark-sql from Maven Central (its shaded
// Hadoop 3.4 client), local[2], on the bootstrap's Java, in one JVM (test/hadoop/spark/src/SparkCheck.java).
// A line count and a group-by (lines by their first word) over webhdfs:// equal the same computed
// here from the composed bytes. The file is laid out out of order in its image, with a hole, and
// spans several of the gateway's pseudo-blocks (so several Spark partitions, split mid-line).
//
// Not here: a live read while a guest appends (the guest-append case is test/integration/hdfs-live.test.ts
// with FsShell; with Spark it is not written yet).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CompositionStore, type SegmentSpec } from '../../src/fs/store.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { runJava } from '../hadoop/hadoop.js';

const MiB = 1024 * 1024;
/** what Spark's launcher adds on Java 17 (JavaModuleOptions) */
const SPARK_JVM = ['-XX:+IgnoreUnrecognizedVMOptions', '-Djdk.reflect.useDirectMethodHandle=false', ...[
  'java.lang', 'java.lang.invoke', 'java.lang.reflect', 'java.io', 'java.net', 'java.nio', 'java.util', 'java.util.concurrent',
  'java.util.concurrent.atomic', 'jdk.internal.ref', 'sun.nio.ch', 'sun.nio.cs', 'sun.security.action', 'sun.util.calendar',
].map((p) => `--add-opens=java.base/${p}=ALL-UNNAMED`)];

let dir: string;
let store: CompositionStore;
let gw: Gateway;
let text: Buffer;
let classpath: string;

beforeAll(async () => {
  const cache = execFileSync('bash', [path.resolve(import.meta.dirname, '../../scripts/build-native-hadoop.sh'), '--print', 'spark'], { encoding: 'utf8' }).trim();
  classpath = `${cache}/conf:${cache}/classes:${cache}/jars/*`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-spark-'));
  const vocab = ['GET', 'POST', 'kvm', 'guest', 'spark', 'error', 'warn', 'info'];
  let x = 99;
  const lines: string[] = [];
  for (let i = 0; i < 120_000; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    lines.push(i % 97 === 0 ? '' : `${vocab[x % vocab.length]}${x % 5 === 0 ? x % 13 : ''} /p/${x % 1000} ${x}`);
  }
  const body = Buffer.from(lines.join('\n') + '\n');
  // pieces stored in reverse order behind a header, with a 4 KiB hole (NULs: part of a line) in the middle
  const img = path.join(dir, 'disk.img');
  const piece = 300 * 1024;
  const n = Math.ceil(body.length / piece);
  const fd = fs.openSync(img, 'w');
  const specs: SegmentSpec[] = [];
  for (let i = 0; i < n; i++) {
    const at = 8192 + (n - 1 - i) * piece;
    const part = body.subarray(i * piece, (i + 1) * piece);
    fs.writeSync(fd, part, 0, part.length, at);
    specs.push({ file: img, offset: at, length: part.length });
    if (i === Math.floor(n / 2)) specs.push({ zero: true, length: 4096 });
  }
  fs.closeSync(fd);
  text = Buffer.concat(specs.map((s) => ('zero' in s ? Buffer.alloc(s.length) : fs.readFileSync(img).subarray(s.offset, s.offset + s.length))));
  store = CompositionStore.open(path.join(dir, 'state'));
  store.compose('access.log', specs);
  const ns = new LocalNamespace(storeSource(store), { host: 'localhost', addr: '', url: '' });
  gw = await startGateway({ namespace: ns, blockSize: MiB });
  ns.location = { host: 'localhost', addr: `127.0.0.1:${gw.port}`, url: gw.url };
}, 600_000);

afterAll(async () => {
  await gw?.close();
  store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it('Spark local[2] over webhdfs://: line count and group-by equal an independent computation', async () => {
  expect(text.length).toBeGreaterThan(2 * MiB); // several pseudo-blocks, so several partitions
  const r = await runJava('SparkCheck', [`webhdfs://127.0.0.1:${gw.port}/livemr_access.log`], {
    classpath, jvm: ['-Xmx768m', ...SPARK_JVM], user: 'spark', timeoutMs: 600_000,
  });
  expect(r.rc, r.stderr.slice(-3000)).toBe(0);
  // Spark's text source (Hadoop's LineRecordReader): lines split at \n, \r\n or \r; no trailing empty line
  const lines = text.toString('utf8').split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === '') lines.pop();
  const groups = new Map<string, number>();
  for (const l of lines) {
    const i = l.indexOf(' ');
    const k = i < 0 ? l : l.slice(0, i);
    groups.set(k, (groups.get(k) ?? 0) + 1);
  }
  // Spark orders strings by their UTF-8 bytes
  const want = [...groups].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map(([k, c]) => `${k}\t${c}`);
  const out = r.stdout.split('\n');
  const at = out.findIndex((l) => l.startsWith('LINES '));
  expect(out[at]).toBe(`LINES ${lines.length}`);
  expect(out.slice(at + 1, at + 1 + want.length)).toEqual(want);
}, 700_000);
