// The WebHDFS gateway driven by real Hadoop (client jars from Maven Central): FsShell, the FileSystem
// API, a MapReduce wordcount with the local job runner, ViewFs, and an aggregator with two host
// agents on loopback. Compositions are made of byte ranges of image-like files written with dd.
//
// Not here yet: reading a live guest file while the guest appends (waits on the host agent, issue 7).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SegmentSpec } from '../../src/fs/store.js';
import { serveControl, socketPath } from '../../src/fs/control.js';
import { CompositionStore } from '../../src/fs/store.js';
import { compositionName } from '../../src/host/naming.js';
import { AgentReporter } from '../../src/hdfs/agent.js';
import { Aggregator } from '../../src/hdfs/aggregator.js';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { words, wordCount } from '../hadoop/wordcount.js';
import { fsShell, hadoopClasspath, runJava, type ShellResult } from '../hadoop/hadoop.js';

const MiB = 1024 * 1024;
const BLOCK = 1 * MiB;

let dir: string;
const stores: CompositionStore[] = [];
const gateways: Gateway[] = [];
const reporters: AgentReporter[] = [];
const children: ChildProcess[] = [];
const servers: { close(): unknown }[] = [];
const cli = path.resolve(import.meta.dirname, '../../bin/livemr.mjs');

function dd(args: string[]): void {
  const r = spawnSync('dd', [...args, 'status=none'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd ${args.join(' ')}: ${r.stderr}`);
}

/** Random-data image file of `mib` MiB, with `text` written at `textAt` (dd conv=notrunc). */
function makeImage(name: string, mib: number, text?: { at: number; data: string }): string {
  const file = path.join(dir, name);
  dd(['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`]);
  if (text) {
    const src = path.join(dir, `${name}.text`);
    fs.writeFileSync(src, text.data);
    dd([`if=${src}`, `of=${file}`, 'bs=4096', `seek=${text.at / 4096}`, 'conv=notrunc']);
  }
  return file;
}

/** What a composition must read as, computed from the image files directly. */
function expected(specs: SegmentSpec[]): Buffer {
  return Buffer.concat(
    specs.map((s) => {
      if ('zero' in s) return Buffer.alloc(s.length);
      const fd = fs.openSync(s.file, 'r');
      const b = Buffer.alloc(s.length);
      fs.readSync(fd, b, 0, s.length, s.offset);
      fs.closeSync(fd);
      return b;
    }),
  );
}

const VOCAB = ['kvm', 'guest', 'log', 'error', 'warn', 'info', 'hadoop', 'block', 'zero', 'copy', 'live', 'mr', 'disk', 'ext4'];

async function agentGateway(stateDir: string, host: string, users: string[] | '*' = '*') {
  const store = CompositionStore.open(stateDir);
  stores.push(store);
  const source = storeSource(store);
  const ns = new LocalNamespace(source, { host, addr: '', url: '' });
  const gw = await startGateway({ namespace: ns, blockSize: BLOCK, users });
  gateways.push(gw);
  ns.location = { host, addr: `127.0.0.1:${gw.port}`, url: gw.url };
  return { store, source, ns, gw, uri: `webhdfs://127.0.0.1:${gw.port}` };
}

const ok = (r: ShellResult) => {
  if (r.rc !== 0) throw new Error(`rc=${r.rc}: ${r.err}`);
  return r.out;
};

let img1: string, img2: string;
let mixedSpecs: SegmentSpec[], wordSpecs: SegmentSpec[];
let text1: string, text2: string;

beforeAll(() => {
  hadoopClasspath(); // resolves the jars once (cached between runs)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-it-'));
  text1 = words(60_000, 7, VOCAB, { tabs: true });
  text2 = words(45_000, 11, VOCAB, { tabs: true });
  img1 = makeImage('disk1.img', 12, { at: 8 * MiB, data: text1 });
  img2 = makeImage('disk2.img', 8, { at: 4 * MiB, data: text2 });
  mixedSpecs = [
    { file: img1, offset: 1 * MiB + 17, length: 3 * MiB },
    { zero: true, length: 100_000 },
    { file: img2, offset: 0, length: 2.5 * MiB },
    { file: img1, offset: 7 * MiB, length: 123_457 },
  ];
  wordSpecs = [
    { file: img1, offset: 8 * MiB, length: Buffer.byteLength(text1) },
    { file: img2, offset: 4 * MiB, length: Buffer.byteLength(text2) },
  ];
}, 300_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); // by the PID we spawned
  for (const s of servers) s.close();
  for (const r of reporters) await r.stop().catch(() => {});
  for (const g of gateways) await g.close();
  for (const s of stores) s.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('one host agent, read by Hadoop', () => {
  it('FsShell -ls -R / -cat / -stat / -du / -tail / reads at offsets / block locations; writes and checksums refused', async () => {
    const a = await agentGateway(path.join(dir, 'state-a'), 'kvmhost-a', ['alice']);
    a.store.compose('mixed', mixedSpecs);
    a.store.compose('words.log', wordSpecs);
    const mixed = expected(mixedSpecs);
    const u = a.uri;
    const r = await fsShell(
      [
        ['-ls', '-R', `${u}/`],
        ['-cat', `${u}/livemr_mixed`],
        ['-stat', '%n|%b|%r|%o|%F|%u', `${u}/livemr_mixed`],
        ['-du', `${u}/`],
        ['-tail', `${u}/livemr_mixed`],
        ['@pread', `${u}/livemr_mixed`, String(3 * MiB - 5), '200000'],
        ['@pread', `${u}/livemr_mixed`, String(mixed.length - 10), '10'],
        ['@blocks', `${u}/livemr_mixed`],
        ['@oldblocks', `${u}/livemr_mixed`],
        ['-checksum', `${u}/livemr_mixed`],
        ['-put', path.join(dir, 'disk1.img.text'), `${u}/new.txt`],
        ['-rm', `${u}/livemr_mixed`],
        ['-mkdir', `${u}/d`],
        ['-cat', `${u}/livemr_nope`],
        ['-count', `${u}/`],
      ],
      {},
      'alice',
    );
    const [ls, cat, stat, du, tail, pread1, pread2, blocks, oldBlocks, checksum, put, rm, mkdir, missing, count] = r as [ShellResult, ...ShellResult[]] &
      ShellResult[];
    const lsOut = ok(ls).toString();
    expect(lsOut).toMatch(new RegExp(`^-r--r--r-- +1 livemr livemr +${mixed.length} .* ${u}/livemr_mixed$`, 'm'));
    expect(lsOut).toMatch(/livemr_words\.log$/m);
    expect(ok(cat!).equals(mixed)).toBe(true);
    expect(ok(stat!).toString().trim()).toBe(`livemr_mixed|${mixed.length}|1|${BLOCK}|regular file|livemr`);
    expect(ok(du!).toString()).toMatch(new RegExp(`^${mixed.length} +${mixed.length} +${u}/livemr_mixed$`, 'm'));
    expect(ok(tail!).equals(mixed.subarray(mixed.length - 1024))).toBe(true);
    expect(ok(pread1!).equals(mixed.subarray(3 * MiB - 5, 3 * MiB - 5 + 200_000))).toBe(true);
    expect(ok(pread2!).equals(mixed.subarray(mixed.length - 10))).toBe(true);
    const blockLines = ok(blocks!).toString().trim().split('\n');
    expect(blockLines).toHaveLength(Math.ceil(mixed.length / BLOCK));
    expect(blockLines[0]).toBe(`0 ${BLOCK} kvmhost-a 127.0.0.1:${a.gw.port}`);
    expect(blockLines.at(-1)).toBe(`${(blockLines.length - 1) * BLOCK} ${mixed.length % BLOCK} kvmhost-a 127.0.0.1:${a.gw.port}`);
    expect(ok(oldBlocks!).toString().trim().split('\n')).toEqual(blockLines); // the pre-3.4 clients' op
    expect(checksum!.rc).not.toBe(0);
    expect(checksum!.err).toMatch(/checksum: .*no HDFS block checksums.*-skipcrccheck/);
    expect(checksum!.err).not.toMatch(/Fatal internal error/);
    for (const w of [put!, rm!, mkdir!]) {
      expect(w.rc).not.toBe(0);
      expect(w.err).toMatch(/Permission denied: LiveMR serves composed files read-only/);
    }
    expect(missing!.rc).not.toBe(0);
    expect(missing!.err).toMatch(/No such file or directory|does not exist/);
    expect(ok(count!).toString()).toMatch(new RegExp(`^ +1 +2 +${mixed.length + expected(wordSpecs).length} `));
  });

  it('MapReduce wordcount over a webhdfs:// input equals an independent count of the same bytes', async () => {
    const a = await agentGateway(path.join(dir, 'state-wc'), 'kvmhost-wc');
    a.store.compose('words.log', wordSpecs);
    const out = path.join(dir, 'wc-out');
    const r = await runJava(
      'org.apache.hadoop.examples.ExampleDriver',
      ['wordcount', '-Dmapreduce.framework.name=local', '-Dmapreduce.job.reduces=1', `${a.uri}/livemr_words.log`, `file://${out}`],
      { user: 'alice' },
    );
    expect(r.rc, r.stderr.slice(-3000)).toBe(0);
    const got = fs.readFileSync(path.join(out, 'part-r-00000'), 'utf8');
    expect(got).toBe(wordCount(expected(wordSpecs)));
  });
});

describe('aggregator with two host agents', () => {
  it('lists both namespaces, redirects OPEN to the agent holding the file, names it in block locations, grows blocks at once; ViewFs; allowlist', async () => {
    const agg = new Aggregator();
    const aggGw = await startGateway({ namespace: agg, blockSize: BLOCK, extraRoute: agg.route });
    gateways.push(aggGw);
    const a = await agentGateway(path.join(dir, 'state-agg-a'), 'kvmhost-a');
    const b = await agentGateway(path.join(dir, 'state-agg-b'), 'kvmhost-b');
    a.store.compose('mixed', mixedSpecs);
    b.store.compose('words.log', wordSpecs);
    for (const [x, id] of [[a, 'agent-a'], [b, 'agent-b']] as const) {
      const rep = new AgentReporter(x.source, x.ns, { aggregator: aggGw.url, agent: id, url: x.gw.url, host: x.ns.location.host });
      reporters.push(rep);
      await rep.start();
    }
    expect(agg.list().map((f) => f.name)).toEqual(['livemr_mixed', 'livemr_words.log']);

    // the protocol itself: 307 to the agent, or its URL with noredirect
    const open = await fetch(`${aggGw.url}/webhdfs/v1/livemr_mixed?op=OPEN&user.name=alice&offset=5`, { redirect: 'manual' });
    expect(open.status).toBe(307);
    expect(open.headers.get('location')).toBe(`${a.gw.url}/webhdfs/v1/livemr_mixed?op=OPEN&user.name=alice&offset=5`);
    const nr = await fetch(`${aggGw.url}/webhdfs/v1/livemr_words.log?op=OPEN&user.name=alice&noredirect=true`);
    expect(await nr.json()).toEqual({ Location: `${b.gw.url}/webhdfs/v1/livemr_words.log?op=OPEN&user.name=alice` });

    // growth: crossing a block boundary on agent A reaches the aggregator as one report, no polling
    const before = agg.get('livemr_mixed')!.length;
    const grow: SegmentSpec = { file: img2, offset: 5 * MiB, length: BLOCK + 4321 };
    const reported = once(agg, 'report');
    a.store.append('mixed', [grow]);
    await reported;
    expect(agg.get('livemr_mixed')!.length).toBe(before + grow.length);
    const mixed = expected([...mixedSpecs, grow]);

    const denied = await agentGateway(path.join(dir, 'state-deny'), 'kvmhost-c', ['alice']);
    const u = `webhdfs://127.0.0.1:${aggGw.port}`;
    const view = `-Dfs.viewfs.mounttable.default.link./livemr=webhdfs://127.0.0.1:${aggGw.port}/`;
    const r = await fsShell(
      [
        ['-ls', `${u}/`],
        ['-cat', `${u}/livemr_mixed`],
        ['-cat', `${u}/livemr_words.log`],
        ['@blocks', `${u}/livemr_mixed`],
        ['@blocks', `${u}/livemr_words.log`],
        ['@pread', `${u}/livemr_mixed`, String(before - 3), '4000'],
        [view, '-ls', 'viewfs://default/livemr'],
        [view, '-cat', 'viewfs://default/livemr/livemr_words.log'],
        ['-ls', `${a.uri}/`], // agent A allows everyone
        ['-ls', `${denied.uri}/`], // this one only alice
      ],
      {},
      'mallory',
    );
    const ls = ok(r[0]!).toString();
    expect(ls).toMatch(/livemr_mixed$/m);
    expect(ls).toMatch(/livemr_words\.log$/m);
    expect(ok(r[1]!).equals(mixed)).toBe(true);
    expect(ok(r[2]!).equals(expected(wordSpecs))).toBe(true);
    const blocksA = ok(r[3]!).toString().trim().split('\n');
    expect(blocksA).toHaveLength(Math.ceil(mixed.length / BLOCK));
    for (const l of blocksA) expect(l).toMatch(new RegExp(` kvmhost-a 127\\.0\\.0\\.1:${a.gw.port}$`));
    for (const l of ok(r[4]!).toString().trim().split('\n')) expect(l).toMatch(new RegExp(` kvmhost-b 127\\.0\\.0\\.1:${b.gw.port}$`));
    expect(ok(r[5]!).equals(mixed.subarray(before - 3, before - 3 + 4000))).toBe(true);
    expect(ok(r[6]!).toString()).toMatch(/viewfs:\/\/default\/livemr\/livemr_words\.log$/m);
    expect(ok(r[7]!).equals(expected(wordSpecs))).toBe(true);
    expect(r[8]!.rc).toBe(0);
    expect(r[9]!.rc).not.toBe(0);
    expect(r[9]!.err).toMatch(/Permission denied: user=mallory is not allowed/);
  });
});

/** Runs the livemr CLI to completion without blocking this process (it may serve the control socket). */
function livemr(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('error', reject);
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Retries `fn` until it returns a value (a test's wait for another process's inotify, bounded). */
async function eventually<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the livemr hdfs command, apart from the process that owns the compositions', () => {
  it('compose-from-local makes one file of two shared guest files; `serve` follows the journal with inotify; Hadoop reads it', async () => {
    const state = path.join(dir, 'state-cli');
    const store = CompositionStore.open(state);
    stores.push(store);
    servers.push(await serveControl(store, socketPath(state), () => {}));
    // what the host agent publishes for two shared guest files (its naming, src/host/naming.ts)
    store.compose(compositionName('vm1', '/var/log/app.log'), mixedSpecs);
    store.compose(compositionName('vm2', '/var/log/app.log'), wordSpecs);

    const serve = spawn(process.execPath, [cli, 'hdfs', 'serve', '--state', state, '--listen', '127.0.0.1:0', '--data-host', 'kvmhost-cli', '--block-size', '1m', '--users', 'alice'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(serve);
    let errText = '';
    serve.stderr!.on('data', (b: Buffer) => (errText += b.toString()));
    const url = await eventually(async () => /at (http:\/\/127\.0\.0\.1:\d+)\/webhdfs/.exec(errText)?.[1], 30_000);

    const cfg = path.join(dir, 'biglog.json');
    fs.writeFileSync(cfg, JSON.stringify({ name: 'biglog', files: [{ vm1: '/var/log/app.log' }, { vm2: '/var/log/app.log' }] }));
    const made = await livemr(['hdfs', 'compose-from-local', cfg, '--state', state]);
    expect(made.status, made.stderr).toBe(0);
    const both = expected([...mixedSpecs, ...wordSpecs]);
    expect(made.stdout).toBe(`livemr_biglog: ${both.length} bytes from 2 guest files\n`);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ name: 'x', files: { vm3: '/not/shared' } }));
    const refused = await livemr(['hdfs', 'compose-from-local', bad, '--state', state]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/vm3:\/not\/shared: not shared by the host agent/);

    const status = async (name: string) => {
      const r = await fetch(`${url}/webhdfs/v1/${name}?op=GETFILESTATUS&user.name=alice`);
      return r.status === 200 ? ((await r.json()) as { FileStatus: { length: number } }).FileStatus.length : undefined;
    };
    expect(await eventually(() => status('livemr_biglog'))).toBe(both.length);
    // growth across a block boundary reaches the separate gateway process through inotify
    const grow: SegmentSpec = { file: img1, offset: 0, length: BLOCK + 1 };
    store.append('biglog', [grow]);
    await eventually(async () => ((await status('livemr_biglog')) === both.length + grow.length ? true : undefined));

    const u = url.replace('http://', 'webhdfs://');
    const r = await fsShell([['-cat', `${u}/livemr_biglog`], ['@blocks', `${u}/livemr_biglog`]], {}, 'alice');
    const all = Buffer.concat([both, expected([grow])]);
    expect(ok(r[0]!).equals(all)).toBe(true);
    const blocks = ok(r[1]!).toString().trim().split('\n');
    expect(blocks).toHaveLength(Math.ceil(all.length / BLOCK));
    expect(blocks[0]).toMatch(/^0 1048576 kvmhost-cli kvmhost-cli:\d+$/); // names: the advertised address

    serve.kill('SIGTERM');
    const [code] = (await once(serve, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
