// qcow2 header, header extensions and snapshot table, as specified in QEMU's docs/interop/qcow2.txt.
// Every field that sizes an allocation or a loop is checked before use.
import { CorruptImageError, UnsupportedImageError } from './errors.js';
import type { ImageFile } from './file.js';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;
const EXT_DATA_FILE = 0x44415441;
const EXT_BITMAPS = 0x23852875;

/** QEMU's own limits, used here to bound allocations driven by header fields. */
const MAX_L1_BYTES = 32 * 1024 * 1024;
const MAX_SNAPSHOTS = 65536;
const MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024;
const MAX_SNAPSHOT_EXTRA = 1024;
const MAX_NAME = 1023;
/** QEMU's bounds on the refcount table (8 MiB) and the bitmap directory (64 MiB) */
export const MAX_REFCOUNT_TABLE_BYTES = 8 * 1024 * 1024;
const MAX_BITMAP_DIRECTORY = 64 * 1024 * 1024;

export interface FeatureName { type: 'incompatible' | 'compatible' | 'autoclear'; bit: number; name: string }

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** virtual disk size in bytes */
  size: number;
  l1Size: number;
  l1TableOffset: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  headerLength: number;
  compression: 'deflate' | 'zstd';
  dirty: boolean;
  extendedL2: boolean;
  /** guest data lives in an external data file */
  externalData: boolean;
  dataFileRaw: boolean;
  lazyRefcounts: boolean;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  featureNames: FeatureName[];
  /** refcount table: where, and how many clusters long */
  refcountTableOffset: number;
  refcountTableClusters: number;
  /** where the header itself ends in the file (header, extensions, backing file name) */
  headerEnd: number;
  /** persistent dirty bitmaps' directory (bitmaps extension), if any */
  bitmapDirectory?: { offset: number; size: number; count: number };
}

export interface Qcow2Snapshot {
  id: string;
  name: string;
  l1TableOffset: number;
  l1Size: number;
  /** virtual size at snapshot time (header size if the entry does not record it) */
  size: number;
}

function u64(buf: Buffer, at: number, what: string, path: string): number {
  const v = buf.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptImageError(`${what} ${v} is out of range`, at, path);
  return Number(v);
}

export function isQcow2(first: Buffer): boolean {
  return first.length >= 4 && first.readUInt32BE(0) === QCOW2_MAGIC;
}

/** Entries per L2 table (8-byte entries, 16 with extended L2). */
export function l2Entries(h: Qcow2Header): number {
  return h.clusterSize / (h.extendedL2 ? 16 : 8);
}

export async function readQcow2Header(file: ImageFile): Promise<Qcow2Header> {
  const path = file.path;
  if (file.size < 72) throw new CorruptImageError(`file too short for a qcow2 header (${file.size} bytes)`, 0, path);
  const fixed = await file.readMeta(0, Math.min(file.size, 112), 'header');
  if (fixed.readUInt32BE(0) !== QCOW2_MAGIC) throw new UnsupportedImageError('not a qcow2 image (bad magic)', path);
  const version = fixed.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new UnsupportedImageError(`qcow2 version ${version} is not supported (2 and 3 are)`, path);

  const clusterBits = fixed.readUInt32BE(20);
  if (clusterBits < 9) throw new CorruptImageError(`cluster_bits ${clusterBits} is below 9`, 20, path);
  if (clusterBits > 21) throw new UnsupportedImageError(`cluster size 2^${clusterBits} exceeds 2 MiB`, path);
  const clusterSize = 2 ** clusterBits;

  const cryptMethod = fixed.readUInt32BE(32);
  if (cryptMethod !== 0) {
    throw new UnsupportedImageError(`encrypted images are refused (crypt_method ${cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : cryptMethod})`, path);
  }

  const size = fixed.readBigUInt64BE(24);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnsupportedImageError(`virtual size ${size} exceeds 2^53`, path);

  let incompatible = 0n, compatible = 0n, autoclear = 0n, headerLength = 72, compressionType = 0;
  if (version === 3) {
    if (fixed.length < 104) throw new CorruptImageError('file too short for a version 3 header', 0, path);
    incompatible = fixed.readBigUInt64BE(72);
    compatible = fixed.readBigUInt64BE(80);
    autoclear = fixed.readBigUInt64BE(88);
    const refcountOrder = fixed.readUInt32BE(96);
    if (refcountOrder > 6) throw new CorruptImageError(`refcount_order ${refcountOrder} exceeds 6`, 96, path);
    headerLength = fixed.readUInt32BE(100);
    if (headerLength < 104 || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw new CorruptImageError(`header_length ${headerLength} is invalid (>= 104, multiple of 8, within the first cluster)`, 100, path);
    }
    if (headerLength > 104 && fixed.length > 104) compressionType = fixed.readUInt8(104);
  }

  const head = await file.readMeta(0, Math.min(clusterSize, file.size), 'first cluster');
  const ext = parseExtensions(head, version === 3 ? headerLength : 72, fixed, clusterSize, path);

  if (incompatible & INCOMPAT_CORRUPT) {
    throw new CorruptImageError('image is marked corrupt (incompatible feature bit 1); repair it with qemu-img check -r', 72, path);
  }
  const unknown = incompatible & ~INCOMPAT_KNOWN;
  if (unknown) {
    const names: string[] = [];
    for (let bit = 0; bit < 64; bit++) {
      if (!(unknown & (1n << BigInt(bit)))) continue;
      const f = ext.names.find((n) => n.type === 'incompatible' && n.bit === bit);
      names.push(f ? `${bit} (${f.name})` : String(bit));
    }
    throw new UnsupportedImageError(`unknown incompatible feature bits: ${names.join(', ')}`, path);
  }
  const extendedL2 = (incompatible & INCOMPAT_EXTL2) !== 0n;
  if (extendedL2 && clusterBits < 14) throw new CorruptImageError(`extended L2 entries need cluster_bits >= 14, got ${clusterBits}`, 20, path);
  let compression: 'deflate' | 'zstd' = 'deflate';
  if (incompatible & INCOMPAT_COMPRESSION) {
    if (compressionType === 0) throw new CorruptImageError('compression type bit set but compression_type is zlib', 104, path);
    if (compressionType !== 1) throw new UnsupportedImageError(`compression_type ${compressionType} is unknown`, path);
    compression = 'zstd';
  } else if (compressionType !== 0) {
    throw new CorruptImageError(`compression_type ${compressionType} without the compression type bit`, 104, path);
  }

  const l1Size = fixed.readUInt32BE(36);
  if (l1Size * 8 > MAX_L1_BYTES) throw new UnsupportedImageError(`L1 table of ${l1Size} entries exceeds QEMU's 32 MiB limit`, path);
  const l1TableOffset = u64(fixed, 40, 'l1_table_offset', path);
  if (l1Size > 0 && l1TableOffset % clusterSize !== 0) throw new CorruptImageError('L1 table offset is not cluster aligned', 40, path);
  const needed = Math.ceil(Number(size) / (clusterSize * (clusterSize / (extendedL2 ? 16 : 8))));
  if (l1Size < needed) throw new CorruptImageError(`L1 table has ${l1Size} entries, the virtual size needs ${needed}`, 36, path);

  const nbSnapshots = fixed.readUInt32BE(60);
  if (nbSnapshots > MAX_SNAPSHOTS) throw new CorruptImageError(`${nbSnapshots} snapshots exceed the limit of ${MAX_SNAPSHOTS}`, 60, path);
  const snapshotsOffset = u64(fixed, 64, 'snapshots_offset', path);
  if (nbSnapshots > 0 && snapshotsOffset % clusterSize !== 0) throw new CorruptImageError('snapshot table offset is not cluster aligned', 64, path);

  const refcountTableOffset = u64(fixed, 48, 'refcount_table_offset', path);
  const refcountTableClusters = fixed.readUInt32BE(56);
  if (refcountTableOffset % clusterSize !== 0) throw new CorruptImageError('refcount table offset is not cluster aligned', 48, path);
  if (refcountTableClusters * clusterSize > MAX_REFCOUNT_TABLE_BYTES) {
    throw new CorruptImageError(`refcount table of ${refcountTableClusters} clusters exceeds QEMU's 8 MiB limit`, 56, path);
  }

  const externalData = (incompatible & INCOMPAT_DATA_FILE) !== 0n;
  const header: Qcow2Header = {
    version, clusterBits, clusterSize, size: Number(size), l1Size, l1TableOffset, nbSnapshots, snapshotsOffset,
    incompatible, compatible, autoclear, headerLength, compression,
    dirty: (incompatible & INCOMPAT_DIRTY) !== 0n,
    extendedL2, externalData,
    dataFileRaw: externalData && (autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n,
    lazyRefcounts: (compatible & 1n) !== 0n,
    featureNames: ext.names,
    refcountTableOffset, refcountTableClusters,
    headerEnd: Math.max(version === 3 ? headerLength : 72, ext.end),
  };
  if (ext.bitmaps) header.bitmapDirectory = ext.bitmaps;
  if (ext.backingFormat !== undefined) header.backingFormat = ext.backingFormat;
  if (externalData && ext.dataFile !== undefined) header.dataFile = ext.dataFile;

  const backingOffset = u64(fixed, 8, 'backing_file_offset', path);
  if (backingOffset !== 0) {
    const len = fixed.readUInt32BE(16);
    if (len > MAX_NAME) throw new CorruptImageError(`backing file name of ${len} bytes exceeds ${MAX_NAME}`, 16, path);
    if (backingOffset > clusterSize) throw new CorruptImageError('backing file name lies outside the first cluster', 8, path);
    header.backingFile = (await file.readMeta(backingOffset, len, 'backing file name')).toString('utf8');
    header.headerEnd = Math.max(header.headerEnd, backingOffset + len);
  }
  return header;
}

interface Extensions { names: FeatureName[]; backingFormat?: string; dataFile?: string; bitmaps?: { offset: number; size: number; count: number }; end: number }

function parseExtensions(head: Buffer, start: number, fixed: Buffer, clusterSize: number, path: string): Extensions {
  const out: Extensions = { names: [], end: start };
  // Extensions end at the backing file name if it is in the first cluster, else at the cluster end.
  const backingOffset = Number(fixed.readBigUInt64BE(8) & 0xffffffffn);
  const hi = fixed.readUInt32BE(8);
  let end = Math.min(head.length, clusterSize);
  if (hi === 0 && backingOffset > start && backingOffset < end) end = backingOffset;
  let at = start;
  const typesSeen = new Set<number>();
  while (at + 8 <= end) {
    const type = head.readUInt32BE(at);
    const len = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    const dataAt = at + 8;
    if (len > end - dataAt) throw new CorruptImageError(`header extension 0x${type.toString(16)} of ${len} bytes overruns the header area`, at, path);
    const data = head.subarray(dataAt, dataAt + len);
    if (typesSeen.has(type) && type !== EXT_FEATURE_NAMES) {
      throw new CorruptImageError(`header extension 0x${type.toString(16)} appears twice`, at, path);
    }
    typesSeen.add(type);
    if (type === EXT_BACKING_FORMAT) {
      if (len > MAX_NAME) throw new CorruptImageError('backing format name too long', at, path);
      out.backingFormat = data.toString('utf8');
    } else if (type === EXT_DATA_FILE) {
      if (len > MAX_NAME) throw new CorruptImageError('external data file name too long', at, path);
      out.dataFile = data.toString('utf8');
    } else if (type === EXT_BITMAPS) {
      if (len < 24) throw new CorruptImageError('bitmaps extension is too short', at, path);
      const size = data.readBigUInt64BE(8), offset = data.readBigUInt64BE(16);
      if (offset > BigInt(Number.MAX_SAFE_INTEGER) || size > BigInt(MAX_BITMAP_DIRECTORY)) throw new CorruptImageError('bitmap directory out of range', at, path);
      out.bitmaps = { count: data.readUInt32BE(0), size: Number(size), offset: Number(offset) };
    } else if (type === EXT_FEATURE_NAMES) {
      for (let e = 0; e + 48 <= len; e += 48) {
        const t = data[e]!;
        const nameBytes = data.subarray(e + 2, e + 48);
        const nul = nameBytes.indexOf(0);
        out.names.push({
          type: t === 0 ? 'incompatible' : t === 1 ? 'compatible' : 'autoclear',
          bit: data[e + 1]!,
          name: nameBytes.subarray(0, nul < 0 ? 46 : nul).toString('utf8'),
        });
      }
    }
    at = dataAt + Math.ceil(len / 8) * 8;
    out.end = at;
  }
  return out;
}

/** Read the internal snapshot table (bounded like QEMU: 65536 entries, 64 MiB). */
export async function readSnapshots(file: ImageFile, h: Qcow2Header): Promise<Qcow2Snapshot[]> {
  return (await readSnapshotTable(file, h)).snapshots;
}

/** The snapshot table and how many bytes of the file it occupies. */
export async function readSnapshotTable(file: ImageFile, h: Qcow2Header): Promise<{ snapshots: Qcow2Snapshot[]; bytes: number }> {
  const path = file.path;
  const out: Qcow2Snapshot[] = [];
  let at = h.snapshotsOffset;
  let total = 0;
  for (let i = 0; i < h.nbSnapshots; i++) {
    const fixed = await file.readMeta(at, 40, `snapshot ${i} entry`);
    const l1TableOffset = u64(fixed, 0, 'snapshot L1 offset', path);
    const l1Size = fixed.readUInt32BE(8);
    const idLen = fixed.readUInt16BE(12);
    const nameLen = fixed.readUInt16BE(14);
    const extraLen = fixed.readUInt32BE(36);
    if (extraLen > MAX_SNAPSHOT_EXTRA) throw new CorruptImageError(`snapshot ${i} extra data of ${extraLen} bytes is too large`, at + 36, path);
    const entryLen = Math.ceil((40 + extraLen + idLen + nameLen) / 8) * 8;
    total += entryLen;
    if (total > MAX_SNAPSHOT_TABLE_BYTES) throw new CorruptImageError('snapshot table exceeds 64 MiB', at, path);
    const rest = await file.readMeta(at + 40, extraLen + idLen + nameLen, `snapshot ${i} entry`);
    if (l1Size * 8 > MAX_L1_BYTES) throw new CorruptImageError(`snapshot ${i} L1 table is too large`, at + 8, path);
    if (l1TableOffset % h.clusterSize !== 0) throw new CorruptImageError(`snapshot ${i} L1 offset is not aligned`, at, path);
    const size = extraLen >= 16 ? u64(rest, 8, 'snapshot disk size', path) : h.size;
    out.push({
      id: rest.subarray(extraLen, extraLen + idLen).toString('utf8'),
      name: rest.subarray(extraLen + idLen, extraLen + idLen + nameLen).toString('utf8'),
      l1TableOffset, l1Size, size,
    });
    at += entryLen;
  }
  return { snapshots: out, bytes: total };
}
