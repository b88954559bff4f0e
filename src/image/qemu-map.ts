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

export function toQemuEntry(e: Extent): QemuMapEntry {
  const base = { start: e.start, length: e.length, depth: e.depth };
  switch (e.kind) {
    case 'data':
      return { ...base, present: true, zero: false, data: true, offset: e.fileOffset, file: e.file };
    case 'compressed':
      return { ...base, present: true, zero: false, data: true };
    case 'zero':
      return e.fileOffset !== undefined
        ? { ...base, present: true, zero: true, data: false, offset: e.fileOffset, file: e.file! }
        : { ...base, present: true, zero: true, data: false };
    case 'unallocated':
      return { ...base, present: false, zero: true, data: false };
  }
}

/** Merge adjacent entries that differ only in start (and contiguous offset). */
export function mergeQemuMap(entries: readonly QemuMapEntry[]): QemuMapEntry[] {
  const out: QemuMapEntry[] = [];
  for (const e of entries) {
    const p = out[out.length - 1];
    if (p && p.start + p.length === e.start && p.depth === e.depth && p.present === e.present && p.zero === e.zero &&
      p.data === e.data && p.file === e.file &&
      (p.offset === undefined ? e.offset === undefined : e.offset !== undefined && p.offset + p.length === e.offset)) {
      p.length += e.length;
    } else {
      out.push({ ...e });
    }
  }
  return out;
}

export function toQemuMap(extents: readonly Extent[]): QemuMapEntry[] {
  return mergeQemuMap(extents.map(toQemuEntry));
}
