// Polling for conditions that a test cannot be told about (a file appearing on a FUSE mount, a
// guest catching up): bounded, with the last error in the timeout message.

export async function until<T>(
  what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, stepMs = 50,
): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    let v: T | undefined | false;
    try { v = await fn(); } catch (e) { v = undefined; last = e; }
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Resolves once a unix socket accepts connections (its file exists from bind(), before listen()). */
export async function untilAccepting(socketPath: string, timeoutMs = 10_000): Promise<void> {
  const { connect } = await import('node:net');
  await until(`${socketPath} accepting`, () => new Promise<boolean>((resolve) => {
    const c = connect(socketPath, () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  }), timeoutMs);
}
