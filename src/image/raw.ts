// A raw image: guest offset = file offset. Its size is rounded up to 512 bytes like QEMU does; the
// tail past the end of the file reads as zeros.
import { ImageFile } from './file.js';
import type { Extent } from './extent.js';
import type { DataExtent, Layer } from './layer.js';

export class RawLayer implements Layer {
  readonly format = 'raw' as const;
  private constructor(private readonly file: ImageFile) {}

  static async open(path: string): Promise<RawLayer> {
    return new RawLayer(await ImageFile.open(path));
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return Math.ceil(this.file.size / 512) * 512;
  }

  async runs(offset: number, length: number, depth: number): Promise<Extent[]> {
    return length > 0 ? [{ kind: 'data', start: offset, length, depth, file: this.file.path, fileOffset: offset }] : [];
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
