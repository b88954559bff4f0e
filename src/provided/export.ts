// `livemr hdfs export`: a snapshot of the composed files on a FUSE mount as HDFS PROVIDED storage
// (docs/hdfs.md, "PROVIDED export"). The output directory holds what Hadoop's fs2img makes for a
// remote namespace, plus the settings that tie a NameNode and a DataNode to it:
//
//   OUT/name/current/...               the NameNode storage directory (fsimage, txid 0; fsimage.ts)
//   OUT/aliasmap/blocks_<BPID>.csv     TextFileRegionAliasMap: block id → region of file:/MOUNT/livemr_x
//                                      (+ the file's path handle: path and mtime, as fs2img writes)
//   OUT/hdfs-site.xml                  the dfs.* keys for the NameNode and the DataNode
//   OUT/export.json                    what was exported (names, lengths, blocks, ids)
//
// Each file's length is its length on the mount at export time: the image is a snapshot, its blocks
// are fixed-size regions of the mounted files, and the DataNode reads them through the mount. Each
// region carries the file's exact path handle (RawLocalFileSystem's: path + mtime), so the DataNode
// refuses to read a file that changed since (InvalidPathHandleException "Content changed") rather
// than serve bytes of another file published under the name; files named in `allowGrowth` go
// without it and stay readable while they grow. The output appears whole or not at all (built
// beside OUT, renamed into place).
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExportError } from './errors.js';
import { GENSTAMP, writeNameDir, type ImageFile } from './fsimage.js';
import { ProtoWriter } from './protobuf.js';

const MiB = 1024 * 1024;
export const DEFAULT_EXPORT_BLOCK_SIZE = 128 * MiB;
/** NameNodeLayoutVersion.CURRENT_LAYOUT_VERSION of Hadoop 3.4 (NVDIMM_SUPPORT; 3.3 is -66): a NameNode refuses others without -upgrade. */
export const HADOOP_3_4_LAYOUT_VERSION = -67;
/** fs2img's FixedBlockResolver starts here (ids above SequentialBlockIdGenerator's reserved range). */
export const DEFAULT_START_BLOCK_ID = 2 ** 30;
export const PROVIDED_STORAGE_ID = 'DS-PROVIDED';
export const TEXT_ALIAS_MAP_CLASS = 'org.apache.hadoop.hdfs.server.common.blockaliasmap.impl.TextFileRegionAliasMap';
const FILE_PREFIX = 'livemr_';
/** What Hadoop's Path takes verbatim and the alias map's ',' lines cannot confuse. */
const SAFE_PATH = /^\/[A-Za-z0-9/._@+~-]*$/;

export interface ExportOptions {
  /** the FUSE mount of the composed files: names and lengths are read here */
  mount: string;
  /** the output directory; must not exist */
  out: string;
  /** composed files to export (livemr_x or x); default every livemr_* file on the mount */
  names?: string[];
  /** the mount's path as the DataNode sees it (default: mount) */
  mountPath?: string;
  blockSize?: number;
  owner?: string;
  group?: string;
  clusterId?: string;
  blockPoolId?: string;
  layoutVersion?: number;
  startBlockId?: number;
  /** files (livemr_x or x) whose regions carry no path handle, or '*' for all (default none) */
  allowGrowth?: string[] | '*';
}

export interface ExportedFile {
  name: string;
  /** the region path in the alias map */
  uri: string;
  length: number;
  mtimeMs: number;
  /** the regions carry the file's exact path handle: any change to the file fails its reads */
  exact: boolean;
  blocks: { id: number; offset: number; length: number }[];
}

export interface ExportResult {
  out: string;
  nameDir: string;
  aliasMap: string;
  siteXml: string;
  manifest: string;
  clusterId: string;
  blockPoolId: string;
  namespaceId: number;
  layoutVersion: number;
  blockSize: number;
  /** `[PROVIDED]file://MOUNT`, the entry for dfs.datanode.data.dir */
  providedDataDir: string;
  files: ExportedFile[];
  /** the dfs.* settings written to hdfs-site.xml */
  settings: Record<string, string>;
}

const input = (m: string) => new ExportError('PROVIDED_INPUT', m);

function checkPath(p: string, what: string): string {
  const abs = path.resolve(p).replace(/\/+$/, '') || '/';
  if (!SAFE_PATH.test(abs)) throw input(`${what} '${abs}' has characters a Hadoop path or the alias map cannot carry (allowed: A-Z a-z 0-9 / . _ @ + ~ -)`);
  return abs;
}

/** NNStorage's block pool id shape: BP-<random>-<ip>-<creation ms>. */
function newBlockPoolId(now: number): string {
  return `BP-${randomInt(1, 2 ** 31 - 1)}-127.0.0.1-${now}`;
}

/** RawLocalFileSystem's exact PathHandle (LocalFileSystemPathHandleProto: mtime 1, path 2), base64. */
function pathHandle(uri: string, mtimeMs: number): string {
  return new ProtoWriter().uint64(1, mtimeMs).bytesField(2, uri).finish().toString('base64');
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The composed files to export, with their lengths now: one stat each, in name order. */
function snapshot(mount: string, names: string[] | undefined): { name: string; length: number; mtimeMs: number }[] {
  let listed: string[];
  try {
    listed = fs.readdirSync(mount).filter((n) => n.startsWith(FILE_PREFIX) && n.length > FILE_PREFIX.length);
  } catch (e) {
    throw input(`reading the mount ${mount}: ${(e as Error).message}`);
  }
  let wanted = listed;
  if (names && names.length) {
    const have = new Set(listed);
    wanted = [...new Set(names.map((n) => (n.startsWith(FILE_PREFIX) ? n : FILE_PREFIX + n)))];
    const missing = wanted.filter((n) => !have.has(n));
    if (missing.length) throw input(`not on the mount ${mount}: ${missing.join(', ')}`);
  }
  wanted.sort();
  return wanted.map((name) => {
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(path.join(mount, name), { bigint: true });
    } catch (e) {
      throw input(`${name}: ${(e as Error).message}`);
    }
    if (!st.isFile()) throw input(`${name} on ${mount} is not a regular file`);
    // whole milliseconds, truncated, as Java's File.lastModified() (the path handle compares them)
    return { name, length: Number(st.size), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
  });
}

export function exportProvided(o: ExportOptions): ExportResult {
  const mount = checkPath(o.mount, 'mount');
  const mountPath = checkPath(o.mountPath ?? mount, 'mount path');
  const out = path.resolve(o.out);
  const blockSize = o.blockSize ?? DEFAULT_EXPORT_BLOCK_SIZE;
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0) throw input(`bad block size ${blockSize}`);
  const layoutVersion = o.layoutVersion ?? HADOOP_3_4_LAYOUT_VERSION;
  if (!Number.isInteger(layoutVersion) || layoutVersion >= 0) throw input(`bad layout version ${layoutVersion} (NameNode layout versions are negative)`);
  const startBlockId = o.startBlockId ?? DEFAULT_START_BLOCK_ID;
  if (!Number.isSafeInteger(startBlockId) || startBlockId < 0) throw input(`bad start block id ${startBlockId}`);
  const owner = o.owner ?? 'livemr';
  const group = o.group ?? 'livemr';
  for (const [k, v] of [['owner', owner], ['group', group]] as const) if (!/^[^\s:/]{1,256}$/.test(v)) throw input(`bad ${k} '${v}'`);
  const now = Date.now();
  const clusterId = o.clusterId ?? `CID-${randomUUID()}`;
  const blockPoolId = o.blockPoolId ?? newBlockPoolId(now);
  // the alias map's file name is blocks_<BPID>.csv, and Hadoop reads the id back up to the first '.'
  // of the name only for logging; a delimiter or a path separator would break the file, though
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(blockPoolId)) throw input(`bad block pool id '${blockPoolId}'`);
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(clusterId)) throw input(`bad cluster id '${clusterId}'`);
  if (fs.existsSync(out)) throw input(`${out} exists: an export never writes over a directory (a NameNode's storage may be there)`);

  const taken = snapshot(mount, o.names);
  const growable = o.allowGrowth === '*' ? undefined : new Set((o.allowGrowth ?? []).map((n) => (n.startsWith(FILE_PREFIX) ? n : FILE_PREFIX + n)));
  const unknown = growable ? [...growable].filter((n) => !taken.some((f) => f.name === n)) : [];
  if (unknown.length) throw input(`allow-growth names files that are not exported: ${unknown.join(', ')}`);
  let next = startBlockId;
  const files: ExportedFile[] = taken.map((f) => {
    const blocks: ExportedFile['blocks'] = [];
    for (let off = 0; off < f.length; off += blockSize) blocks.push({ id: ++next, offset: off, length: Math.min(blockSize, f.length - off) });
    return { ...f, uri: `file:${mountPath === '/' ? '' : mountPath}/${f.name}`, exact: growable !== undefined && !growable.has(f.name), blocks };
  });
  if (next > Number.MAX_SAFE_INTEGER) throw input('too many blocks');

  const parent = path.dirname(out);
  const tmp = path.join(parent, `.${path.basename(out)}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(tmp, { mode: 0o755 });
  } catch (e) {
    throw new ExportError('PROVIDED_OUTPUT', `creating ${tmp}: ${(e as Error).message}`);
  }
  const namespaceId = randomInt(1, 2 ** 31 - 1);
  const aliasName = `blocks_${blockPoolId}.csv`;
  const final = {
    nameDir: path.join(out, 'name'),
    aliasMap: path.join(out, 'aliasmap', aliasName),
    siteXml: path.join(out, 'hdfs-site.xml'),
    manifest: path.join(out, 'export.json'),
  };
  const providedDataDir = `[PROVIDED]file://${mountPath}`;
  const settings: Record<string, string> = {
    'dfs.namenode.provided.enabled': 'true',
    'dfs.namenode.name.dir': `file://${final.nameDir}`,
    'dfs.provided.storage.id': PROVIDED_STORAGE_ID,
    'dfs.provided.aliasmap.class': TEXT_ALIAS_MAP_CLASS,
    'dfs.provided.aliasmap.text.read.file': `file://${final.aliasMap}`,
    'dfs.provided.aliasmap.text.delimiter': ',',
    'dfs.datanode.data.dir': providedDataDir,
  };
  try {
    fs.mkdirSync(path.join(tmp, 'name'), { mode: 0o755 });
    const imageFiles: ImageFile[] = files.map((f) => ({ name: f.name, mtimeMs: f.mtimeMs, blocks: f.blocks.map((b) => ({ id: b.id, length: b.length })) }));
    writeNameDir(path.join(tmp, 'name'), {
      layoutVersion, namespaceId, clusterId, blockPoolId, owner, group, fileMode: 0o444, dirMode: 0o555, blockSize, replication: 1,
      rootMtimeMs: now, lastBlockId: next, files: imageFiles,
    });
    fs.mkdirSync(path.join(tmp, 'aliasmap'), { mode: 0o755 });
    // TextFileRegionAliasMap lines: blockId,path,offset,length,genStamp[,nonce]
    const lines = files.flatMap((f) => {
      const nonce = f.exact ? `,${pathHandle(f.uri, f.mtimeMs)}` : '';
      return f.blocks.map((b) => `${b.id},${f.uri},${b.offset},${b.length},${GENSTAMP}${nonce}\n`);
    });
    fs.writeFileSync(path.join(tmp, 'aliasmap', aliasName), lines.join(''), { mode: 0o644, flag: 'wx' });
    const props = Object.entries(settings).map(([k, v]) => `  <property><name>${k}</name><value>${xmlEscape(v)}</value></property>\n`).join('');
    fs.writeFileSync(path.join(tmp, 'hdfs-site.xml'),
      `<?xml version="1.0"?>\n<!-- written by livemr hdfs export: merge into the NameNode's and the DataNode's hdfs-site.xml;\n     add the DataNode's own [DISK] directories to dfs.datanode.data.dir -->\n<configuration>\n${props}</configuration>\n`,
      { mode: 0o644, flag: 'wx' });
    const manifest = { format: 1, createdMs: now, mount, mountPath, blockSize, clusterId, blockPoolId, namespaceId, layoutVersion, files, settings };
    fs.writeFileSync(path.join(tmp, 'export.json'), `${JSON.stringify(manifest, null, 1)}\n`, { mode: 0o644, flag: 'wx' });
    for (const d of [path.join(tmp, 'aliasmap'), path.join(tmp, 'name'), tmp]) {
      const fd = fs.openSync(d, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof ExportError) throw e;
    throw new ExportError('PROVIDED_OUTPUT', `writing ${out}: ${(e as Error).message}`);
  }
  return { out, ...final, clusterId, blockPoolId, namespaceId, layoutVersion, blockSize, providedDataDir, files, settings };
}
