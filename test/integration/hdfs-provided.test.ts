// `livemr hdfs export` served by a real NameNode and a real DataNode with a PROVIDED volume that
// reads through the real FUSE mount (test/hadoop/provided.ts: the stock daemons from Maven
// Central's Hadoop 3.4 jars, one JVM, an unprivileged account, loopback). Compositions are byte
// ranges of image-like files written with dd, mounted with the DataNode account's group.
// - fsck: every block of every exported file is on the PROVIDED storage, none in the DataNode's
//   DISK directory; Hadoop's own fs2img, run on the same mount, makes the same regions.
// - FsShell -ls / -stat / -cat / positioned reads over hdfs:// equal the composed bytes.
// - MapReduce wordcount (local job runner) over hdfs:// equals an independent count.
// - What a snapshot is. A file exported exactly (the default: its path handle, path + mtime, in the
//   alias map) fails to read once it changed: the DataNode refuses it ("Content changed"). Files
//   exported with --allow-growth: growth after the export is not seen (the exported length stays), a
//   hole the guest filled later is read as the mount has it now (the DataNode reads the mount,
//   nothing was copied), and a file removed from the mount fails to read instead of returning bytes.
// - Refreshing, as documented: a new export and a NameNode + DataNode restart on it serve the files
//   as they are now.
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComposedMount, CompositionStore, type SegmentSpec } from '../../src/fs/index.js';
import type { ExportResult } from '../../src/provided/index.js';
import { words, wordCount } from '../hadoop/wordcount.js';
import { fsShell, hadoopClasspath, runJava, type ShellResult } from '../hadoop/hadoop.js';
import { providedJars, startProvided, type ProvidedCluster } from '../hadoop/provided.js';
import { createTestUser, type TestUser } from '../harness/users.js';

const MiB = 1024 * 1024;
const BLOCK = MiB;
const cli = path.resolve(import.meta.dirname, '../../bin/livemr.mjs');

let dir: string;
let mnt: string;
let store: CompositionStore | undefined;
let mount: ComposedMount | undefined;
let user: TestUser | undefined;
let cluster: ProvidedCluster | undefined;
let exp: ExportResult;
let jars: string;
let img1: string, img2: string;
const specs: Record<string, SegmentSpec[]> = {};

function dd(args: string[]): void {
  const r = spawnSync('dd', [...args, 'status=none'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd ${args.join(' ')}: ${r.stderr}`);
}

function makeImage(name: string, mib: number, text: { at: number; data: string }): string {
  const file = path.join(dir, name);
  dd(['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`]);
  const src = path.join(dir, `${name}.text`);
  fs.writeFileSync(src, text.data);
  dd([`if=${src}`, `of=${file}`, 'bs=4096', `seek=${text.at / 4096}`, 'conv=notrunc']);
  return file;
}

/** What a composition reads as, from the image files directly. */
function expected(s: SegmentSpec[]): Buffer {
  return Buffer.concat(s.map((x) => {
    if ('zero' in x) return Buffer.alloc(x.length);
    const b = Buffer.alloc(x.length);
    const fd = fs.openSync(x.file, 'r');
    fs.readSync(fd, b, 0, x.length, x.offset);
    fs.closeSync(fd);
    return b;
  }));
}

const VOCAB = ['kvm', 'guest', 'log', 'error', 'warn', 'info', 'hadoop', 'block', 'provided', 'namenode', 'live', 'mr', 'disk', 'fuse'];

const ok = (r: ShellResult) => {
  if (r.rc !== 0) throw new Error(`rc=${r.rc}: ${r.err}`);
  return r.out;
};
const uri = (name: string) => `${cluster!.fs}/livemr_${name}`;

beforeAll(async () => {
  hadoopClasspath();
  jars = await providedJars();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-hdfs-provided-'));
  fs.chmodSync(dir, 0o711); // the DataNode's account reaches the mount below
  const text1 = words(170_000, 7, VOCAB);
  const text2 = words(120_000, 11, VOCAB);
  img1 = makeImage('disk1.img', 12, { at: 8 * MiB, data: text1 });
  img2 = makeImage('disk2.img', 8, { at: 4 * MiB, data: text2 });
  specs.mixed = [
    { file: img1, offset: 1 * MiB + 17, length: 3 * MiB },
    { zero: true, length: 100_000 },
    { file: img2, offset: 0, length: 2.5 * MiB },
    { file: img1, offset: 7 * MiB, length: 123_457 },
  ];
  specs['words.log'] = [
    { file: img1, offset: 8 * MiB, length: Buffer.byteLength(text1) },
    { file: img2, offset: 4 * MiB, length: Buffer.byteLength(text2) },
  ];
  specs.holey = [{ file: img2, offset: MiB, length: 300_000 }, { zero: true, length: 900_000 }, { file: img2, offset: 3 * MiB, length: 200_001 }];
  specs.growing = [{ file: img1, offset: 5 * MiB + 3, length: 1.5 * MiB }];
  specs.gone = [{ file: img2, offset: 7 * MiB, length: 65_537 }];
  specs.closed = [{ file: img1, offset: 11 * MiB, length: 400_000 }];

  user = createTestUser('lmrdn');
  store = CompositionStore.open(path.join(dir, 'state'));
  for (const [name, s] of Object.entries(specs)) store.compose(name, s);
  mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  mount = await ComposedMount.mount(store, mnt, { group: user.gid });

  // the export, as a user runs it: the command line (asynchronously: a loaded machine takes seconds
  // to start it, and this worker must keep answering the test runner meanwhile)
  const r = await promisify(execFile)(process.execPath, [cli, 'hdfs', 'export', '--mount', mnt, '--out', path.join(dir, 'export'), '--block-size', '1m', '--allow-growth', 'growing,holey,gone', '--json'], { encoding: 'utf8' });
  exp = JSON.parse(r.stdout) as ExportResult;
  // the NameNode writes its edits into the name directory: its account owns it
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, exp.nameDir]);
  cluster = await startProvided({ user, settings: exp.settings });
}, 400_000);

afterAll(async () => {
  await cluster?.stop();
  await mount?.unmount();
  if (mnt) spawnSync('fusermount3', ['-u', '-z', mnt], { stdio: 'ignore' });
  store?.close();
  user?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('livemr hdfs export → NameNode + DataNode with a PROVIDED volume on the FUSE mount', () => {
  it('exports every composed file in 1 MiB blocks; fsck finds each block on the PROVIDED storage and the DISK directory empty; fs2img makes the same regions', async () => {
    const c = cluster!;
    expect(exp.files.map((f) => [f.name, f.exact])).toEqual([
      ['livemr_closed', true], ['livemr_gone', false], ['livemr_growing', false], ['livemr_holey', false], ['livemr_mixed', true], ['livemr_words.log', true],
    ]);
    for (const f of exp.files) {
      expect(f.length).toBe(expected(specs[f.name.slice('livemr_'.length)]!).length);
      expect(f.blocks).toHaveLength(Math.ceil(f.length / BLOCK));
      expect(f.uri).toBe(`file:${mnt}/${f.name}`);
    }
    expect(c.blockPoolId).toBe(exp.blockPoolId);
    const total = exp.files.reduce((n, f) => n + f.blocks.length, 0);

    const fsck = await runJava('org.apache.hadoop.hdfs.tools.DFSck', ['/', '-files', '-blocks', '-locations'], { classpath: c.classpath, jvm: c.jvm, user: user!.name });
    expect(fsck.rc, fsck.stdout + fsck.stderr).toBe(0);
    expect(fsck.stdout).toMatch(/Status: HEALTHY/);
    const blockLines = fsck.stdout.split('\n').filter((l) => /blk_\d+_\d+ len=\d+/.test(l));
    expect(blockLines).toHaveLength(total);
    // the NameNode's one PROVIDED storage (a virtual DataNode: it picks a live one per read)
    for (const l of blockLines) expect(l).toMatch(/Live_repl=1 +\[DatanodeInfoWithStorage\[[^,\]]*,DS-PROVIDED,PROVIDED\]\]$/);
    const ids = blockLines.map((l) => Number(/blk_(\d+)_1001/.exec(l)![1]));
    expect(ids.sort()).toEqual(exp.files.flatMap((f) => f.blocks.map((b) => b.id)).sort());
    const onDisk: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (e.name.startsWith('blk_')) onDisk.push(e.name);
      }
    };
    walk(c.diskDir);
    expect(onDisk).toEqual([]);

    // Hadoop's own image writer over the same mount, the same block size: the same regions, and for
    // the files exported exactly the same path handle
    const f2i = path.join(dir, 'fs2img');
    const r = await runJava('org.apache.hadoop.hdfs.server.namenode.FileSystemImage', [
      '-Dhdfs.image.writer.resolver.fixed.block.size=1048576', `-Ddfs.provided.aliasmap.text.write.dir=file://${f2i}/aliasmap`,
      '-b', 'org.apache.hadoop.hdfs.server.common.blockaliasmap.impl.TextFileRegionAliasMap', '-o', `file://${f2i}/name`, '-bpid', exp.blockPoolId, `file://${mnt}`,
    ], { classpath: `${path.join(jars, 'conf')}:${path.join(jars, 'jars')}/*` });
    expect(r.rc, r.stderr.slice(-3000)).toBe(0);
    const exact = new Set(exp.files.filter((f) => f.exact).map((f) => `file:${mnt}/${f.name}`));
    const regions = (file: string, all: boolean) => fs.readFileSync(file, 'utf8').trim().split('\n')
      .map((l) => l.split(',')).map((f) => f.slice(1, all || exact.has(f[1]!) ? 6 : 5).join(',')).sort();
    expect(regions(path.join(f2i, 'aliasmap', `blocks_${exp.blockPoolId}.csv`), false)).toEqual(regions(exp.aliasMap, true));
  }, 240_000);

  it('FsShell -ls / -stat / -cat and positioned reads over hdfs:// equal the composed bytes', async () => {
    const mixed = expected(specs.mixed!);
    const r = await fsShell([
      ['-ls', `${cluster!.fs}/`],
      ...Object.keys(specs).map((n) => ['-cat', uri(n)]),
      ['-stat', '%n|%b|%r|%o|%u|%g', uri('mixed')],
      ['@pread', uri('mixed'), String(3 * MiB - 5), '1500000'],
      ['@pread', uri('mixed'), String(mixed.length - 10), '10'],
      ['@blocks', uri('mixed')],
      ['-put', path.join(dir, 'disk1.img.text'), `${cluster!.fs}/new.txt`],
    ], {}, 'alice');
    const [ls, ...rest] = r;
    const lsOut = ok(ls!).toString();
    for (const f of exp.files) expect(lsOut).toMatch(new RegExp(`^-r--r--r-- +1 livemr livemr +${f.length} .* ${cluster!.fs}/${f.name.replace('.', '\\.')}$`, 'm'));
    const names = Object.keys(specs);
    for (let i = 0; i < names.length; i++) expect(ok(rest[i]!).equals(expected(specs[names[i]!]!)), names[i]).toBe(true);
    const [stat, pread1, pread2, blocks, put] = rest.slice(names.length);
    expect(ok(stat!).toString().trim()).toBe(`livemr_mixed|${mixed.length}|1|${BLOCK}|livemr|livemr`);
    expect(ok(pread1!).equals(mixed.subarray(3 * MiB - 5, 3 * MiB - 5 + 1_500_000))).toBe(true);
    expect(ok(pread2!).equals(mixed.subarray(mixed.length - 10))).toBe(true);
    const blockLines = ok(blocks!).toString().trim().split('\n');
    expect(blockLines).toHaveLength(Math.ceil(mixed.length / BLOCK));
    expect(blockLines[1]).toMatch(new RegExp(`^${BLOCK} ${BLOCK} [^ ]+ 127\\.0\\.0\\.1:\\d+$`));
    // the root is the export's, read-only for everyone but the NameNode's superuser
    expect(put!.rc).not.toBe(0);
    expect(put!.err).toMatch(/Permission denied: user=alice, access=WRITE, inode="\/"/);
  }, 240_000);

  it('MapReduce wordcount (local job runner) over the hdfs:// path equals an independent count', async () => {
    const out = path.join(dir, 'wc-out');
    const r = await runJava('org.apache.hadoop.examples.ExampleDriver',
      ['wordcount', '-Dmapreduce.framework.name=local', '-Dmapreduce.job.reduces=1', uri('words.log'), `file://${out}`], { user: 'alice' });
    expect(r.rc, r.stderr.slice(-3000)).toBe(0);
    expect(fs.readFileSync(path.join(out, 'part-r-00000'), 'latin1')).toBe(wordCount(expected(specs['words.log']!)));
  }, 240_000);

  it('a snapshot: a file exported exactly fails to read once changed; with --allow-growth later growth is not seen, a hole filled later reads as the mount has it, a removed file fails to read', async () => {
    const s = store!;
    s.append('closed', [{ file: img2, offset: 0, length: 1000 }]);
    const grownFrom = expected(specs.growing!);
    s.append('growing', [{ file: img2, offset: 0, length: 700_000 }]);
    const fill = { file: img1, offset: 2 * MiB + 11, length: 900_000 };
    s.fill('holey', 300_000, fill);
    s.remove('gone');
    const holeyNow = fs.readFileSync(path.join(mnt, 'livemr_holey'));
    expect(holeyNow.equals(expected([specs.holey![0]!, fill, specs.holey![2]!]))).toBe(true);
    expect(fs.statSync(path.join(mnt, 'livemr_growing')).size).toBe(grownFrom.length + 700_000);

    const [growing, growingStat, holey, gone, closed] = await fsShell([
      ['-cat', uri('growing')], ['-stat', '%b', uri('growing')], ['-cat', uri('holey')], ['-Ddfs.client.retry.window.base=50', '-cat', uri('gone')],
      ['-Ddfs.client.retry.window.base=50', '-cat', uri('closed')],
    ], {}, 'alice');
    expect(ok(growing!).equals(grownFrom)).toBe(true);
    expect(ok(growingStat!).toString().trim()).toBe(String(grownFrom.length));
    expect(ok(holey!).equals(holeyNow)).toBe(true);
    expect(gone!.rc).not.toBe(0);
    expect(gone!.out.length).toBe(0);
    expect(gone!.err).toMatch(/BlockMissingException|Could not obtain block|No live nodes/);
    // the changed exact file: refused by the DataNode's path handle check, not read
    expect(closed!.rc).not.toBe(0);
    expect(closed!.out.length).toBe(0);
    expect(closed!.err).toMatch(/BlockMissingException|Could not obtain block|No live nodes/);
    expect(fs.readFileSync(cluster!.log, 'utf8')).toMatch(/InvalidPathHandleException: Content changed/);
  }, 240_000);

  it('refresh: a new export and a NameNode + DataNode restart on it serve the changed files as they are now', async () => {
    await cluster!.stop();
    cluster = undefined;
    const r = await promisify(execFile)(process.execPath, [cli, 'hdfs', 'export', '--mount', mnt, '--out', path.join(dir, 'export2'), '--block-size', '1m', 'closed', 'growing', '--json'], { encoding: 'utf8' });
    const again = JSON.parse(r.stdout) as ExportResult;
    expect(again.blockPoolId).not.toBe(exp.blockPoolId);
    spawnSync('chown', ['-R', `${user!.uid}:${user!.gid}`, again.nameDir]);
    cluster = await startProvided({ user: user!, settings: again.settings });
    const [ls, closed, growing] = await fsShell([['-ls', `${cluster.fs}/`], ['-cat', uri('closed')], ['-cat', uri('growing')]], {}, 'alice');
    expect(ok(ls!).toString().trim().split('\n').filter((l) => l.startsWith('-')).map((l) => l.split('/').pop())).toEqual(['livemr_closed', 'livemr_growing']);
    expect(ok(closed!).equals(fs.readFileSync(path.join(mnt, 'livemr_closed')))).toBe(true);
    expect(ok(growing!).equals(fs.readFileSync(path.join(mnt, 'livemr_growing')))).toBe(true);
    expect(ok(growing!).length).toBe(expected(specs.growing!).length + 700_000);
  }, 300_000);
});
