// Benchmark P6: Hadoop through the WebHDFS gateway (issue 8). Needs root (FUSE mount for the
// baseline), Java and the Hadoop jars (scripts/build-native-hadoop.sh).
//   node --import tsx bench/hdfs.ts        LIVEMR_BENCH_MIB=1024 sets the log's size (default 256),
//                                          LIVEMR_BENCH_PARTS=c runs only P6c (default abc; d: P6d)
//
// P6a  `hadoop fs -cat webhdfs://gateway/livemr_log` vs `cat` of the same composed file on the FUSE
//      mount, both to /dev/null, image file warm in the page cache; best of 3. Goal: ratio >= 0.5.
//      Reported end to end (a fresh JVM per -cat) and inside one JVM (FsShell -cat timed by the test
//      driver after a first -cat has loaded the classes), against the
//      FUSE file warm in its own page cache and with that cache dropped (every byte through FUSE), and
//      with curl reading the gateway (its own throughput, no JVM). Both Hadoop runs use
//      io.file.buffer.size=128 KiB (core-default is 4 KiB; WebHdfsFileSystem makes one HTTP-runner
//      call per buffer fill, so 4 KiB buffers cost ~2x on wordcount).
// P6b  end to end: MapReduce wordcount (local job runner) straight over the live log through the
//      gateway, vs first copying the log into a local Hadoop filesystem (hadoop fs -copyFromLocal
//      from an ordinary host file holding the same bytes, to file://) and then counting. Goal: >= 2x.
//      Both outputs must be equal.
// P6c  the zero-copy read path (issue 19): the gateway's own CPU seconds (user+sys of this process,
//      which runs nothing else meanwhile) per GiB served, OPEN bodies by sendfile(2) vs through JS
//      buffers, for curl and for FsShell -cat inside one JVM; and wordcount over the gateway (each
//      path) vs wordcount over a local file:// copy of the same bytes. Goal: local/gateway >= 0.97.
// P6d  that last ratio made robust to a shared machine's swinging load: wordcount over the gateway
//      (sendfile) and over the local file:// copy, interleaved local, gateway, gateway, local (so a
//      load that rises or falls steadily weighs both alike), with the load average at each start;
//      ratio = sum(local) / sum(gateway). Goal: >= 0.97. LIVEMR_BENCH_PARTS=d runs only this.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ComposedMount } from '../src/fs/mount.js';
import { CompositionStore, type SegmentSpec } from '../src/fs/store.js';
import { LocalNamespace } from '../src/hdfs/namespace.js';
import { sendStats } from '../src/hdfs/sendfile.js';
import { startGateway } from '../src/hdfs/server.js';
import { storeSource } from '../src/hdfs/source.js';
import { fsShell, hadoopClasspath } from '../test/hadoop/hadoop.js';

const MiB = 2 ** 20;
const SIZE = Number(process.env.LIVEMR_BENCH_MIB ?? 256) * MiB;
const PIECE = 8 * MiB;
const JVM = ['-Xmx768m', '-XX:+UseSerialGC'];

/** Runs a command with stdout to /dev/null; resolves with wall seconds (rejects on failure). */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}
const BUF = process.env.LIVEMR_BENCH_BUFFER ?? String(128 * 1024);
const java = (cls: string, args: string[]) =>
  timed('java', [...JVM, '-cp', hadoopClasspath(), cls, ...(cls.endsWith('FsShell') ? [`-Dio.file.buffer.size=${BUF}`] : []), ...args], {
    ...process.env,
    HADOOP_USER_NAME: 'bench',
  });
const best = async (n: number, f: () => Promise<number>) => {
  let b = Infinity;
  for (let i = 0; i < n; i++) b = Math.min(b, await f());
  return b;
};

/** A text log of `size` bytes: lines of words from a small vocabulary, deterministic. */
function logText(size: number): Buffer {
  const vocab = 'GET POST /index.html /api/v1/items 200 404 500 kvm guest hadoop block ssd warn error info user session'.split(' ');
  const out = Buffer.allocUnsafe(size);
  let x = 12345;
  let p = 0;
  while (p < size) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = vocab[x % vocab.length]! + (x % 5 === 0 ? String(x % 1000) : '');
    p += out.write(w + (x % 9 === 0 ? '\n' : ' '), p, 'latin1');
  }
  out[size - 1] = 0x0a;
  return out;
}

async function main(): Promise<void> {
  if (process.getuid!() !== 0) throw new Error('run as root (mounts FUSE)');
  hadoopClasspath();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-bench-hdfs-'));
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  let mount: ComposedMount | undefined;
  let store: CompositionStore | undefined;
  let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
  let gwJs: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    // the "disk image": the log's 8 MiB pieces stored out of order behind a random header, as a
    // guest file's extents lie in its disk image; the composition puts them back in order
    const text = logText(SIZE);
    const hostCopy = path.join(dir, 'log.txt'); // the baseline's source: an ordinary host file
    fs.writeFileSync(hostCopy, text);
    const img = path.join(dir, 'disk.img');
    const pieces = Math.ceil(SIZE / PIECE);
    const order = Array.from({ length: pieces }, (_, i) => i).sort((a, b) => ((a * 7919) % pieces) - ((b * 7919) % pieces));
    const fd = fs.openSync(img, 'w');
    const header = 3 * MiB + 4096;
    fs.writeSync(fd, randomBytes(header), 0, header, 0);
    const at = new Map<number, number>();
    order.forEach((piece, slot) => {
      const off = header + slot * PIECE;
      at.set(piece, off);
      fs.writeSync(fd, text, piece * PIECE, Math.min(PIECE, SIZE - piece * PIECE), off);
    });
    fs.closeSync(fd);
    const specs: SegmentSpec[] = Array.from({ length: pieces }, (_, i) => ({ file: img, offset: at.get(i)!, length: Math.min(PIECE, SIZE - i * PIECE) }));
    store = CompositionStore.open(path.join(dir, 'state'));
    store.compose('log', specs);
    store.compose('one', [{ file: img, offset: header, length: 1 }]);
    mount = await ComposedMount.mount(store, mnt);
    const ns = new LocalNamespace(storeSource(store), { host: os.hostname(), addr: '', url: '' });
    gw = await startGateway({ namespace: ns });
    gwJs = await startGateway({ namespace: ns, zeroCopy: false }); // the path before issue 19
    ns.location = { host: os.hostname(), addr: `127.0.0.1:${gw.port}`, url: gw.url };
    const url = `webhdfs://127.0.0.1:${gw.port}`;
    const fuseFile = path.join(mnt, 'livemr_log');
    if (fs.statSync(fuseFile).size !== SIZE) throw new Error('mount shows the wrong size');
    await timed('cat', [img]); // warm the image in the page cache

    const mb = SIZE / 1e6;
    const conf = [`-Dio.file.buffer.size=${BUF}`, '-Dmapreduce.framework.name=local', '-Dmapreduce.local.map.tasks.maximum=2', `-Dmapreduce.input.fileinputformat.split.minsize=${128 * MiB}`, '-Dmapreduce.job.reduces=1'];
    const parts = process.env.LIVEMR_BENCH_PARTS ?? 'abc'; // e.g. 'c' runs P6c only
    if (parts.includes('a')) {
      const catFuse = await best(3, () => timed('cat', [fuseFile]));
      // drop the composed file's page cache (not the image's) before each pass: every byte through FUSE
      const catFuseCold = await best(3, async () => (await timed('dd', [`if=${fuseFile}`, 'iflag=nocache', 'count=0', 'status=none']), timed('cat', [fuseFile])));
      const curl = await best(3, () => timed('curl', ['-sSf', '-o', '/dev/null', `${gw!.url}/webhdfs/v1/livemr_log?op=OPEN&user.name=bench`]));
      const catGw = await best(3, () => java('org.apache.hadoop.fs.FsShell', ['-cat', `${url}/livemr_log`]));
      const inJvm = await fsShell(
        [['@null', '-cat', `${url}/livemr_one`], ...Array.from({ length: 3 }, () => ['@null', '-cat', `${url}/livemr_log`])],
        { 'io.file.buffer.size': BUF },
        'bench',
      );
      if (inJvm.some((r) => r.rc !== 0)) throw new Error(`in-JVM -cat failed: ${inJvm.map((r) => r.err).join('')}`);
      const netGw = Math.min(...inJvm.slice(1).map((r) => Number(r.out.toString()))) / 1000;
      console.log(`P6a  ${SIZE / MiB} MiB composed file of ${pieces} segments, warm`);
      console.log(`     cat FUSE file            ${catFuse.toFixed(2)} s  ${(mb / catFuse).toFixed(0)} MB/s (its page cache warm)`);
      console.log(`     cat FUSE file            ${catFuseCold.toFixed(2)} s  ${(mb / catFuseCold).toFixed(0)} MB/s (its page cache dropped)`);
      console.log(`     curl OPEN (gateway only) ${curl.toFixed(2)} s  ${(mb / curl).toFixed(0)} MB/s`);
      console.log(`     hadoop fs -cat webhdfs   ${catGw.toFixed(2)} s  ${(mb / catGw).toFixed(0)} MB/s  (fresh JVM)`);
      console.log(`     hadoop fs -cat webhdfs   ${netGw.toFixed(2)} s  ${(mb / netGw).toFixed(0)} MB/s  (inside a running JVM)`);
      console.log(`     ratio gateway/FUSE       ${(catFuse / catGw).toFixed(2)} end to end, ${(catFuse / netGw).toFixed(2)} inside a JVM (vs warm FUSE)   (goal >= 0.5)`);
      console.log(`                              ${(catFuseCold / catGw).toFixed(2)} end to end, ${(catFuseCold / netGw).toFixed(2)} inside a JVM (vs FUSE, cache dropped)`);
      console.log(`                              ${(catFuseCold / curl).toFixed(2)} curl through the gateway vs FUSE, cache dropped`);
    }
    if (parts.includes('b')) {
      const out1 = path.join(dir, 'wc-livemr');
      const live = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, `${url}/livemr_log`, `file://${out1}`]);
      const copyDir = path.join(dir, 'hadoop-local');
      fs.mkdirSync(copyDir);
      const copy = await java('org.apache.hadoop.fs.FsShell', ['-copyFromLocal', hostCopy, `file://${copyDir}/log.txt`]);
      const out2 = path.join(dir, 'wc-copy');
      const count = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, `file://${copyDir}/log.txt`, `file://${out2}`]);
      const same = fs.readFileSync(path.join(out1, 'part-r-00000')).equals(fs.readFileSync(path.join(out2, 'part-r-00000')));
      console.log(`P6b  wordcount over the ${SIZE / MiB} MiB log (local job runner)`);
      console.log(`     LiveMR (webhdfs, no copy)        ${live.toFixed(1)} s`);
      console.log(`     copy to local Hadoop FS + count  ${(copy + count).toFixed(1)} s  (copy ${copy.toFixed(1)} s, count ${count.toFixed(1)} s)`);
      console.log(`     speed-up                         ${((copy + count) / live).toFixed(2)}x   (goal >= 2x)   outputs equal: ${same}`);
      if (!same) process.exitCode = 1;
    }

    if (parts.includes('d')) {
      const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      const runs: { what: 'local' | 'gateway'; secs: number; load: string }[] = [];
      const outs: Buffer[] = [];
      for (const what of ['local', 'gateway', 'gateway', 'local'] as const) {
        const out = path.join(dir, `wc-d-${runs.length}`);
        const l = load();
        const secs = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, what === 'local' ? `file://${hostCopy}` : `${url}/livemr_log`, `file://${out}`]);
        runs.push({ what, secs, load: l });
        outs.push(fs.readFileSync(path.join(out, 'part-r-00000')));
      }
      const sum = (w: string) => runs.filter((r) => r.what === w).reduce((a, r) => a + r.secs, 0);
      const eq = outs.every((o) => o.equals(outs[0]!));
      console.log(`P6d  wordcount (local job runner) over the ${SIZE / MiB} MiB log, interleaved; load average (1/5/15 min) at each start`);
      for (const r of runs) console.log(`     ${r.what.padEnd(8)} ${r.secs.toFixed(1).padStart(7)} s   load ${r.load}`);
      console.log(`     local/gateway ${(sum('local') / sum('gateway')).toFixed(3)}   (goal >= 0.97; per pair ${(runs[0]!.secs / runs[1]!.secs).toFixed(3)} ${(runs[3]!.secs / runs[2]!.secs).toFixed(3)})   outputs equal: ${eq}`);
      if (!eq) process.exitCode = 1;
    }
    if (!parts.includes('c')) return;
    // P6c: CPU of this process (the gateway) per GiB, each path; then wordcount each way
    const gib = SIZE / 2 ** 30;
    const cpu = async (f: () => Promise<unknown>): Promise<number> => {
      const c0 = process.cpuUsage();
      await f();
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1e6 / gib;
    };
    const curlCpu = async (g: typeof gw) => cpu(() => timed('curl', ['-sSf', '-o', '/dev/null', `${g!.url}/webhdfs/v1/livemr_log?op=OPEN&user.name=bench`]));
    const jvmCpu = async (g: typeof gw) => {
      const u = `webhdfs://127.0.0.1:${g!.port}`;
      let secs = 0;
      const c = await cpu(async () => {
        const r = await fsShell([['@null', '-cat', `${u}/livemr_log`]], { 'io.file.buffer.size': BUF }, 'bench');
        if (r[0]!.rc !== 0) throw new Error(r[0]!.err);
        secs = Number(r[0]!.out.toString()) / 1000;
      });
      return { c, secs };
    };
    const z0 = sendStats.zeroCopy;
    const cz = Math.min(await curlCpu(gw), await curlCpu(gw));
    const cj = Math.min(await curlCpu(gwJs), await curlCpu(gwJs));
    const jz = await jvmCpu(gw);
    const jj = await jvmCpu(gwJs);
    if (sendStats.zeroCopy - z0 < 3) throw new Error('the zero-copy gateway did not use sendfile (addon not built?)');
    const wcZc = path.join(dir, 'wc-zc');
    const wcJs = path.join(dir, 'wc-js');
    const wcLocal = path.join(dir, 'wc-local');
    const tLocal = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, `file://${hostCopy}`, `file://${wcLocal}`]);
    let cpuZc = 0;
    let tZc = 0;
    cpuZc = await cpu(async () => (tZc = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, `${url}/livemr_log`, `file://${wcZc}`])));
    let tJs = 0;
    const cpuJs = await cpu(async () => (tJs = await java('org.apache.hadoop.examples.ExampleDriver', ['wordcount', ...conf, `webhdfs://127.0.0.1:${gwJs!.port}/livemr_log`, `file://${wcJs}`])));
    const ref = fs.readFileSync(path.join(wcLocal, 'part-r-00000'));
    const eq = ref.equals(fs.readFileSync(path.join(wcZc, 'part-r-00000'))) && ref.equals(fs.readFileSync(path.join(wcJs, 'part-r-00000')));
    console.log(`P6c  gateway CPU (user+sys) per GiB served, ${SIZE / MiB} MiB file      JS buffers   sendfile`);
    console.log(`     curl OPEN                                            ${cj.toFixed(3)} s     ${cz.toFixed(3)} s   (${(cj / cz).toFixed(1)}x less)`);
    console.log(`     FsShell -cat inside a JVM                            ${jj.c.toFixed(3)} s     ${jz.c.toFixed(3)} s   (read ${(mb / jj.secs).toFixed(0)} / ${(mb / jz.secs).toFixed(0)} MB/s)`);
    console.log(`     during wordcount                                     ${cpuJs.toFixed(3)} s     ${cpuZc.toFixed(3)} s`);
    console.log(`     wordcount: local file:// copy ${tLocal.toFixed(1)} s, gateway sendfile ${tZc.toFixed(1)} s, gateway JS ${tJs.toFixed(1)} s`);
    console.log(`     local/gateway  sendfile ${(tLocal / tZc).toFixed(3)}   JS ${(tLocal / tJs).toFixed(3)}   (goal >= 0.97)   outputs equal: ${eq}`);
    if (!eq) process.exitCode = 1;
  } finally {
    await gwJs?.close();
    await gw?.close();
    await mount?.unmount();
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
