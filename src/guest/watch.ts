// inotify (fs.watch) that wakes the helper at most once per `settleMs` per watched path. A busy
// writer produces one inotify event per write(); in a small guest, waking Node for each of them costs
// the writer a large share of the CPU. So the first event closes the watch, and the watch is re-armed
// *before* the callback looks at the file, so no change can slip between the two.
// Leading edge: an event after a quiet period is handled after LEAD_MS (a log line shows up on the
// host at once); while events keep coming, callbacks are spaced settleMs apart (a streaming writer
// pays for one wake per settleMs, not one per write).
import { watch, type FSWatcher } from 'node:fs';

/** coalesces the few events of one write burst (write + close, several write() calls of one line) */
const LEAD_MS = 5;

export class QuietWatch {
  private w?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private names = new Set<string>();
  private lastRun = -Infinity;

  constructor(
    private readonly path: string,
    private readonly settleMs: number,
    /** called after the quiet period with the entry names that had events (for directories) */
    private readonly onChange: (names: Set<string>) => void,
    private readonly onGone: () => void = () => {},
  ) {
    this.arm();
  }

  get armed(): boolean { return !!this.w; }

  /** Schedules a callback as if an event had come (used by rescans). */
  poke(): void { this.fire(undefined); }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.w?.close();
    this.w = undefined;
  }

  private arm(): void {
    if (this.closed || this.w) return;
    try {
      const w = watch(this.path, { persistent: false }, (_ev, name) => this.fire(name?.toString()));
      w.on('error', () => { w.close(); if (this.w === w) this.w = undefined; this.onGone(); });
      this.w = w;
    } catch {
      queueMicrotask(() => this.onGone());
    }
  }

  private fire(name: string | undefined): void {
    if (name) this.names.add(name);
    if (this.timer || this.closed) return;
    this.w?.close();
    this.w = undefined;
    const delay = Math.max(LEAD_MS, this.lastRun + this.settleMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastRun = Date.now();
      this.arm();
      const names = this.names;
      this.names = new Set();
      this.onChange(names);
    }, delay);
  }
}
