// The `qemu-img map --output=json` view of extents: one entry per run of equal
// (depth, present, zero, data, file) with contiguous offsets, plus `file` naming the file `offset`
// belongs to (QEMU 7.2 prints no file name; its `depth` says which layer).
import type { Extent } from './extent.js';

export interface QemuMapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
  file?: string;
}

function entry(start: number, length: number, depth: number, present: boolean, zero: boolean, data: boolean,
  offset: number | undefined, file: string | undefined): QemuMapEntry {
  // One object shape for every entry (absent fields are undefined, which JSON omits).
  return { start, length, depth, present, zero, data, offset, file };
}

export function toQemuEntry(e: Extent): QemuMapEntry {
  switch (e.kind) {
    case 'data':
      return entry(e.start, e.length, e.depth, true, false, true, e.fileOffset, e.file);
    case 'compressed':
      return entry(e.start, e.length, e.depth, true, false, true, undefined, undefined);
    case 'zero':
      return entry(e.start, e.length, e.depth, true, true, false, e.fileOffset, e.fileOffset === undefined ? undefined : e.file);
    case 'unallocated':
      return entry(e.start, e.length, e.depth, false, true, false, undefined, undefined);
  }
}

function mergeable(p: QemuMapEntry, e: QemuMapEntry): boolean {
  return p.start + p.length === e.start && p.depth === e.depth && p.present === e.present && p.zero === e.zero &&
    p.data === e.data && p.file === e.file &&
    (p.offset === undefined ? e.offset === undefined : e.offset !== undefined && p.offset + p.length === e.offset);
}

/** Merge adjacent entries that differ only in start (and contiguous offset). */
export function mergeQemuMap(entries: readonly QemuMapEntry[]): QemuMapEntry[] {
  const out: QemuMapEntry[] = [];
  for (const e of entries) {
    const p = out[out.length - 1];
    if (p && mergeable(p, e)) p.length += e.length;
    else out.push(entry(e.start, e.length, e.depth, e.present, e.zero, e.data, e.offset, e.file));
  }
  return out;
}

export function toQemuMap(extents: readonly Extent[]): QemuMapEntry[] {
  const out: QemuMapEntry[] = [];
  for (const x of extents) {
    const e = toQemuEntry(x);
    const p = out[out.length - 1];
    if (p && mergeable(p, e)) p.length += e.length;
    else out.push(e);
  }
  return out;
}

/**
 * The JSON text `qemu-img map --output=json` would print (one entry per line), with `file`, as
 * UTF-8 bytes. Written straight into buffers: building one string per entry and joining them is
 * several times slower for the 10^5-entry maps of large images.
 */
export function formatQemuMapJson(entries: readonly QemuMapEntry[]): Buffer {
  const CHUNK = 1 << 20;
  const chunks: Buffer[] = [];
  let buf = Buffer.allocUnsafe(CHUNK);
  let at = 0;
  const names = new Map<string, string>();
  buf[at++] = 0x5b; // [
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    let quoted = '';
    if (e.file !== undefined) {
      const q = names.get(e.file);
      if (q === undefined) names.set(e.file, (quoted = JSON.stringify(e.file)));
      else quoted = q;
    }
    const line = `${i ? ',\n' : ''}{"start":${e.start},"length":${e.length},"depth":${e.depth},"present":${e.present},"zero":${e.zero},"data":${e.data}` +
      `${e.offset !== undefined ? `,"offset":${e.offset}` : ''}${quoted ? `,"file":${quoted}` : ''}}`;
    const max = line.length * 3;
    if (at + max > buf.length) {
      chunks.push(buf.subarray(0, at));
      buf = Buffer.allocUnsafe(Math.max(CHUNK, max));
      at = 0;
    }
    at += buf.write(line, at, "utf8");
  }
  if (at + 2 > buf.length) {
    chunks.push(buf.subarray(0, at));
    buf = Buffer.allocUnsafe(2);
    at = 0;
  }
  buf[at++] = 0x5d; // ]
  buf[at++] = 0x0a;
  chunks.push(buf.subarray(0, at));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
