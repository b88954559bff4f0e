// openImage(): a backing chain of layers (top first) and the mapper over it. A range that is
// unallocated in a layer falls through to the next one; past the end of a shorter backing file it
// reads as zeros, attributed to the layer whose backing is short (as QEMU does).
import { realpath } from 'node:fs/promises';
import { ImageFile } from './file.js';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ImageError, ImageRangeError, UnsupportedImageError } from './errors.js';
import type { Extent } from './extent.js';
import { isQcow2 } from './qcow2-header.js';
import { Qcow2Layer } from './qcow2.js';
import { RawLayer, type RawWindow } from './raw.js';
import type { ImageFormat, Layer } from './layer.js';
import { PendingQueue, type PendingResolution } from './pending.js';

export interface BackingSpec {
  file: string;
  /** probed when absent */
  format?: ImageFormat;
  /** raw only: the window of the file this layer exposes (QEMU's raw `offset`/`size`) */
  window?: RawWindow;
}

export interface OpenImageOptions {
  /** format of the top image; probed when absent */
  format?: ImageFormat;
  /**
   * The layers below the top image, nearest first, e.g. from QEMU's live block graph, which wins
   * over the headers. `[]` means no backing file. Absent: follow the backing names in the headers.
   */
  backingChain?: BackingSpec[];
  /** map this internal snapshot (id or name) of the top image instead of its active L1 table */
  snapshot?: string;
  /** external data file of the top image (overrides its header) */
  dataFile?: string;
  /** raw top image only: the window of the file the guest's disk is (QEMU's raw `offset`/`size`) */
  window?: RawWindow;
  /**
   * The disk's virtual size as the hypervisor runs it. The mapper's size is never more than this,
   * so no extent reaches past the disk the guest really has (a raw file grown on the host, a header
   * that disagrees with QEMU).
   */
  virtualSize?: number;
  /** bound of each qcow2 layer's L2 cache, bytes (default 32 MiB) */
  l2CacheBytes?: number;
  /** refuse chains deeper than this (default 64) */
  maxChainDepth?: number;
  /** refuse read() calls larger than this (default 256 MiB) */
  maxReadBytes?: number;
  /** refuse map() calls that would return more extents than this (default 2^20); map in pieces */
  maxExtents?: number;
}

export interface MapOptions {
  /** false: describe the top image only (unallocated = falls through to the backing chain) */
  followBacking?: boolean;
}

export interface ChainEntry { file: string; format: ImageFormat; size: number }

export interface ImageMapper {
  readonly path: string;
  readonly format: ImageFormat;
  /** guest-visible virtual size in bytes */
  readonly size: number;
  /** the chain in use, top first */
  readonly chain: readonly ChainEntry[];
  /** Extents covering [offset, offset+length) in guest order. */
  map(offset: number, length: number, opts?: MapOptions): Promise<Extent[]>;
  /** The bytes the guest sees at [offset, offset+length). */
  read(offset: number, length: number): Promise<Buffer>;
  /** Ranges waiting for QEMU to allocate them in the top image. */
  readonly pending: PendingQueue;
  /**
   * Forget cached metadata (header, L1, L2 tables, file sizes) of every layer, re-read it, then
   * re-resolve the pending queue; returns the ranges that left the queue.
   */
  invalidate(): Promise<PendingResolution[]>;
  close(): Promise<void>;
}

export async function probeFormat(path: string): Promise<ImageFormat> {
  const file = await ImageFile.open(path);
  try {
    const buf = Buffer.alloc(4);
    await file.readData(buf, 0, 4, 0);
    return file.size >= 4 && isQcow2(buf) ? 'qcow2' : 'raw';
  } finally {
    await file.close();
  }
}

function checkFormat(name: string | undefined, where: string): ImageFormat | undefined {
  if (name === undefined || name === 'raw' || name === 'qcow2') return name;
  throw new UnsupportedImageError(`backing format '${name}' is not supported (raw and qcow2 are)`, where);
}

async function openLayer(path: string, format: ImageFormat | undefined, opts: OpenImageOptions, top: boolean, window?: RawWindow): Promise<Layer> {
  const fmt = format ?? (await probeFormat(path));
  if (fmt === 'raw') {
    if (top && (opts.snapshot !== undefined || opts.dataFile !== undefined)) {
      throw new UnsupportedImageError('snapshots and external data files need a qcow2 image', path);
    }
    return RawLayer.open(path, window);
  }
  if (window) throw new UnsupportedImageError('an offset/size window is only supported on raw layers', path);
  return Qcow2Layer.open(path, {
    ...(top && opts.snapshot !== undefined ? { snapshot: opts.snapshot } : {}),
    ...(top && opts.dataFile !== undefined ? { dataFile: opts.dataFile } : {}),
    ...(opts.l2CacheBytes !== undefined ? { l2CacheBytes: opts.l2CacheBytes } : {}),
  });
}

/** Resolve a backing file name as QEMU does: relative names are relative to the overlay's directory. */
export function resolveBackingName(overlay: string, name: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(name) && !name.startsWith('file:')) {
    throw new UnsupportedImageError(`backing file '${name}' uses a protocol or json: syntax; pass backingChain`, overlay);
  }
  const plain = name.startsWith('file:') ? name.slice(5) : name;
  return isAbsolute(plain) ? plain : resolve(dirname(overlay), plain);
}

async function openChain(path: string, opts: OpenImageOptions): Promise<Layer[]> {
  const maxDepth = opts.maxChainDepth ?? 64;
  const layers: Layer[] = [];
  try {
    layers.push(await openLayer(path, opts.format, opts, true, opts.window));
    if (opts.backingChain) {
      if (opts.backingChain.length + 1 > maxDepth) throw new UnsupportedImageError(`backing chain deeper than ${maxDepth}`, path);
      for (const b of opts.backingChain) layers.push(await openLayer(resolve(b.file), b.format, opts, false, b.window));
      return layers;
    }
    const seen = new Set([await realpath(path)]);
    for (;;) {
      const cur = layers[layers.length - 1]!;
      if (cur.backingFile === undefined || cur.backingFile === '') return layers;
      if (layers.length >= maxDepth) throw new UnsupportedImageError(`backing chain deeper than ${maxDepth}`, path);
      const next = resolveBackingName(cur.path, cur.backingFile);
      let real: string;
      try {
        real = await realpath(next);
      } catch {
        throw new ImageError(`backing file '${cur.backingFile}' (${next}) not found`, cur.path);
      }
      if (seen.has(real)) throw new ImageError(`backing chain loops back to ${next}`, cur.path);
      seen.add(real);
      layers.push(await openLayer(next, checkFormat(cur.backingFormat, cur.path), opts, false));
    }
  } catch (err) {
    await Promise.allSettled(layers.map((l) => l.close()));
    throw err;
  }
}

export async function openImage(path: string, opts: OpenImageOptions = {}): Promise<ImageMapper> {
  return new ChainMapper(path, await openChain(path, opts), opts);
}

class ChainMapper implements ImageMapper {
  readonly pending = new PendingQueue();

  constructor(readonly path: string, private layers: Layer[], private readonly opts: OpenImageOptions) {}

  get format(): ImageFormat {
    return this.layers[0]!.format;
  }
  get size(): number {
    const own = this.layers[0]!.size;
    return this.opts.virtualSize === undefined ? own : Math.min(own, this.opts.virtualSize);
  }
  get chain(): ChainEntry[] {
    return this.layers.map((l) => ({ file: l.path, format: l.format, size: l.size }));
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ImageRangeError(`range ${offset}+${length} is outside the virtual disk (${this.size} bytes)`, this.path);
    }
  }

  async map(offset: number, length: number, opts: MapOptions = {}): Promise<Extent[]> {
    this.checkRange(offset, length);
    const out: Extent[] = [];
    const bottom = opts.followBacking === false ? 0 : this.layers.length - 1;
    await this.resolve(0, bottom, offset, length, out);
    return out;
  }

  private get maxExtents(): number {
    return this.opts.maxExtents ?? 1 << 20;
  }

  private async resolve(depth: number, bottom: number, offset: number, length: number, out: Extent[]): Promise<void> {
    const layer = this.layers[depth]!;
    const runs = await layer.runs(offset, length, depth, this.maxExtents - out.length);
    if (out.length + runs.length > this.maxExtents) {
      throw new ImageRangeError(`range ${offset}+${length} has more than ${this.maxExtents} extents; map it in smaller pieces`, this.path);
    }
    for (const run of runs) {
      if (run.kind !== 'unallocated' || depth === bottom) {
        out.push(run);
        continue;
      }
      const backingEnd = this.layers[depth + 1]!.size;
      const inside = Math.max(0, Math.min(run.length, backingEnd - run.start));
      if (inside > 0) await this.resolve(depth + 1, bottom, run.start, inside, out);
      if (inside < run.length) {
        out.push({ kind: 'unallocated', start: run.start + inside, length: run.length - inside, depth });
      }
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const max = this.opts.maxReadBytes ?? 256 * 1024 * 1024;
    if (length > max) throw new ImageRangeError(`read of ${length} bytes exceeds the bound of ${max}`, this.path);
    this.checkRange(offset, length);
    const out = Buffer.alloc(length);
    // Resolve layer by layer so that compressed runs keep a handle on the layer that decodes them.
    await this.readRange(0, offset, length, out, offset);
    return out;
  }

  private async readRange(depth: number, offset: number, length: number, out: Buffer, base: number): Promise<void> {
    const layer = this.layers[depth]!;
    for (const run of await layer.runs(offset, length, depth)) {
      if (run.kind === 'data' || run.kind === 'compressed') {
        await layer.readExtent(run, out, run.start - base);
      } else if (run.kind === 'unallocated' && depth + 1 < this.layers.length) {
        const inside = Math.max(0, Math.min(run.length, this.layers[depth + 1]!.size - run.start));
        if (inside > 0) await this.readRange(depth + 1, run.start, inside, out, base);
      }
      // zero, and unallocated at the bottom or past a short backing file: already zeros.
    }
  }

  async invalidate(): Promise<PendingResolution[]> {
    const top = this.layers[0]!;
    const before = top.backingFile;
    for (const layer of this.layers) await layer.reload();
    // A header-derived chain follows the header if QEMU changed it (block-stream, commit…).
    if (!this.opts.backingChain && top.backingFile !== before) {
      const fresh = await openChain(this.path, this.opts);
      const old = this.layers;
      this.layers = fresh;
      await Promise.allSettled(old.map((l) => l.close()));
    }
    // A range beyond a (shrunk) disk stays queued.
    return this.pending.resolve(async (s, l) => (s + l <= this.size ? this.map(s, l) : undefined));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.layers.map((l) => l.close()));
  }
}
