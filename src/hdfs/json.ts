// WebHDFS JSON bodies (WebHDFS.md, "JSON Schemas"), field for field.

import { blocksOf } from './blocks.js';
import type { FileEntry } from './namespace.js';

export interface Presentation {
  owner: string;
  group: string;
  blockSize: number;
}

/** Stable 48-bit file id from the name, above HDFS's reserved inode ids. */
export function fileId(name: string): number {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(name)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffn;
  return Number(h) + 16386;
}

export function fileStatus(f: FileEntry, p: Presentation, pathSuffix = f.name): Record<string, unknown> {
  return {
    accessTime: f.mtimeMs,
    blockSize: p.blockSize,
    childrenNum: 0,
    fileId: fileId(f.name),
    group: p.group,
    length: f.length,
    modificationTime: f.mtimeMs,
    owner: p.owner,
    pathSuffix,
    permission: '444',
    replication: 1,
    storagePolicy: 0,
    type: 'FILE',
  };
}

export function rootStatus(files: FileEntry[], p: Presentation, startedMs: number, pathSuffix = ''): Record<string, unknown> {
  return {
    accessTime: 0,
    blockSize: 0,
    childrenNum: files.length,
    fileId: 16385, // HDFS's root inode id
    group: p.group,
    length: 0,
    modificationTime: files.reduce((m, f) => Math.max(m, f.mtimeMs), startedMs),
    owner: p.owner,
    pathSuffix,
    permission: '555',
    replication: 0,
    storagePolicy: 0,
    type: 'DIRECTORY',
  };
}

export function blockLocations(f: FileEntry, p: Presentation, offset: number, length: number): Record<string, unknown> {
  const { host, addr } = f.location;
  return {
    BlockLocations: {
      BlockLocation: blocksOf(f.length, p.blockSize, offset, length).map((b) => ({
        cachedHosts: [],
        corrupt: false,
        hosts: [host],
        length: b.length,
        names: [addr],
        offset: b.offset,
        storageIds: [`livemr-${host}`],
        storageTypes: ['DISK'],
        topologyPaths: [`/default-rack/${addr}`],
      })),
    },
  };
}

export function contentSummary(files: FileEntry[], directories: number): Record<string, unknown> {
  const length = files.reduce((a, f) => a + f.length, 0);
  return {
    ContentSummary: {
      directoryCount: directories,
      fileCount: files.length,
      length,
      quota: -1,
      spaceConsumed: length, // replication 1
      spaceQuota: -1,
      typeQuota: {},
    },
  };
}

export function quotaUsage(files: FileEntry[], directories: number): Record<string, unknown> {
  const length = files.reduce((a, f) => a + f.length, 0);
  return {
    QuotaUsage: { fileAndDirectoryCount: files.length + directories, quota: -1, spaceConsumed: length, spaceQuota: -1, typeQuota: {} },
  };
}

export function serverDefaults(p: Presentation): Record<string, unknown> {
  return {
    FsServerDefaults: {
      replication: 1,
      encryptDataTransfer: false,
      defaultStoragePolicyId: 7, // HOT
      writePacketSize: 65536,
      fileBufferSize: 4096,
      checksumType: 0, // DataChecksum.Type.NULL: composed files carry no checksums
      trashInterval: 0,
      keyProviderUri: '',
      blockSize: p.blockSize,
      bytesPerChecksum: 512,
    },
  };
}

/**
 * LocatedBlocks: what WebHdfsFileSystem before 3.4 asks for block locations (op GET_BLOCK_LOCATIONS,
 * a NameNode-internal op WebHDFS.md does not list; 3.4 falls back to it when GETFILEBLOCKLOCATIONS
 * is unknown). The "DataNode" of every block is the agent that serves the file.
 */
export function locatedBlocks(f: FileEntry, p: Presentation, offset: number, length: number): Record<string, unknown> {
  const { host, addr } = f.location;
  const colon = addr.lastIndexOf(':');
  const ip = colon > 0 ? addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1') : addr;
  const port = colon > 0 ? Number(addr.slice(colon + 1)) : 0;
  const datanode = {
    ipAddr: ip,
    hostName: host,
    storageID: `livemr-${host}`,
    xferPort: port,
    infoPort: port,
    infoSecurePort: 0,
    ipcPort: port,
    networkLocation: '/default-rack',
    adminState: 'NORMAL',
  };
  const idBase = (fileId(f.name) % 2 ** 32) * 2 ** 16;
  const all = blocksOf(f.length, p.blockSize);
  const located = (b: { offset: number; length: number }) => ({
    block: { blockPoolId: 'BP-livemr', blockId: idBase + Math.floor(b.offset / p.blockSize), numBytes: b.length, generationStamp: 1 },
    locations: [datanode],
    startOffset: b.offset,
    isCorrupt: false,
    cachedLocations: [],
    storageTypes: ['DISK'],
  });
  const last = all.at(-1);
  return {
    LocatedBlocks: {
      fileLength: f.length,
      isUnderConstruction: false,
      locatedBlocks: blocksOf(f.length, p.blockSize, offset, length).map(located),
      lastLocatedBlock: last ? located(last) : null,
      isLastBlockComplete: true,
    },
  };
}
