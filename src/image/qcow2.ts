// One qcow2 file as a layer: guest offset → L1 entry → L2 table (cached) → cluster descriptor.
// Follows docs/interop/qcow2.txt; reserved bits and misaligned offsets are reported as corruption.
import { dirname, resolve } from 'node:path';
import { CorruptImageError, ImageError, ImageMetadataOverlapError, ImageRangeError, UnsupportedImageError } from './errors.js';
import { ImageFile } from './file.js';
import { decompressCluster } from './decompress.js';
import { readQcow2Header, readSnapshots, l2Entries, type Qcow2Header } from './qcow2-header.js';
import { type CompressedExtent, type DataExtent, type Layer } from './layer.js';
import { readMetadataMap, type MetadataCache, type MetadataMap } from './qcow2-metadata.js';
import type { Extent } from './extent.js';

export interface Qcow2OpenOptions {
  /** map this internal snapshot (id or name) instead of the active L1 table */
  snapshot?: string;
  /** external data file path (overrides the header's name; relative to the image's directory) */
  dataFile?: string;
  /** bound of the L2 table cache in bytes (default 32 MiB, at least one table) */
  l2CacheBytes?: number;
}

const TWO32 = 4294967296;
/** L2 tables read ahead per window, and read concurrently. */
const PREFETCH_WINDOW = 256;
const PREFETCH_PARALLEL = 256;
/** Entries above this many bits of host offset cannot be represented exactly (and lie past any file). */
const HI_LIMIT = 1 << 21;

const DATA = 0, ZERO = 1, UNALLOCATED = 2;
const KINDS = ['data', 'zero', 'unallocated'] as const;

/**
 * Append an extent, or extend the last one when it continues it (same kind, same file, contiguous
 * offsets): allocation-free for the long runs of a large image. `file` undefined = no host cluster.
 */
function emit(out: Extent[], kind: number, start: number, length: number, depth: number, file: string | undefined, fileOffset: number): void {
  const prev = out[out.length - 1] as { kind: string; start: number; length: number; file?: string; fileOffset?: number } | undefined;
  const name = KINDS[kind]!;
  if (prev !== undefined && prev.kind === name && prev.start + prev.length === start) {
    if (kind === UNALLOCATED || (prev.file === file && (file === undefined || prev.fileOffset! + prev.length === fileOffset))) {
      prev.length += length;
      return;
    }
  }
  if (kind === UNALLOCATED) out.push({ kind: 'unallocated', start, length, depth });
  else if (kind === DATA) out.push({ kind: 'data', start, length, depth, file: file!, fileOffset });
  else if (file === undefined) out.push({ kind: 'zero', start, length, depth });
  else out.push({ kind: 'zero', start, length, depth, file, fileOffset });
}

export class Qcow2Layer implements Layer {
  readonly format = 'qcow2' as const;
  header!: Qcow2Header;
  private l1: Buffer = Buffer.alloc(0);
  private l1Offset = 0;
  private virtualSize = 0;
  private dataFile!: ImageFile;
  private readonly l2Cache = new Map<number, Buffer>();
  private lastCompressed?: { offset: number; data: Buffer };
  /** host clusters the image's metadata holds, read on the first map after each reload */
  private meta?: MetadataMap;
  private readonly metaCache: MetadataCache = {};
  /** counters for tests and benchmarks */
  readonly stats = { l2Reads: 0, l2Hits: 0, metadataReads: 0 };

  private constructor(private readonly file: ImageFile, private readonly opts: Qcow2OpenOptions) {}

  static async open(path: string, opts: Qcow2OpenOptions = {}): Promise<Qcow2Layer> {
    const layer = new Qcow2Layer(await ImageFile.open(path), opts);
    try {
      await layer.reload();
    } catch (err) {
      await layer.close();
      throw err;
    }
    return layer;
  }

  get path(): string {
    return this.file.path;
  }
  get size(): number {
    return this.virtualSize;
  }
  get backingFile(): string | undefined {
    return this.header.backingFile;
  }
  get backingFormat(): string | undefined {
    return this.header.backingFormat;
  }
  /** the file guest clusters are stored in (the image itself, or its external data file) */
  get dataPath(): string {
    return this.dataFile.path;
  }

  async reload(): Promise<void> {
    await this.file.refreshSize();
    const h = await readQcow2Header(this.file);
    let l1Offset = h.l1TableOffset, l1Size = h.l1Size, size = h.size;
    if (this.opts.snapshot !== undefined) {
      if (h.externalData) throw new CorruptImageError('internal snapshots in an image with an external data file', 72, this.path);
      const snaps = await readSnapshots(this.file, h);
      const snap = snaps.find((s) => s.id === this.opts.snapshot) ?? snaps.find((s) => s.name === this.opts.snapshot);
      if (!snap) throw new ImageError(`no internal snapshot with id or name '${this.opts.snapshot}'`, this.path);
      ({ l1TableOffset: l1Offset, l1Size, size } = snap);
    }
    const l1 = await this.file.readMeta(l1Offset, l1Size * 8, 'L1 table');
    if (h.externalData && !this.dataFile) {
      const name = this.opts.dataFile ?? h.dataFile;
      if (name === undefined) throw new UnsupportedImageError('image uses an external data file but names none; pass dataFile', this.path);
      this.dataFile = await ImageFile.open(resolve(dirname(this.path), name));
    } else if (!this.dataFile) {
      this.dataFile = this.file;
    } else if (this.dataFile !== this.file) {
      await this.dataFile.refreshSize();
    }
    this.header = h;
    this.l1 = l1;
    this.l1Offset = l1Offset;
    this.virtualSize = size;
    this.l2Cache.clear();
    this.lastCompressed = undefined;
    this.meta = undefined;
  }

  /** The metadata map as of the last reload (read now if not yet). */
  private async metadata(): Promise<MetadataMap> {
    if (!this.meta) {
      const h = this.header;
      // mapping a snapshot: the active L1's tables are metadata too
      const active = this.l1Offset === h.l1TableOffset ? this.l1 : await this.file.readMeta(h.l1TableOffset, h.l1Size * 8, 'L1 table');
      this.meta = await readMetadataMap(this.file, h, active, this.metaCache);
      this.stats.metadataReads++;
    }
    return this.meta;
  }

  /**
   * Refuses data that lies on a metadata cluster (ImageMetadataOverlapError): those bytes are a
   * table of the image, not the guest's (QEMU reused a discarded cluster, or the image is corrupt).
   */
  private async checkNotMetadata(out: Extent[]): Promise<void> {
    if (this.header.externalData) return; // guest data lives in another file
    let meta: MetadataMap | undefined;
    const cs = this.header.clusterSize;
    for (const e of out) {
      if (e.kind !== 'data' && e.kind !== 'compressed') continue;
      meta ??= await this.metadata();
      const span = e.kind === 'data' ? e.length : e.compressedLength;
      const hit = meta.find(e.fileOffset, span);
      if (!hit) continue;
      const guest = e.kind === 'data' ? Math.max(e.start, e.start + (Math.floor(hit.start / cs) * cs - e.fileOffset)) : e.start;
      throw new ImageMetadataOverlapError(guest, hit.start, hit.kind, this.path);
    }
  }

  /** List this image's internal snapshots. */
  async snapshots() {
    return readSnapshots(this.file, this.header);
  }

  private async l2Table(offset: number): Promise<Buffer> {
    const hit = this.l2Cache.get(offset);
    if (hit) {
      this.stats.l2Hits++;
      this.l2Cache.delete(offset);
      this.l2Cache.set(offset, hit);
      return hit;
    }
    const table = await this.file.readMeta(offset, this.header.clusterSize, 'L2 table');
    this.cacheInsert(offset, table);
    return table;
  }

  async runs(offset: number, length: number, depth: number, maxRuns = Infinity): Promise<Extent[]> {
    const h = this.header;
    const cs = h.clusterSize;
    const tableSpan = cs * l2Entries(h);
    const out: Extent[] = [];
    const end = offset + length;
    const l1Entries = this.l1.length / 8;
    let pos = offset;
    while (pos < end) {
      const l1Index = Math.floor(pos / tableSpan);
      if (l1Index >= l1Entries) {
        emit(out, UNALLOCATED, pos, end - pos, depth, undefined, 0);
        break;
      }
      // Read the L2 tables of the next window of L1 entries concurrently: one round trip per
      // window instead of one per table.
      const windowEnd = Math.min(l1Entries, Math.ceil(end / tableSpan), l1Index + Math.min(this.cacheTables(), PREFETCH_WINDOW));
      await this.prefetch(l1Index, windowEnd);
      for (let i = l1Index; i < windowEnd && pos < end; i++) {
        const tableEnd = Math.min(end, (i + 1) * tableSpan);
        const l2Offset = this.l2OffsetAt(i);
        if (l2Offset === 0) {
          emit(out, UNALLOCATED, pos, tableEnd - pos, depth, undefined, 0);
        } else {
          this.decodeTable(await this.l2Table(l2Offset), l2Offset, pos, tableEnd, depth, out, maxRuns);
        }
        pos = tableEnd;
      }
    }
    await this.checkNotMetadata(out);
    return out;
  }

  /** L2 table offset of L1 entry `i` (0 = unallocated), validated. */
  private l2OffsetAt(i: number): number {
    const at = i * 8;
    const hi = this.l1.readUInt32BE(at), lo = this.l1.readUInt32BE(at + 4);
    if ((lo & 0x1ff) !== 0 || (hi & 0x7f000000) !== 0) {
      throw new CorruptImageError(`L1 entry ${i} has reserved bits set`, this.l1Offset + at, this.path);
    }
    const l2Offset = this.hostOffset(hi, lo, this.l1Offset + at);
    if (l2Offset % this.header.clusterSize !== 0) {
      throw new CorruptImageError(`L2 table offset ${l2Offset} is not cluster aligned`, this.l1Offset + at, this.path);
    }
    return l2Offset;
  }

  private cacheTables(): number {
    return Math.max(1, Math.floor((this.opts.l2CacheBytes ?? 32 * 1024 * 1024) / this.header.clusterSize));
  }

  /** Load the missing L2 tables of L1 entries [from, to) into the cache, PREFETCH_PARALLEL at a time. */
  private async prefetch(from: number, to: number): Promise<void> {
    const missing: number[] = [];
    for (let i = from; i < to; i++) {
      let off: number;
      try {
        off = this.l2OffsetAt(i);
      } catch {
        break; // reported by the decoding pass, in guest order
      }
      if (off !== 0 && !this.l2Cache.has(off) && !missing.includes(off)) missing.push(off);
    }
    for (let k = 0; k < missing.length; k += PREFETCH_PARALLEL) {
      const batch = missing.slice(k, k + PREFETCH_PARALLEL);
      const tables = await Promise.allSettled(batch.map((off) => this.file.readMeta(off, this.header.clusterSize, 'L2 table')));
      tables.forEach((t, j) => {
        if (t.status === 'fulfilled') this.cacheInsert(batch[j]!, t.value);
      });
    }
  }

  private cacheInsert(offset: number, table: Buffer): void {
    this.stats.l2Reads++;
    const max = this.cacheTables();
    while (this.l2Cache.size >= max) this.l2Cache.delete(this.l2Cache.keys().next().value!);
    this.l2Cache.set(offset, table);
  }

  private hostOffset(hi: number, lo: number, where: number): number {
    const top = hi & 0x00ffffff;
    if (top >= HI_LIMIT) throw new CorruptImageError('offset beyond 2^53', where, this.path);
    return top * TWO32 + ((lo & 0xfffffe00) >>> 0);
  }

  /** Decode the L2 entries covering guest range [pos, end) (all within one L2 table). */
  private decodeTable(table: Buffer, tableOffset: number, pos: number, end: number, depth: number, out: Extent[], maxRuns: number): void {
    const h = this.header;
    const cs = h.clusterSize;
    const entrySize = h.extendedL2 ? 16 : 8;
    const perTable = cs / entrySize;
    const external = h.externalData;
    while (pos < end) {
      if (out.length > maxRuns) throw new ImageRangeError(`more than ${maxRuns} extents; map a smaller range`, this.path);
      const cluster = Math.floor(pos / cs);
      const clusterStart = cluster * cs;
      const clusterEnd = Math.min(end, clusterStart + cs);
      const at = (cluster % perTable) * entrySize;
      const where = tableOffset + at;
      const hi = table.readUInt32BE(at), lo = table.readUInt32BE(at + 4);
      const copied = (hi & 0x80000000) !== 0;
      if (hi & 0x40000000) {
        this.pushCompressed(table, at, hi, lo, where, copied, pos, clusterEnd, depth, out);
        pos = clusterEnd;
        continue;
      }
      if ((lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0) throw new CorruptImageError('L2 entry has reserved bits set', where, this.path);
      const zeroFlag = (lo & 1) !== 0;
      if (zeroFlag && (h.version === 2 || h.extendedL2)) {
        throw new CorruptImageError(`L2 entry has the zero flag, reserved in ${h.version === 2 ? 'version 2 images' : 'extended L2 entries'}`, where, this.path);
      }
      const host = this.hostOffset(hi, lo, where);
      if (host % cs !== 0) throw new CorruptImageError(`cluster offset ${host} is not cluster aligned`, where, this.path);
      // Offset 0 means unallocated, except in external data files where the copied flag disambiguates.
      const allocated = host !== 0 || (external && copied);
      const file = this.dataFile.path;
      if (!h.extendedL2) {
        emit(out, zeroFlag ? ZERO : allocated ? DATA : UNALLOCATED, pos, clusterEnd - pos, depth, allocated ? file : undefined, host + (pos - clusterStart));
        pos = clusterEnd;
        continue;
      }
      const zeroBits = table.readUInt32BE(at + 8), allocBits = table.readUInt32BE(at + 12);
      if (zeroBits & allocBits) throw new CorruptImageError('subcluster both allocated and zero', where + 8, this.path);
      if (!allocated && allocBits) throw new CorruptImageError('subclusters allocated in an unallocated cluster', where + 8, this.path);
      const sub = cs / 32;
      while (pos < clusterEnd) {
        const index = Math.floor((pos - clusterStart) / sub);
        const subEnd = Math.min(clusterEnd, clusterStart + (index + 1) * sub);
        const bit = 1 << index;
        const kind = allocBits & bit ? DATA : zeroBits & bit ? ZERO : UNALLOCATED;
        emit(out, kind, pos, subEnd - pos, depth, allocated ? file : undefined, host + (pos - clusterStart));
        pos = subEnd;
      }
    }
  }

  private pushCompressed(table: Buffer, at: number, hi: number, lo: number, where: number, copied: boolean,
    pos: number, clusterEnd: number, depth: number, out: Extent[]): void {
    const h = this.header;
    if (h.externalData) throw new CorruptImageError('compressed cluster in an image with an external data file', where, this.path);
    if (copied) throw new CorruptImageError('compressed L2 entry has the copied flag', where, this.path);
    if (h.extendedL2 && (table.readUInt32BE(at + 8) | table.readUInt32BE(at + 12)) !== 0) {
      throw new CorruptImageError('compressed cluster with a non-zero subcluster bitmap', where + 8, this.path);
    }
    // Descriptor: bits 0..x-1 host offset, bits x..61 additional 512-byte sectors, x = 62 - (cluster_bits - 8).
    const x = BigInt(62 - (h.clusterBits - 8));
    const desc = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0);
    const offsetBig = desc & ((1n << x) - 1n);
    if (offsetBig >= 1n << 53n) throw new CorruptImageError('compressed cluster offset beyond 2^53', where, this.path);
    const fileOffset = Number(offsetBig);
    const sectors = Number(desc >> x);
    const compressedLength = (sectors + 1) * 512 - (fileOffset % 512);
    out.push({ kind: 'compressed', start: pos, length: clusterEnd - pos, depth, file: this.file.path, fileOffset, compressedLength });
  }

  async readExtent(e: DataExtent | CompressedExtent, out: Buffer, at: number): Promise<void> {
    if (e.kind === 'data') {
      await this.dataFile.readData(out, at, e.length, e.fileOffset);
    } else {
      const cluster = await this.readCompressed(e);
      const from = e.start % this.header.clusterSize;
      cluster.copy(out, at, from, from + e.length);
    }
  }

  private async readCompressed(run: CompressedExtent): Promise<Buffer> {
    if (this.lastCompressed?.offset === run.fileOffset) return this.lastCompressed.data;
    const h = this.header;
    if (run.fileOffset >= this.file.size) await this.file.refreshSize();
    if (run.fileOffset >= this.file.size) {
      throw new CorruptImageError(`compressed cluster at ${run.fileOffset} lies beyond the end of the file`, run.fileOffset, this.path);
    }
    // The last sector of the last compressed cluster may extend past the end of the file.
    const length = Math.min(run.compressedLength, this.file.size - run.fileOffset);
    const input = await this.file.readMeta(run.fileOffset, length, 'compressed cluster');
    let data: Buffer;
    try {
      data = decompressCluster(h.compression, input, h.clusterSize);
    } catch (err) {
      throw new CorruptImageError(`compressed cluster does not decompress (${h.compression}): ${(err as Error).message}`, run.fileOffset, this.path);
    }
    this.lastCompressed = { offset: run.fileOffset, data };
    return data;
  }

  async close(): Promise<void> {
    if (this.dataFile && this.dataFile !== this.file) await this.dataFile.close();
    await this.file.close();
  }
}
