// One image file opened read-only, read only with positioned, bounded reads. Metadata reads must lie
// inside the file (the size is re-checked once, since QEMU grows a live image); data reads past the
// end read as zeros, like QEMU's file driver, and never touch bytes outside the file.
import { open, type FileHandle } from 'node:fs/promises';
import { CorruptImageError, ImageError, UnsupportedImageError } from './errors.js';

/** Upper bound of a single metadata read (an L1 table may be up to 32 MiB in QEMU). */
export const MAX_META_READ = 64 * 1024 * 1024;

export class ImageFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private bytes: number,
  ) {}

  static async open(path: string): Promise<ImageFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new ImageError(`cannot open: ${(err as Error).message}`, path);
    }
    try {
      const st = await fh.stat();
      // Block devices report size 0 through stat; only regular files are mapped.
      if (!st.isFile()) throw new UnsupportedImageError('not a regular file', path);
      return new ImageFile(path, fh, st.size);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** File size in bytes as of the last open / refresh. */
  get size(): number {
    return this.bytes;
  }

  async refreshSize(): Promise<number> {
    this.bytes = (await this.fh.stat()).size;
    return this.bytes;
  }

  /** Read `length` bytes of metadata at `offset`; they must lie inside the file. */
  async readMeta(offset: number, length: number, what: string): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || length > MAX_META_READ) {
      throw new CorruptImageError(`${what}: bad offset/length ${offset}+${length}`, offset, this.path);
    }
    if (offset + length > this.bytes) await this.refreshSize();
    if (offset + length > this.bytes) {
      throw new CorruptImageError(`${what} (${length} bytes) lies beyond the end of the file (${this.bytes} bytes)`, offset, this.path);
    }
    const buf = Buffer.alloc(length);
    await this.readFully(buf, 0, length, offset);
    return buf;
  }

  /** Read up to `length` bytes at `fileOffset` into `buf`; bytes past the end of the file stay zero. */
  async readData(buf: Buffer, bufOffset: number, length: number, fileOffset: number): Promise<void> {
    if (fileOffset + length > this.bytes) await this.refreshSize();
    const inside = Math.max(0, Math.min(length, this.bytes - fileOffset));
    buf.fill(0, bufOffset + inside, bufOffset + length);
    if (inside > 0) await this.readFully(buf, bufOffset, inside, fileOffset);
  }

  private async readFully(buf: Buffer, at: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, at + done, length - done, position + done);
      if (bytesRead === 0) {
        // The file shrank under us: what is missing reads as zeros.
        buf.fill(0, at + done, at + length);
        return;
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
