// Spark reading composed files through the WebHDFS gateway: spark-sql from Maven Central (its shaded
// Hadoop 3.4 client), local[2], on the bootstrap's Java, in one JVM for the whole file
// (test/hadoop/spark/src/SparkCheck.java: one SparkSession answering commands on stdin).
// - A line count and a group-by (lines by their first word) over webhdfs:// equal the same computed
//   here from the composed bytes. The file is laid out out of order in its image, with a hole, and
//   spans several of the gateway's pseudo-blocks.
// - A live file: a real guest under QEMU appends numbered, self-checking lines to a shared file while
//   Spark reads it again and again through the gateway over the host agent's store (scan jobs that
//   check every line in Spark, and collect jobs whose bytes are compared here). Every read is a
//   prefix of the guest's final file (read back from the guest over its control channel), never a
//   wrong byte; the last read, after the writer stopped and the host caught up, is the whole file.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositionStore, type SegmentSpec } from '../../src/fs/store.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { compositionName } from '../../src/host/naming.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const MiB = 1024 * 1024;
/** what Spark's launcher adds on Java 17 (JavaModuleOptions) */
const SPARK_JVM = ['-XX:+IgnoreUnrecognizedVMOptions', '-Djdk.reflect.useDirectMethodHandle=false', ...[
  'java.lang', 'java.lang.invoke', 'java.lang.reflect', 'java.io', 'java.net', 'java.nio', 'java.util', 'java.util.concurrent',
  'java.util.concurrent.atomic', 'jdk.internal.ref', 'sun.nio.ch', 'sun.nio.cs', 'sun.security.action', 'sun.util.calendar',
].map((p) => `--add-opens=java.base/${p}=ALL-UNNAMED`)];

/** One Spark JVM (SparkCheck) answering one command at a time; killed by PID in close(). */
class Spark {
  private out = '';
  private err = '';
  private waiter: ((line: string) => void) | undefined;
  private constructor(private readonly proc: ChildProcess) {
    proc.stdout!.on('data', (b: Buffer) => {
      this.out += b.toString();
      this.deliver();
    });
    proc.stderr!.on('data', (b: Buffer) => { this.err = (this.err + b.toString()).slice(-20_000); });
    proc.stdin!.on('error', () => { /* the JVM died: its 'close' answers the waiter */ });
    proc.on('close', (code) => { this.out += `\nLIVEMR-ERR the Spark JVM exited ${code}\n`; this.deliver(); });
  }

  static async start(classpath: string, conf: Record<string, string>): Promise<Spark> {
    const proc = spawn('java', ['-Xmx768m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Dlog4j2.level=WARN', ...SPARK_JVM, '-cp', classpath, 'SparkCheck',
      ...Object.entries(conf).map(([k, v]) => `${k}=${v}`)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HADOOP_USER_NAME: 'spark' } });
    const s = new Spark(proc);
    const ready = await s.next(300_000);
    if (ready !== 'LIVEMR-READY') throw new Error(`Spark did not start: ${ready}\n${s.err.slice(-3000)}`);
    return s;
  }

  private deliver(): void {
    for (;;) {
      const i = this.out.indexOf('\n');
      if (i < 0 || !this.waiter) return;
      const line = this.out.slice(0, i);
      this.out = this.out.slice(i + 1);
      if (!line.startsWith('LIVEMR-')) continue; // not ours (a library printing to stdout)
      const w = this.waiter;
      this.waiter = undefined;
      w(line);
    }
  }

  private next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiter = undefined; reject(new Error(`no answer from Spark in ${timeoutMs} ms\n${this.err.slice(-3000)}`)); }, timeoutMs);
      this.waiter = (l) => { clearTimeout(t); resolve(l); };
      this.deliver();
    });
  }

  /** Runs one command; resolves with the file it wrote. */
  async run(cmd: 'groups' | 'scan' | 'collect', uri: string, out: string, conf: Record<string, string> = {}, timeoutMs = 300_000): Promise<Buffer> {
    this.proc.stdin!.write(`${[cmd, uri, out, ...Object.entries(conf).map(([k, v]) => `${k}=${v}`)].join(' ')}\n`);
    const r = await this.next(timeoutMs);
    if (!r.startsWith('LIVEMR-OK')) throw new Error(`Spark ${cmd}: ${r}\n${this.err.slice(-3000)}`);
    return fs.readFileSync(out);
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('close', r));
    this.proc.stdin!.end(); // SparkCheck stops its session at EOF
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(t);
  }
}

/** Line `seq` of the live file; the same arithmetic as the guest's writer and SparkCheck.expected. */
function expectedLine(seq: number): string {
  let h = (seq * 2654435761 + 40503) % 4294967296;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 739982445) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  const w = 8 + (h & 31);
  return `${String(seq).padStart(8, '0')} ${h.toString(16).padStart(8, '0')} ${((h ^ 0xaaaaaaaa) >>> 0).toString(16).padStart(w, '0')}`;
}

let dir: string;
let spark: Spark | undefined;

beforeAll(async () => {
  const cache = execFileSync('bash', [path.resolve(import.meta.dirname, '../../scripts/build-native-hadoop.sh'), '--print', 'spark'], { encoding: 'utf8' }).trim();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-spark-'));
  // small file partitions (Spark's default is 128 MiB per partition, at least 4 MiB), so the files
  // here are read as several partitions split mid-line
  spark = await Spark.start(`${cache}/conf:${cache}/classes:${cache}/jars/*`, { 'spark.sql.files.maxPartitionBytes': String(256 * 1024), 'spark.sql.files.openCostInBytes': '0' });
}, 600_000);

afterAll(async () => {
  await spark?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('a composed file at rest', () => {
  let store: CompositionStore;
  let gw: Gateway;
  let text: Buffer;

  beforeAll(async () => {
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
  });

  afterAll(async () => {
    await gw?.close();
    store?.close();
  });

  it('Spark local[2] over webhdfs://: line count and group-by equal an independent computation', async () => {
    expect(text.length).toBeGreaterThan(2 * MiB); // several pseudo-blocks and partitions
    const r = await spark!.run('groups', `webhdfs://127.0.0.1:${gw.port}/livemr_access.log`, path.join(dir, 'groups.out'));
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
    const out = r.toString('utf8').split('\n');
    expect(out[0]).toBe(`LINES ${lines.length}`);
    expect(out.slice(1, 1 + want.length)).toEqual(want);
    expect(out.slice(1 + want.length)).toEqual(['']);
  }, 600_000);
});

describe('a guest file that is being appended to', () => {
  const LOG = '/mnt/data/spark.log';
  const FILE = `livemr_${compositionName('vm1', LOG)}`;
  let vm: GuestVm | undefined;
  let agent: HostAgent | undefined;
  let gw: Gateway | undefined;
  let ns: LocalNamespace;
  const logs: string[] = [];

  beforeAll(async () => {
    vm = await bootGuest({ name: 'sparklive', channel: false });
    const cfg = parseConfig({
      mountpoint: path.join(dir, 'mnt'), stateDir: path.join(dir, 'live-state'), runDir: path.join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, share: [LOG] }],
    });
    await vm.sh(`: > ${LOG}; setfattr -n user.livemr.share -v 1 ${LOG}`);
    agent = await HostAgent.start(cfg, createLogger({ level: 'info', sink: (l) => logs.push(l) }));
    ns = new LocalNamespace(storeSource(agent.store), { host: 'kvm-live', addr: '', url: '' });
    // small pseudo-blocks: the file crosses several boundaries while Spark reads it
    gw = await startGateway({ namespace: ns, blockSize: 4096 });
    ns.location = { host: 'kvm-live', addr: `127.0.0.1:${gw.port}`, url: gw.url };
  }, 300_000);

  afterAll(async () => {
    await vm?.exec('touch /tmp/stop').catch(() => {});
    await gw?.close();
    await agent?.stop();
    await vm?.shutdown();
    try {
      execFileSync('fusermount3', ['-uz', path.join(dir, 'mnt')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
  }, 120_000);

  it('every Spark read while the guest appends is a prefix of its final file, never a wrong byte; the last read is the whole file', async () => {
    // batches of lines until /tmp/stop exists, then /tmp/done (shell builtins only: no forks under
    // TCG but the sleep); each line is expectedLine(seq), one write(2) each
    const line = 'h=$(( (i*2654435761 + 40503) & 4294967295 )); h=$(( h ^ (h >> 15) )); h=$(( (h*739982445) & 4294967295 )); h=$(( h ^ (h >> 13) )); '
      + `w=$(( 8 + (h & 31) )); printf "%08d %08x %0\${w}x\\n" $i $h $(( h ^ 2863311530 )) >> ${LOG}; i=$((i+1))`;
    await vm!.sh(`(i=0; while [ $i -lt 200 ]; do ${line}; done; while [ ! -e /tmp/stop ]; do j=0; while [ $j -lt 20 ]; do ${line}; j=$((j+1)); done; sleep 0.2; done; touch /tmp/done) >/dev/null 2>&1 &`);
    await until('the first lines on the host', () => (ns.get(FILE)?.length ?? 0) > 4096, 120_000, 100);

    const uri = `webhdfs://127.0.0.1:${gw!.port}/${FILE}`;
    const small = { 'spark.sql.files.maxPartitionBytes': '4096' }; // several partitions of the growing file
    type Read = { kind: 'scan' | 'collect'; lines: number; bytes?: Buffer; scan?: { bad: number; maxSeq: number; seqSum: number; badLines: string[] } };
    const reads: Read[] = [];
    const scan = async (): Promise<Read> => {
      const [head, ...bad] = (await spark!.run('scan', uri, path.join(dir, `scan-${reads.length}.out`), small)).toString('utf8').split('\n');
      const [lines, nbad, maxSeq, seqSum] = head!.split(' ').map(Number) as [number, number, number, number];
      const r: Read = { kind: 'scan', lines, scan: { bad: nbad, maxSeq, seqSum, badLines: bad.filter((l) => l !== '') } };
      reads.push(r);
      return r;
    };
    const collect = async (): Promise<Read> => {
      const bytes = await spark!.run('collect', uri, path.join(dir, `collect-${reads.length}.out`), small);
      const r: Read = { kind: 'collect', lines: bytes.length ? bytes.toString('latin1').split('\n').length : 0, bytes };
      reads.push(r);
      return r;
    };
    for (let round = 0; round < 6; round++) {
      await scan();
      await collect();
    }
    await vm!.sh('touch /tmp/stop');
    await until('the guest writer to stop', async () => (await vm!.exec('test -e /tmp/done')).code === 0, 120_000, 200);
    // the guest's file, read back independently of the host: over the guest's control channel
    const want = (await vm!.exec(`cat ${LOG}`)).stdout;
    await until('the host to catch up with the guest', () => ns.get(FILE)?.length === want.length, 120_000, 100);
    const lastScan = await scan();
    const last = await collect();

    // the guest's file is the format, line by line (so a line Spark finds bad is a wrong byte)
    const wantLines = want.toString('latin1').split('\n');
    expect(wantLines.pop()).toBe('');
    expect(wantLines.every((l, i) => l === expectedLine(i))).toBe(true);
    const n = wantLines.length;

    for (const [i, r] of reads.entries()) {
      const what = `read ${i} (${r.kind}, ${r.lines} lines)`;
      expect(r.lines, what).toBeLessThanOrEqual(n);
      if (i > 0) expect(r.lines, `${what}: reads see the file grow, never shrink`).toBeGreaterThanOrEqual(reads[i - 1]!.lines);
      if (r.bytes) {
        // Spark drops the line ends: the lines joined by \n are a prefix of the file, byte for byte
        expect(want.subarray(0, r.bytes.length).equals(r.bytes), `${what} is a prefix of the guest's final file`).toBe(true);
      } else {
        const s = r.scan!;
        // only the last line may be unchecked, and only as the beginning of the line that comes next
        // (a read ending where the host's servable bytes end, mid-line)
        const complete = r.lines - s.bad;
        expect(s.bad, `${what}: bad lines ${JSON.stringify(s.badLines)}`).toBeLessThanOrEqual(1);
        if (s.bad) expect(expectedLine(complete).startsWith(s.badLines[0]!), `${what}: ${JSON.stringify(s.badLines[0])}`).toBe(true);
        expect(s.maxSeq, what).toBe(complete - 1); // lines 0 .. complete-1, each once
        expect(s.seqSum, what).toBe((complete * (complete - 1)) / 2);
      }
    }
    const during = reads.slice(0, -2);
    expect(during[0]!.lines).toBeLessThan(n); // read while the guest was still writing
    expect(new Set(during.map((r) => r.lines)).size).toBeGreaterThan(1); // and saw it grow
    expect(lastScan.lines).toBe(n);
    expect(lastScan.scan!.bad).toBe(0);
    expect(Buffer.concat([last.bytes!, Buffer.from('\n')]).equals(want)).toBe(true);
    console.error(`[hdfs-spark] read line counts ${reads.map((r) => `${r.kind[0]}${r.lines}`).join(' ')} → final ${n} lines, ${want.length} B`);
  }, 900_000);
});
