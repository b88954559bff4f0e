// Streams a byte range of a composed file straight from its segments: pread on the source files
// (disk images) into the response, no FUSE mount in between. The segment holding each position is
// looked up again for every chunk, so a file that grows, or has a hole filled, while it is being
// read is read as it is now; a source shorter than its segment is an error (like EIO on the mount),
// never silently wrong bytes. A chunk is checked again right before it is handed to the socket: if
// a removal or shrink was applied while it was read (or waited for the socket to drain), or its
// range now maps elsewhere, it is not sent — the response ends short instead.

import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { LiveMrError } from '../errors/index.js';
import { ZERO_SOURCE } from '../fs/index.js';
import type { ComposedFile } from './source.js';

export const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

export class ShortSourceError extends LiveMrError {
  override name = 'ShortSourceError';
  readonly code = 'HDFS_SHORT_SOURCE';
}

/**
 * Source files opened once per response (both body paths): `get(path)` opens on first use,
 * `close()` closes them all.
 */
export function sourceHandles(): { get(path: string): Promise<fsp.FileHandle>; close(): Promise<void> } {
  const handles = new Map<string, Promise<fsp.FileHandle>>();
  return {
    get(p) {
      let h = handles.get(p);
      if (!h) handles.set(p, (h = fsp.open(p, 'r')));
      return h;
    },
    async close() {
      for (const h of handles.values()) await h.then((fh) => fh.close()).catch(() => {});
    },
  };
}

/** Composed [pos, pos+n) of `file` still maps as when it was looked up: same source and offset, inside the file. */
export function stillMapped(file: ComposedFile, pos: number, n: number, source: number, srcOff: number): boolean {
  const segs = file.segments;
  if (pos + n > segs.size) return false;
  const seg = segs.get(segs.find(pos));
  return seg.source === source && seg.at + seg.length >= pos + n && (source === ZERO_SOURCE || seg.offset + (pos - seg.at) === srcOff);
}

/** The segment holding `pos`; a file that shrank below it is a short read (both body paths). */
export function segmentAt(file: ComposedFile, pos: number) {
  const segs = file.segments;
  if (pos >= segs.size) throw new ShortSourceError(`${file.name} shrank below ${pos} while being read`);
  return segs.get(segs.find(pos));
}

/** A source that ends inside a segment (both body paths). */
export const shortSource = (src: string | undefined, file: ComposedFile) => new ShortSourceError(`${src} ends inside a segment of ${file.name}`);

/** The smallest chunk: about what a connection that stopped taking bytes from the start holds. */
export const MIN_CHUNK = 64 << 10;
/** A connection that has not taken the last chunk after this long is not draining. */
const STALL_CHECK_MS = 200;
/**
 * What the kernel's socket buffers may take from a client that reads nothing (its receive window
 * and our send buffer): a connection counts as draining only once it has taken more than this.
 */
const PROVEN_BYTES = 4 << 20;

/**
 * Writes composed bytes [offset, offset+length) of `file` to `out`. Stops early if `out` closes.
 * The next chunk is read while this one drains only while the connection keeps up; once it stops
 * taking bytes the chunk read ahead is dropped and the chunks shrink, so a stalled client holds
 * one chunk's unsent rest here and nothing read ahead (300 stalled readers held +852 MiB).
 */
export async function sendRange(file: ComposedFile, offset: number, length: number, out: Writable): Promise<void> {
  const handles = sourceHandles();
  const end = offset + length;
  const checked = new WeakMap<Buffer, [number, number, number]>();
  let size = MIN_CHUNK;
  // chunks the socket has taken whole are read into again (at most two: one draining, one read
  // ahead), so a response makes no garbage per chunk that would sit in memory until a collection
  const spares: Buffer[] = [];
  const bases = new WeakMap<Buffer, Buffer>();

  const readChunk = async (pos: number): Promise<Buffer> => {
    const seg = segmentAt(file, pos);
    const n = Math.min(size, end - pos, seg.at + seg.length - pos);
    if (seg.source === ZERO_SOURCE) {
      const z = ZEROS.subarray(0, n);
      checked.set(z, [pos, ZERO_SOURCE, 0]);
      return z;
    }
    const src = file.sources[seg.source]!;
    const fh = await handles.get(src);
    const i = spares.findIndex((b) => b.length >= n);
    const base = i >= 0 ? spares.splice(i, 1)[0]! : Buffer.allocUnsafe(n);
    const buf = base.subarray(0, n);
    bases.set(buf, base);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, seg.offset + (pos - seg.at) + got);
      if (bytesRead === 0) throw shortSource(src, file);
      got += bytesRead;
    }
    checked.set(buf, [pos, seg.source, seg.offset + (pos - seg.at)]);
    return buf;
  };
  const readAt = (pos: number): Promise<Buffer> => {
    const p = readChunk(pos);
    p.catch(() => {}); // observed on the next iteration; avoid an unhandled rejection if we stop first
    return p;
  };

  const closed = once(out, 'close').catch(() => {});
  try {
    let pos = offset;
    /** whether the connection takes its chunks within STALL_CHECK_MS, past what the kernel buffers hide */
    let draining = false;
    let next = pos < end ? readAt(pos) : undefined;
    while (next && !out.destroyed) {
      const buf = await next;
      const [at, source, srcOff] = checked.get(buf)!;
      if (!stillMapped(file, at, buf.length, source, srcOff)) throw new ShortSourceError(`${file.name} changed under ${at}+${buf.length} (removed or shrunk) while being read`);
      pos += buf.length;
      const base = bases.get(buf);
      const ok = out.write(buf, () => { if (base && spares.length < 2) spares.push(base); });
      // read the next chunk while this one drains, if the connection keeps up
      next = pos < end && (ok || draining) ? readAt(pos) : undefined;
      if (!ok) {
        const drained = once(out, 'drain');
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), STALL_CHECK_MS); });
        const quick = await Promise.race([drained.then(() => true), closed.then(() => true), stalled]);
        clearTimeout(timer);
        draining = quick && pos - offset > PROVEN_BYTES;
        if (!quick) {
          next = undefined; // not draining: nothing read ahead is held for it, and smaller chunks from now on
          size = MIN_CHUNK;
          await Promise.race([drained, closed]);
        }
      }
      if (draining) size = Math.min(CHUNK, size * 2);
      if (!next && pos < end && !out.destroyed) next = readAt(pos);
    }
  } finally {
    await handles.close();
  }
}
