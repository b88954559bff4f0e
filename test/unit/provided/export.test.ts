// `livemr hdfs export` on a plain directory standing in for the mount: the output layout, the alias
// map lines, the image decoded with an independent protobuf reader (summary offsets, sections,
// inodes, blocks, permissions), the VERSION file, and the refusals. The NameNode loading the image
// and a DataNode serving it through a real FUSE mount: test/integration/hdfs-provided.test.ts.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExportError, exportProvided, IMAGE_NAME, ROOT_INODE_ID } from '../../../src/provided/index.js';

type Field = { n: number; wire: number; v: bigint | Buffer };

function varint(b: Buffer, at: { p: number }): bigint {
  let x = 0n;
  let shift = 0n;
  for (;;) {
    const c = b[at.p++]!;
    x |= BigInt(c & 0x7f) << shift;
    if (!(c & 0x80)) return x;
    shift += 7n;
  }
}

function fields(b: Buffer): Field[] {
  const out: Field[] = [];
  const at = { p: 0 };
  while (at.p < b.length) {
    const tag = Number(varint(b, at));
    const n = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ n, wire, v: varint(b, at) });
    else if (wire === 1) {
      out.push({ n, wire, v: b.readBigUInt64LE(at.p) });
      at.p += 8;
    } else if (wire === 2) {
      const len = Number(varint(b, at));
      out.push({ n, wire, v: b.subarray(at.p, at.p + len) });
      at.p += len;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

/** The delimited messages of a section, in order. */
function messages(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const at = { p: 0 };
  while (at.p < b.length) {
    const len = Number(varint(b, at));
    out.push(b.subarray(at.p, at.p + len));
    at.p += len;
  }
  expect(at.p).toBe(b.length);
  return out;
}

const get = (fs_: Field[], n: number) => fs_.filter((f) => f.n === n).map((f) => f.v);
const num = (fs_: Field[], n: number) => get(fs_, n)[0] as bigint;
const buf = (fs_: Field[], n: number) => get(fs_, n)[0] as Buffer;

let dir: string;
let mount: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-export-'));
  mount = path.join(dir, 'mnt');
  fs.mkdirSync(mount);
  fs.writeFileSync(path.join(mount, 'livemr_b'), Buffer.alloc(2.5 * 1024 * 1024, 7));
  fs.writeFileSync(path.join(mount, 'livemr_a.log'), 'hello\n');
  fs.writeFileSync(path.join(mount, 'livemr_empty'), '');
  fs.writeFileSync(path.join(mount, 'not-composed'), 'x');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('exportProvided', () => {
  it('writes the name directory, the alias map, hdfs-site.xml and export.json; the image decodes to the files and blocks', () => {
    const out = path.join(dir, 'out1');
    const r = exportProvided({ mount, out, blockSize: 1024 * 1024, owner: 'etl', group: 'hadoop', blockPoolId: 'BP-7-127.0.0.1-1', clusterId: 'CID-x' });
    expect(r.files.map((f) => [f.name, f.length, f.blocks.length])).toEqual([['livemr_a.log', 6, 1], ['livemr_b', 2.5 * 1024 * 1024, 3], ['livemr_empty', 0, 0]]);
    expect(fs.readdirSync(out).sort()).toEqual(['aliasmap', 'export.json', 'hdfs-site.xml', 'name']);
    expect(fs.readdirSync(path.join(out, 'name', 'current')).sort()).toEqual(['VERSION', IMAGE_NAME, `${IMAGE_NAME}.md5`, 'seen_txid']);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);

    const first = 2 ** 30 + 1;
    // the nonce: RawLocalFileSystem's exact path handle, {mtime: 1 (varint), path: 2}, base64
    const handle = (name: string) => {
      const p = Buffer.from(`file:${mount}/${name}`);
      const ms = fs.statSync(path.join(mount, name), { bigint: true }).mtimeNs / 1_000_000n;
      const v: number[] = [];
      for (let x = ms; ; x >>= 7n) {
        if (x < 0x80n) { v.push(Number(x)); break; }
        v.push(Number(x & 0x7fn) | 0x80);
      }
      return Buffer.concat([Buffer.from([0x08, ...v, 0x12, p.length]), p]).toString('base64');
    };
    expect(r.files.every((f) => f.exact)).toBe(true);
    expect(fs.readFileSync(r.aliasMap, 'utf8')).toBe([
      `${first},file:${mount}/livemr_a.log,0,6,1001,${handle('livemr_a.log')}`,
      `${first + 1},file:${mount}/livemr_b,0,1048576,1001,${handle('livemr_b')}`,
      `${first + 2},file:${mount}/livemr_b,1048576,1048576,1001,${handle('livemr_b')}`,
      `${first + 3},file:${mount}/livemr_b,2097152,524288,1001,${handle('livemr_b')}`,
      '',
    ].join('\n'));
    expect(path.basename(r.aliasMap)).toBe('blocks_BP-7-127.0.0.1-1.csv');
    expect(r.settings['dfs.provided.aliasmap.text.read.file']).toBe(`file://${r.aliasMap}`);
    expect(r.settings['dfs.datanode.data.dir']).toBe(`[PROVIDED]file://${mount}`);
    expect(fs.readFileSync(r.siteXml, 'utf8')).toContain('<property><name>dfs.namenode.provided.enabled</name><value>true</value></property>');
    expect(JSON.parse(fs.readFileSync(r.manifest, 'utf8'))).toMatchObject({ blockPoolId: 'BP-7-127.0.0.1-1', clusterId: 'CID-x', layoutVersion: -67 });

    const version = fs.readFileSync(path.join(out, 'name', 'current', 'VERSION'), 'utf8');
    expect(version).toMatch(/^layoutVersion=-67$/m);
    expect(version).toMatch(/^storageType=NAME_NODE$/m);
    expect(version).toMatch(/^blockpoolID=BP-7-127\.0\.0\.1-1$/m);
    expect(version).toMatch(/^clusterID=CID-x$/m);
    expect(version).toMatch(new RegExp(`^namespaceID=${r.namespaceId}$`, 'm'));

    const img = fs.readFileSync(path.join(out, 'name', 'current', IMAGE_NAME));
    expect(fs.readFileSync(path.join(out, 'name', 'current', `${IMAGE_NAME}.md5`), 'utf8')).toBe(`${createHash('md5').update(img).digest('hex')} *${IMAGE_NAME}\n`);
    expect(img.subarray(0, 8).toString()).toBe('HDFSIMG1');
    const sumLen = img.readUInt32BE(img.length - 4);
    const [summaryMsg] = messages(img.subarray(img.length - 4 - sumLen, img.length - 4));
    const summary = fields(summaryMsg!);
    expect(num(summary, 1)).toBe(1n);
    expect(num(summary, 2)).toBe(BigInt(2 ** 32 - 67)); // uint32 of -67
    const sections = new Map(get(summary, 4).map((s) => {
      const f = fields(s as Buffer);
      return [buf(f, 1).toString(), img.subarray(Number(num(f, 3)), Number(num(f, 3) + num(f, 2)))];
    }));
    expect([...sections.keys()]).toEqual(['NS_INFO', 'INODE', 'INODE_DIR', 'STRING_TABLE']);
    // the sections tile the file from the magic to the summary
    let end = 8;
    for (const s of get(summary, 4)) {
      const f = fields(s as Buffer);
      expect(Number(num(f, 3))).toBe(end);
      end += Number(num(f, 2));
    }
    expect(end).toBe(img.length - 4 - sumLen);

    const ns = fields(messages(sections.get('NS_INFO')!)[0]!);
    expect(num(ns, 5)).toBe(BigInt(first + 3)); // lastAllocatedBlockId
    const strings = messages(sections.get('STRING_TABLE')!).map(fields);
    expect(num(strings[0]!, 1)).toBe(2n);
    const table = new Map(strings.slice(1).map((e) => [num(e, 1), buf(e, 2).toString()]));

    const [head, ...inodes] = messages(sections.get('INODE')!).map(fields);
    expect(num(head!, 2)).toBe(4n); // root + 3 files
    expect(num(head!, 1)).toBe(BigInt(ROOT_INODE_ID + 3));
    const rootNode = inodes[0]!;
    expect(num(rootNode, 1)).toBe(2n); // DIRECTORY
    expect(num(rootNode, 2)).toBe(BigInt(ROOT_INODE_ID));
    const rootDir = fields(buf(rootNode, 5));
    expect(num(rootDir, 2)).toBe((1n << 63n) - 1n);
    expect(num(rootDir, 3)).toBe((1n << 64n) - 1n); // -1
    const perm = (p: bigint) => [table.get(p >> 40n), table.get((p >> 16n) & 0xffffffn), Number(p & 0xffffn).toString(8)];
    expect(perm(num(rootDir, 4))).toEqual(['etl', 'hadoop', '555']);
    const files = inodes.slice(1).map((n) => {
      expect(num(n, 1)).toBe(1n); // FILE
      const f = fields(buf(n, 4));
      expect(perm(num(f, 5))).toEqual(['etl', 'hadoop', '444']);
      expect(num(f, 1)).toBe(1n); // replication
      expect(num(f, 4)).toBe(1048576n);
      expect(num(f, 10)).toBe(1n); // PROVIDED storage policy
      const blocks = get(f, 6).map((b) => fields(b as Buffer)).map((b) => [Number(num(b, 1)), Number(num(b, 2)), Number(num(b, 3))]);
      return [buf(n, 3).toString(), Number(num(n, 2)), blocks];
    });
    expect(files).toEqual([
      ['livemr_a.log', ROOT_INODE_ID + 1, [[first, 1001, 6]]],
      ['livemr_b', ROOT_INODE_ID + 2, [[first + 1, 1001, 1048576], [first + 2, 1001, 1048576], [first + 3, 1001, 524288]]],
      ['livemr_empty', ROOT_INODE_ID + 3, []],
    ]);
    const [dirEntry] = messages(sections.get('INODE_DIR')!).map(fields);
    expect(num(dirEntry!, 1)).toBe(BigInt(ROOT_INODE_ID));
    const packedChildren = buf(dirEntry!, 2);
    const at = { p: 0 };
    const kids: number[] = [];
    while (at.p < packedChildren.length) kids.push(Number(varint(packedChildren, at)));
    expect(kids).toEqual([ROOT_INODE_ID + 1, ROOT_INODE_ID + 2, ROOT_INODE_ID + 3]);
  });

  it('exports the named files only (with or without livemr_), under the path the DataNode sees; files that may grow have no path handle', () => {
    const r = exportProvided({ mount, out: path.join(dir, 'out2'), names: ['b', 'livemr_a.log'], mountPath: '/srv/livemr', allowGrowth: ['b'] });
    expect(r.files.map((f) => [f.uri, f.exact])).toEqual([['file:/srv/livemr/livemr_a.log', true], ['file:/srv/livemr/livemr_b', false]]);
    const lines = fs.readFileSync(r.aliasMap, 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(lines.map((l) => l.length)).toEqual([6, 5]); // one 128 MiB block each
    expect(Buffer.from(lines[0]![5]!, 'base64').toString('latin1')).toContain('file:/srv/livemr/livemr_a.log');
    const all = exportProvided({ mount, out: path.join(dir, 'out2b'), allowGrowth: '*' });
    expect(all.files.some((f) => f.exact)).toBe(false);
    expect(r.providedDataDir).toBe('[PROVIDED]file:///srv/livemr');
    expect(r.blockSize).toBe(128 * 1024 * 1024);
    expect(r.blockPoolId).toMatch(/^BP-\d+-127\.0\.0\.1-\d+$/);
    expect(r.clusterId).toMatch(/^CID-[0-9a-f-]{36}$/);
  });

  it('refuses: an existing output, a name not on the mount, a path Hadoop cannot name, a bad layout version', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ExportError);
        return [(e as ExportError).code, (e as Error).message];
      }
      return ['none', ''];
    };
    fs.mkdirSync(path.join(dir, 'taken'));
    expect(code(() => exportProvided({ mount, out: path.join(dir, 'taken') }))[0]).toBe('PROVIDED_INPUT');
    expect(code(() => exportProvided({ mount, out: path.join(dir, 'o3'), names: ['nope'] }))).toEqual(['PROVIDED_INPUT', `not on the mount ${mount}: livemr_nope`]);
    expect(code(() => exportProvided({ mount, out: path.join(dir, 'o4'), mountPath: '/srv/a,b' }))[0]).toBe('PROVIDED_INPUT');
    expect(code(() => exportProvided({ mount, out: path.join(dir, 'o5'), layoutVersion: 3 }))[0]).toBe('PROVIDED_INPUT');
    expect(code(() => exportProvided({ mount: path.join(dir, 'missing'), out: path.join(dir, 'o6') }))[0]).toBe('PROVIDED_INPUT');
    expect(code(() => exportProvided({ mount, out: path.join(dir, 'o7'), names: ['b'], allowGrowth: ['a.log'] }))).toEqual(['PROVIDED_INPUT', 'allow-growth names files that are not exported: livemr_a.log']);
    for (const o of ['o3', 'o4', 'o5', 'o6', 'o7']) expect(fs.existsSync(path.join(dir, o))).toBe(false);
  });
});
