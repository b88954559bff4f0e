// A raw image: guest offset = file offset, or, for a raw node opened with QEMU's `offset`/`size`
// options (a window of a larger file, e.g. one partition of a shared raw file), guest offset + the
// window's offset, bounded by its size. Without a window its size is rounded up to 512 bytes like
// QEMU does; the tail past the end of the file reads as zeros.
import { ImageFile } from './file.js';
import { ImageError } from './errors.js';
import type { Extent } from './extent.js';
import type { DataExtent, Layer } from './layer.js';

/** The part of the file a raw node exposes (QEMU's raw driver `offset` and `size` options). */
export interface RawWindow {
  offset: number;
  size: number;
}

export class RawLayer implements Layer {
  readonly format = 'raw' as const;
  private constructor(private readonly file: ImageFile, private readonly window?: RawWindow) {}

  static async open(path: string, window?: RawWindow): Promise<RawLayer> {
    if (window && (!Number.isSafeInteger(window.offset) || !Number.isSafeInteger(window.size) || window.offset < 0 || window.size < 0 ||
      !Number.isSafeInteger(window.offset + window.size))) {
      throw new ImageError(`bad raw window offset ${window.offset} size ${window.size}`, path);
    }
    return new RawLayer(await ImageFile.open(path), window);
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.window ? this.window.size : Math.ceil(this.file.size / 512) * 512;
  }

  async runs(offset: number, length: number, depth: number): Promise<Extent[]> {
    // the chain checks [offset, offset+length) against `size`; a window never reaches past itself
    const base = this.window?.offset ?? 0;
    return length > 0 ? [{ kind: 'data', start: offset, length, depth, file: this.file.path, fileOffset: base + offset }] : [];
  }

  async readExtent(e: DataExtent, out: Buffer, at: number): Promise<void> {
    await this.file.readData(out, at, e.length, e.fileOffset);
  }

  async reload(): Promise<void> {
    await this.file.refreshSize();
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
