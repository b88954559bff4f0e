// Per-VM bounds on what a guest can make the agent hold or do (issue 14 #9, docs/security.md): a
// hostile guest speaks the protocol correctly and still must not exhaust the agent's memory, its
// journal's disk or its event loop, nor slow the other VMs down. Each bound refuses with a typed
// error (stable code) for that file or that moment; the agent stays up.
import { LiveMrError } from '../errors/index.js';

export interface GuestLimits {
  /** files a VM's guest may share at once (its session's table); a file past it is refused */
  maxFiles: number;
  /** extents of one file (all frames of its map together) */
  maxExtentsPerFile: number;
  /** extents of all of a VM's files together */
  maxExtentsPerVm: number;
  /** frames of one file update that announce more frames (the `more` bit) before its last one */
  maxContinuationFrames: number;
  /** bytes per second read from the VM's channel, sustained; the channel is paused above it */
  channelBytesPerSec: number;
  /** bytes read at once before that rate applies */
  channelBurstBytes: number;
  /**
   * milliseconds a second the agent may spend on the VM's reports (decoding its frames, laying out
   * and publishing its files), sustained; above it the channel is paused. Bytes alone do not bound
   * this: a flood of small frames costs more per byte than a few large ones
   */
  busyMsPerSec: number;
  /** milliseconds spent at once before that rate applies */
  busyBurstMs: number;
  /** journaled file updates per second (each ≤ 2 fsync'd records), sustained */
  journalUpdatesPerSec: number;
  /** updates journaled at once before that rate applies (a resync after a restart) */
  journalBurst: number;
}

export const DEFAULT_GUEST_LIMITS: GuestLimits = {
  maxFiles: 1024,
  maxExtentsPerFile: 65_536,
  maxExtentsPerVm: 1 << 20,
  maxContinuationFrames: 64,
  channelBytesPerSec: 8 << 20,
  channelBurstBytes: 32 << 20,
  busyMsPerSec: 200,
  busyBurstMs: 1000,
  journalUpdatesPerSec: 100,
  journalBurst: 500,
};

export type GuestLimitCode =
  | 'HOST_LIMIT_FILES' | 'HOST_LIMIT_EXTENTS' | 'HOST_LIMIT_CONTINUATION' | 'HOST_FILE_BEYOND_DISK';

/** A guest report refused because it is over one of the VM's bounds. */
export class GuestLimitError extends LiveMrError {
  override name = 'GuestLimitError';
  constructor(override readonly code: GuestLimitCode, message: string) {
    super(message);
  }
}

/** Validates a `limits` object of the agent config (every key optional, positive integers). */
export function parseLimits(raw: unknown, path: string, base: GuestLimits, fail: (path: string, msg: string) => never): GuestLimits {
  if (raw === undefined) return base;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, 'must be an object');
  const out = { ...base };
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!Object.hasOwn(base, k)) fail(`${path}.${k}`, `unknown key (allowed: ${Object.keys(base).join(', ')})`);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(`${path}.${k}`, 'must be a positive integer');
    out[k as keyof GuestLimits] = v as number;
  }
  return out;
}

/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at = Date.now();
  constructor(private readonly rate: number, private readonly burst: number) {
    this.tokens = burst;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
  }

  /** Takes `n` tokens if there are that many. */
  take(n = 1): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /**
   * Takes `n` tokens even into debt (at most one burst deep: one overrun never costs more than two
   * bursts' worth of waiting); returns how long until the bucket is out of debt (ms).
   */
  spend(n: number): number {
    this.refill();
    this.tokens = Math.max(-this.burst, this.tokens - n);
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** Whole tokens there now. */
  available(): number {
    this.refill();
    return Math.max(0, Math.floor(this.tokens));
  }

  /** ms until `n` tokens are there. */
  waitMs(n = 1): number {
    this.refill();
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) * 1000) / this.rate);
  }
}
