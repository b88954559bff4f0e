// The pending queue (the paper's queue of not-yet-allocated blocks): guest ranges the guest has
// allocated in its filesystem but whose clusters the top image does not map yet (QEMU has not
// written them, or has not flushed its L2 tables). They are re-resolved whenever the mapper is
// invalidated; a range leaves the queue once every byte of it is allocated in the top image.
import type { Extent } from './extent.js';

export interface PendingRange<T = unknown> {
  readonly id: number;
  readonly start: number;
  readonly length: number;
  /** caller's data, handed back on resolution (e.g. which composed file waits for it) */
  readonly tag?: T;
  readonly addedAt: number;
  /** how many invalidations have re-tried it */
  attempts: number;
}

export interface PendingResolution<T = unknown> {
  range: PendingRange<T>;
  extents: Extent[];
}

/** True when every byte of the extents is allocated (data, zero or compressed) in the top image. */
export function allocatedInTop(extents: readonly Extent[]): boolean {
  return extents.every((e) => e.depth === 0 && e.kind !== 'unallocated');
}

export class PendingQueue<T = unknown> {
  private readonly ranges = new Map<number, PendingRange<T>>();
  private nextId = 1;

  constructor(private readonly maxRanges = 1_000_000) {}

  /** Queue a guest range; returns its handle. Throws when the queue is full (bounded memory). */
  add(start: number, length: number, tag?: T): PendingRange<T> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length <= 0) {
      throw new RangeError(`bad pending range ${start}+${length}`);
    }
    if (this.ranges.size >= this.maxRanges) throw new RangeError(`pending queue is full (${this.maxRanges} ranges)`);
    const range: PendingRange<T> = { id: this.nextId++, start, length, addedAt: Date.now(), attempts: 0 };
    if (tag !== undefined) (range as { tag?: T }).tag = tag;
    this.ranges.set(range.id, range);
    return range;
  }

  remove(id: number): boolean {
    return this.ranges.delete(id);
  }

  get count(): number {
    return this.ranges.size;
  }

  /** pending bytes (ranges may overlap; counted per range) */
  get bytes(): number {
    let n = 0;
    for (const r of this.ranges.values()) n += r.length;
    return n;
  }

  list(): PendingRange<T>[] {
    return [...this.ranges.values()];
  }

  /** Re-map every queued range; remove and return those now fully allocated in the top image. */
  async resolve(map: (start: number, length: number) => Promise<Extent[] | undefined>): Promise<PendingResolution<T>[]> {
    const done: PendingResolution<T>[] = [];
    for (const range of [...this.ranges.values()]) {
      range.attempts++;
      const extents = await map(range.start, range.length);
      if (extents && allocatedInTop(extents)) {
        this.ranges.delete(range.id);
        done.push({ range, extents });
      }
    }
    return done;
  }
}
