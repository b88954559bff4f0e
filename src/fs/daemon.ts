// The `livemr mount` daemon: owns the state directory, keeps the mount in sync with the store and
// answers the control socket. Ends on SIGTERM / SIGINT, a `shutdown` request, or an external
// unmount; always unmounts lazily, so open files never make it hang.

import type * as net from 'node:net';
import { serveControl, socketPath } from './control.js';
import { ComposedMount, type MountOptions } from './mount.js';
import { CompositionStore } from './store.js';

export interface DaemonOptions extends MountOptions {
  mountpoint: string;
  stateDir: string;
  /** where progress lines go (default stderr) */
  log?: (line: string) => void;
}

/** Runs until shut down; resolves with the process exit code. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`livemr: ${l}\n`));
  const store = CompositionStore.open(opts.stateDir);
  let mount: ComposedMount | undefined;
  let server: net.Server | undefined;
  let done!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (done = resolve));
  let stopping = false;

  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    server?.close();
    try {
      await mount?.unmount();
    } finally {
      store.close();
      for (const s of signals) process.off(s, onSignal);
      log('unmounted');
      done(0);
    }
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  const onSignal = (s: NodeJS.Signals) => void stop(s);

  try {
    mount = await ComposedMount.mount(store, opts.mountpoint, opts);
    for (const s of signals) process.on(s, onSignal);
    server = await serveControl(store, socketPath(opts.stateDir), () => void stop('shutdown request'));
  } catch (e) {
    await mount?.unmount();
    store.close();
    throw e;
  }
  void mount.closed.then(() => stop('filesystem unmounted'));
  log(`mounted ${mount.mountpoint} with ${store.list().length} files; control socket ${socketPath(opts.stateDir)}`);
  return finished;
}
