// A NameNode storage directory holding one fsimage (txid 0) whose files have PROVIDED blocks: what a
// NameNode started on it (dfs.namenode.name.dir) loads, as it loads the output of Hadoop's fs2img.
//
//   DIR/current/VERSION                        NameNode storage properties (ids, layout version)
//   DIR/current/seen_txid                      0
//   DIR/current/fsimage_0000000000000000000    "HDFSIMG1", sections, FileSummary, its length (BE u32)
//   DIR/current/fsimage_0000000000000000000.md5
//
// The image has a root directory and one file per exported composition, written with the sections a
// NameNode needs to load a namespace (NS_INFO, INODE, INODE_DIR, STRING_TABLE); each section is a
// run of length-delimited messages and the FileSummary at the end indexes them by byte offset. The
// field numbers are those of Hadoop's fsimage.proto / hdfs.proto (noted at each message).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { delimited, ProtoWriter } from './protobuf.js';

/** The image file name for transaction id 0. */
export const IMAGE_NAME = 'fsimage_0000000000000000000';
/** INodeId.ROOT_INODE_ID: the root directory's id in every HDFS namespace. */
export const ROOT_INODE_ID = 16385;
/** HdfsConstants.PROVIDED_STORAGE_POLICY_ID. */
export const PROVIDED_STORAGE_POLICY_ID = 1;
/** Generation stamps as fs2img sets them: legacy stamp 1000, blocks and the current stamp 1001. */
export const GENSTAMP_V1 = 1000;
export const GENSTAMP = 1001;
const MAGIC = Buffer.from('HDFSIMG1', 'latin1');
/** DirectoryWithQuotaFeature defaults: namespace quota Long.MAX_VALUE, space quota -1 (none). */
const NS_QUOTA = (1n << 63n) - 1n;
const SPACE_QUOTA = -1n;

export interface ImageBlock {
  id: number;
  length: number;
}

export interface ImageFile {
  /** the name in the root directory (livemr_NAME) */
  name: string;
  mtimeMs: number;
  blocks: ImageBlock[];
}

export interface NameDirSpec {
  layoutVersion: number;
  namespaceId: number;
  clusterId: string;
  blockPoolId: string;
  owner: string;
  group: string;
  fileMode: number;
  dirMode: number;
  blockSize: number;
  replication: number;
  rootMtimeMs: number;
  /** the highest block id the image uses (the NameNode allocates new ones above it) */
  lastBlockId: number;
  files: ImageFile[];
}

/** The permission long: user string id << 40 | group string id << 16 | mode bits. */
function permission(userId: number, groupId: number, mode: number): bigint {
  return (BigInt(userId) << 40n) | (BigInt(groupId) << 16n) | BigInt(mode & 0xffff);
}

/** The fsimage bytes for the spec. */
export function imageBytes(s: NameDirSpec): Buffer {
  const USER_ID = 1;
  const GROUP_ID = 2;
  const parts: Buffer[] = [MAGIC];
  let offset = MAGIC.length;
  const sections: { name: string; offset: number; length: number }[] = [];
  const section = (name: string, chunks: Buffer[]) => {
    const b = Buffer.concat(chunks);
    sections.push({ name, offset, length: b.length });
    parts.push(b);
    offset += b.length;
  };

  // NameSystemSection: genstampV1 2, genstampV2 3, genstampV1Limit 4, lastAllocatedBlockId 5, transactionId 6
  section('NS_INFO', [delimited(new ProtoWriter().uint64(2, GENSTAMP_V1).uint64(3, GENSTAMP).uint64(4, 0).uint64(5, s.lastBlockId).uint64(6, 0))]);

  // INodeSection: lastInodeId 1, numInodes 2; then the INodes. INode: type 1 (FILE 1, DIRECTORY 2),
  // id 2, name 3, file 4, directory 5. INodeDirectory: modificationTime 1, nsQuota 2, dsQuota 3,
  // permission 4 (fixed64). INodeFile: replication 1, modificationTime 2, accessTime 3,
  // preferredBlockSize 4, permission 5 (fixed64), blocks 6, storagePolicyID 10.
  // BlockProto: blockId 1, genStamp 2, numBytes 3.
  const inodes: Buffer[] = [];
  const dir = new ProtoWriter().uint64(1, s.rootMtimeMs).uint64(2, NS_QUOTA).uint64(3, SPACE_QUOTA).fixed64(4, permission(USER_ID, GROUP_ID, s.dirMode));
  inodes.push(delimited(new ProtoWriter().uint64(1, 2).uint64(2, ROOT_INODE_ID).bytesField(3, Buffer.alloc(0)).bytesField(5, dir)));
  const children: number[] = [];
  s.files.forEach((f, i) => {
    const id = ROOT_INODE_ID + 1 + i;
    children.push(id);
    const file = new ProtoWriter().uint32(1, s.replication).uint64(2, f.mtimeMs).uint64(3, f.mtimeMs).uint64(4, s.blockSize)
      .fixed64(5, permission(USER_ID, GROUP_ID, s.fileMode));
    for (const b of f.blocks) file.bytesField(6, new ProtoWriter().uint64(1, b.id).uint64(2, GENSTAMP).uint64(3, b.length));
    file.uint32(10, PROVIDED_STORAGE_POLICY_ID);
    inodes.push(delimited(new ProtoWriter().uint64(1, 1).uint64(2, id).bytesField(3, f.name).bytesField(4, file)));
  });
  const lastInodeId = ROOT_INODE_ID + s.files.length;
  section('INODE', [delimited(new ProtoWriter().uint64(1, lastInodeId).uint64(2, inodes.length)), ...inodes]);

  // INodeDirectorySection: DirEntry parent 1, children 2 (packed); none for an empty directory
  section('INODE_DIR', children.length ? [delimited(new ProtoWriter().uint64(1, ROOT_INODE_ID).packed(2, children))] : []);

  // StringTableSection: numEntry 1; Entry id 1, str 2 (the ids the permission longs name)
  section('STRING_TABLE', [
    delimited(new ProtoWriter().uint32(1, 2)),
    delimited(new ProtoWriter().uint32(1, USER_ID).bytesField(2, s.owner)),
    delimited(new ProtoWriter().uint32(1, GROUP_ID).bytesField(2, s.group)),
  ]);

  // FileSummary: ondiskVersion 1, layoutVersion 2, sections 4 (Section: name 1, length 2, offset 3)
  const summary = new ProtoWriter().uint32(1, 1).uint32(2, s.layoutVersion);
  for (const x of sections) summary.bytesField(4, new ProtoWriter().bytesField(1, x.name).uint64(2, x.length).uint64(3, x.offset));
  const sum = delimited(summary);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(sum.length);
  parts.push(sum, len);
  return Buffer.concat(parts);
}

/** NNStorage's VERSION file (java.util.Properties text). */
export function versionFile(s: Pick<NameDirSpec, 'namespaceId' | 'clusterId' | 'blockPoolId' | 'layoutVersion'>): string {
  return [
    '#written by livemr hdfs export',
    `namespaceID=${s.namespaceId}`,
    `clusterID=${s.clusterId}`,
    'cTime=0',
    'storageType=NAME_NODE',
    `blockpoolID=${s.blockPoolId}`,
    `layoutVersion=${s.layoutVersion}`,
    '',
  ].join('\n');
}

function writeSynced(file: string, data: string | Buffer): void {
  const fd = fs.openSync(file, 'wx', 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes DIR/current/{VERSION,seen_txid,fsimage_0…,fsimage_0….md5}; DIR must not hold a current/. */
export function writeNameDir(dir: string, s: NameDirSpec): { image: string; md5: string; bytes: number } {
  const cur = path.join(dir, 'current');
  fs.mkdirSync(cur, { recursive: false, mode: 0o755 });
  const image = imageBytes(s);
  const md5 = createHash('md5').update(image).digest('hex');
  writeSynced(path.join(cur, IMAGE_NAME), image);
  writeSynced(path.join(cur, `${IMAGE_NAME}.md5`), `${md5} *${IMAGE_NAME}\n`);
  writeSynced(path.join(cur, 'seen_txid'), '0\n');
  writeSynced(path.join(cur, 'VERSION'), versionFile(s));
  return { image: path.join(cur, IMAGE_NAME), md5, bytes: image.length };
}
