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

/** Writes composed bytes [offset, offset+length) of `file` to `out`. Stops early if `out` closes. */
export async function sendRange(file: ComposedFile, offset: number, length: number, out: Writable): Promise<void> {
  const handles = sourceHandles();
  const end = offset + length;
  const checked = new WeakMap<Buffer, [number, number, number]>();

  const readChunk = async (pos: number): Promise<Buffer> => {
    const segs = file.segments;
    if (pos >= segs.size) throw new ShortSourceError(`${file.name} shrank below ${pos} while being read`);
    const seg = segs.get(segs.find(pos));
    const n = Math.min(CHUNK, end - pos, seg.at + seg.length - pos);
    if (seg.source === ZERO_SOURCE) {
      const z = ZEROS.subarray(0, n);
      checked.set(z, [pos, ZERO_SOURCE, 0]);
      return z;
    }
    const src = file.sources[seg.source]!;
    const fh = await handles.get(src);
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, seg.offset + (pos - seg.at) + got);
      if (bytesRead === 0) throw new ShortSourceError(`${src} ends inside a segment of ${file.name}`);
      got += bytesRead;
    }
    checked.set(buf, [pos, seg.source, seg.offset + (pos - seg.at)]);
    return buf;
  };

  const closed = once(out, 'close').catch(() => {});
  try {
    let pos = offset;
    let next = pos < end ? readChunk(pos) : undefined;
    while (next && !out.destroyed) {
      const buf = await next;
      const [at, source, srcOff] = checked.get(buf)!;
      if (!stillMapped(file, at, buf.length, source, srcOff)) throw new ShortSourceError(`${file.name} changed under ${at}+${buf.length} (removed or shrunk) while being read`);
      pos += buf.length;
      // read the next chunk while this one drains to the socket
      next = pos < end ? readChunk(pos) : undefined;
      next?.catch(() => {}); // observed on the next iteration; avoid an unhandled rejection if we stop first
      if (!out.write(buf)) await Promise.race([once(out, 'drain'), closed]);
    }
  } finally {
    await handles.close();
  }
}
