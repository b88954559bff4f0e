// The recorded history of a consistency run (docs/consistency.md, "History"): what the guest did
// (operations with guest CLOCK_REALTIME intervals), what the host's readers saw (reads with host
// intervals), what the host agent was told (shrinks and removals, host time) and the clock offset
// that places guest operations on the host timeline.

/** A guest operation, one JSON line in the workload's log. Times are guest CLOCK_REALTIME in ms. */
export type GuestOp =
  /** a new empty file `key` at `path` (consent already set), on disk `disk`; `ino` its inode number */
  | { op: 'create'; t0: number; t1: number; key: number; path: string; disk: string; ino?: number }
  /**
   * bytes [off, off+len) of file `key` now hold pattern(src, sgen, ·); a gap past the end reads zero.
   * `how: 'zero'` (src 0): zeros written over data — on a disk with detect-zeroes=unmap QEMU discards
   * the clusters instead, so the file's mapping changes under the host without a new extent (case 6)
   */
  | { op: 'write'; t0: number; t1: number; key: number; off: number; len: number; src: number; sgen: number; how: 'buf' | 'fsync' | 'direct' | 'zero' }
  /** size set to `size` (smaller: bytes past it gone; larger: zeros) */
  | { op: 'trunc'; t0: number; t1: number; key: number; size: number }
  /** fallocate(off, len) without KEEP_SIZE: reads as zeros where nothing was written */
  | { op: 'falloc'; t0: number; t1: number; key: number; off: number; len: number }
  /** file `key` created at `path` as a byte copy of `from` (copytruncate's copy), consent set */
  | { op: 'copy'; t0: number; t1: number; key: number; from: number; path: string; disk: string; ino?: number }
  /** rename(from, to); a file bound at `to` before is gone (`replaced`) */
  | { op: 'rename'; t0: number; t1: number; key: number; from: string; to: string; replaced?: number }
  | { op: 'unlink'; t0: number; t1: number; key: number; path: string }
  /** the consent xattr removed (`user.livemr.share`): the file stays in the guest, no longer shared (case 2) */
  | { op: 'revoke'; t0: number; t1: number; key: number; path: string }
  /** fallocate --punch-hole --keep-size: [off, off+len) read as zeros, its blocks are freed (case 6) */
  | { op: 'punch'; t0: number; t1: number; key: number; off: number; len: number }
  /** fstrim of a data disk: the guest discards its free blocks (on a discard=unmap disk QEMU frees their clusters); no file changes (case 6) */
  | { op: 'trim'; t0: number; t1: number; disk: string }
  /** end of the workload: final sha256 of every live file, for the model self-check */
  | { op: 'end'; t0: number; t1: number; files: { key: number; path: string; size: number; sha256: string }[] };

/** `hold`: one descriptor kept open for seconds, each pread its own record (its interval is that pread's, not the open's) */
export type ReaderKind = 'read' | 'pread' | 'mmap' | 'tail' | 'webhdfs' | 'hold';

/** One read by a host reader. Times are host CLOCK_REALTIME in ms. */
export interface ReadRecord {
  reader: string;
  kind: ReaderKind;
  /** guest path of the composed file read (from its name) */
  path: string;
  off: number;
  data: Buffer;
  /** the read ended at the file's end as the reader saw it (size = off + data.length) */
  eof: boolean;
  s: number;
  e: number;
  /** `hold`: when the descriptor was opened */
  opened?: number;
}

/**
 * What the host agent published (host time, ms), recorded after the store's listeners (the mount's
 * cut) ran: a composed file shrank or was removed — a name that begins to show another guest file is
 * removed first (docs/host.md, "Names"), so a rename over a name is a removal too — each ends the
 * window of what it showed before. `show`: a name appeared (ends nothing). `restart`: the agent was
 * restarted (path `*`): it serves nothing journaled before the guest reported it again, so it ends
 * the window of every guest operation that had ended before it.
 */
export interface HostEvent {
  t: number;
  path: string;
  kind: 'shrink' | 'remove' | 'show' | 'restart';
  size: number;
  /**
   * the guest inode the event is about (the file shown, shrunk or removed at `path`): it ends only
   * that file's window. Unknown: any file's at the path (then the checker matches ends and events in
   * order, docs/consistency.md).
   */
  ino?: number;
}

/** guest clock − host clock at host time `t`, known to ± `err` ms (half the round trip). */
export interface ClockSample { t: number; offset: number; err: number }

export interface Clock {
  /** host time of a guest instant, and the error bound of that conversion */
  toHost(guestMs: number): { t: number; err: number };
}

/** Linear interpolation between samples; outside them the nearest one. */
export function clockFrom(samples: ClockSample[]): Clock {
  const s = [...samples].sort((a, b) => a.t - b.t);
  if (s.length === 0) throw new Error('no clock samples');
  return {
    toHost(g: number) {
      // the offset varies slowly; evaluate it at the guest time shifted by the first offset
      const approx = g - s[0]!.offset;
      let i = 0;
      while (i + 1 < s.length && s[i + 1]!.t <= approx) i++;
      const a = s[i]!;
      const b = s[i + 1];
      if (!b || approx <= a.t) return { t: g - a.offset, err: a.err };
      const f = (approx - a.t) / (b.t - a.t);
      const off = a.offset + f * (b.offset - a.offset);
      return { t: g - off, err: Math.max(a.err, b.err) };
    },
  };
}
