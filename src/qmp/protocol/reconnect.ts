// Connecting with retries, for callers that want to outlive a QEMU restart or wait for a socket to
// appear. Only connecting is retried: a command in flight when a connection drops is never replayed
// (QMP commands are not idempotent), and a new connection starts with no subscriptions, so callers
// re-create their listeners and re-arm one-shot things such as write thresholds.

import { QmpClient, type ClientOptions, type QmpAddress } from './client.js';
import { ConnectError, DisconnectedError, GreetingError, QmpError } from './errors.js';

export interface BackoffOptions extends ClientOptions {
  /** attempts before giving up (default 10; Infinity = until aborted) */
  attempts?: number;
  /** first delay (default 100 ms), multiplied by `factor` (default 2) up to `maxDelayMs` (default 5000) */
  initialDelayMs?: number;
  factor?: number;
  maxDelayMs?: number;
  /** stop retrying; the pending wait rejects with the signal's reason */
  signal?: AbortSignal;
  /** told about each failed attempt, e.g. for logging */
  onRetry?: (attempt: number, error: QmpError, delayMs: number) => void;
}

/** Errors worth another attempt: the socket is missing or refused, or the server went away early. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ConnectError || err instanceof GreetingError || err instanceof DisconnectedError;
}

/** Delay before retry number `attempt` (1-based), with ±20% jitter so many clients do not align. */
export function backoffDelay(attempt: number, o: Pick<BackoffOptions, 'initialDelayMs' | 'factor' | 'maxDelayMs'> = {}): number {
  const base = Math.min(o.maxDelayMs ?? 5000, (o.initialDelayMs ?? 100) * (o.factor ?? 2) ** (attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export async function connectWithBackoff(address: QmpAddress | string, options: BackoffOptions = {}): Promise<QmpClient> {
  const attempts = options.attempts ?? 10;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await QmpClient.connect(address, options);
    } catch (err) {
      if (!isRetryable(err) || attempt >= attempts) throw err;
      const delay = backoffDelay(attempt, options);
      options.onRetry?.(attempt, err as QmpError, delay);
      await sleep(delay, options.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
