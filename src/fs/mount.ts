// Binds a CompositionStore to a FUSE mount: every file of the store, and every later change, is
// pushed to the native addon as an immutable table. The addon serves all requests on its own threads.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsError } from './errors.js';
import { loadNative, type NativeAddon, type NativeMount, type NativeStats } from './native.js';
import { FILE_PREFIX, type Composition, type CompositionStore } from './store.js';

export interface MountOptions {
  /**
   * Group (name or gid) of the analytics users. When set, the mount uses allow_other and files are
   * mode 0440 (directory 0550) owned by this group, so exactly the owner and that group can read.
   * When unset, only the mounting user can access the mount.
   */
  group?: string | number;
  /** Answer reads with splice from the backing files instead of pread + copy. Default false. */
  splice?: boolean;
  /** Kernel attribute / entry cache timeout in seconds. Default 1. */
  timeout?: number;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /**
   * Read-ahead of the mount's bdi in KiB (root only). The kernel's 128 KiB default makes every
   * buffered read a 128 KiB request; 1024 lets requests reach FUSE's 1 MiB maximum. Default 1024
   * (512 with splice, whose replies must fit a pipe).
   */
  readAheadKb?: number;
}

/** gid of a group name or number (NSS, so LDAP groups work too). */
export function resolveGroup(group: string | number): number {
  if (typeof group === 'number' || /^\d+$/.test(group)) {
    const gid = Number(group);
    if (!Number.isInteger(gid) || gid < 0 || gid >= 2 ** 32 - 1) throw new FsError('EMOUNT', `bad gid ${group}`);
    return gid;
  }
  const r = spawnSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = Number(r.stdout?.split(':')[2]);
  if (r.status !== 0 || !Number.isInteger(gid)) throw new FsError('EMOUNT', `unknown group '${group}'`);
  return gid;
}

function isMounted(mountpoint: string): boolean {
  const want = path.resolve(mountpoint);
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => unescape(line.split(' ')[4] ?? '') === want);
}

function fusermount(args: string[], mountpoint: string): boolean {
  return spawnSync('fusermount3', [...args, mountpoint], { stdio: 'ignore' }).status === 0;
}

/**
 * Removes a mount left by a crashed daemon ("Transport endpoint is not connected"). A live mount is
 * left alone and reported. Returns true when something was cleaned.
 */
export function cleanStaleMount(mountpoint: string): boolean {
  try {
    fs.statfsSync(mountpoint); // statfs is never answered from the kernel's attribute cache
    if (isMounted(mountpoint)) throw new FsError('EMOUNT', `${mountpoint} is already mounted by a live filesystem`);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOTCONN') throw e;
  }
  if (!fusermount(['-u'], mountpoint)) fusermount(['-u', '-z'], mountpoint);
  if (isMounted(mountpoint)) throw new FsError('EMOUNT', `cannot clean the stale mount at ${mountpoint}`);
  return true;
}

/**
 * Makes `mountpoint` usable for a new mount: a stale mount a killed daemon left there is cleaned
 * first — anything else (mkdir, stat) on a stale mount fails with ENOTCONN — then the directory is
 * created if missing.
 */
export function prepareMountpoint(mountpoint: string): void {
  try {
    cleanStaleMount(mountpoint);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.mkdirSync(mountpoint, { recursive: true });
}

export class ComposedMount {
  /** Resolves with the session loop's return code once the FUSE session has ended. */
  readonly closed: Promise<number>;
  private unmounting: Promise<void> | undefined;
  private connection = -1; // fusectl connection number (minor of st_dev)

  private constructor(
    readonly mountpoint: string,
    private readonly store: CompositionStore,
    private readonly native: NativeAddon,
    private readonly handle: NativeMount,
    closed: Promise<number>,
  ) {
    this.closed = closed;
  }

  static async mount(store: CompositionStore, mountpoint: string, opts: MountOptions = {}): Promise<ComposedMount> {
    const native = loadNative();
    const mp = path.resolve(mountpoint);
    cleanStaleMount(mp);
    if (!fs.statSync(mp).isDirectory()) throw new FsError('EMOUNT', `${mp} is not a directory`);
    const gid = opts.group === undefined ? process.getgid!() : resolveGroup(opts.group);
    let onExit!: (rc: number) => void;
    const closed = new Promise<number>((resolve) => (onExit = resolve));
    let handle: NativeMount;
    try {
      handle = native.mount(
        mp,
        {
          uid: process.getuid!(),
          gid,
          fileMode: 0o440,
          dirMode: 0o550,
          allowOther: opts.group !== undefined,
          splice: opts.splice ?? false,
          timeout: opts.timeout ?? 1,
          debug: opts.debug ?? false,
        },
        onExit,
      );
    } catch (e) {
      const hint =
        opts.group !== undefined && process.getuid!() !== 0 ? ' (allow_other needs user_allow_other in /etc/fuse.conf)' : '';
      throw new FsError('EMOUNT', `${(e as Error).message}${hint}`);
    }
    const m = new ComposedMount(mp, store, native, handle, closed);
    for (const info of store.list()) m.push(store.get(info.name)!, -1);
    store.on('change', m.onChange);
    store.on('remove', m.onRemove);
    let st: fs.Stats;
    try {
      // answered by the session threads only once INIT succeeded: the mount is live
      await fs.promises.readdir(mp);
      st = await fs.promises.stat(mp);
      if (await settles(closed, 0)) throw new Error('the FUSE session ended during start-up');
    } catch (e) {
      await m.unmount(0);
      throw new FsError('EMOUNT', `mount at ${mp} is not usable: ${(e as Error).message}`);
    }
    m.connection = Number((BigInt(st.dev) & 0xffn) | ((BigInt(st.dev) >> 12n) & 0xfff00n));
    const ra = opts.readAheadKb ?? (opts.splice ? 512 : 1024);
    if (Number.isInteger(ra) && ra > 0) {
      try {
        fs.writeFileSync(`/sys/class/bdi/0:${m.connection}/read_ahead_kb`, String(ra));
      } catch {
        /* not root, or no such bdi: keep the kernel default */
      }
    }
    return m;
  }

  stats(): NativeStats {
    return this.native.stats(this.handle);
  }

  /**
   * Unmounts lazily: the mount leaves the namespace at once, files still open keep working until
   * closed. Waits up to graceMs for the session to end, then aborts the FUSE connection if fusectl
   * is available; never waits for readers.
   */
  unmount(graceMs = 2000): Promise<void> {
    this.unmounting ??= (async () => {
      this.store.off('change', this.onChange);
      this.store.off('remove', this.onRemove);
      const rc = this.native.unmount(this.handle);
      if (rc !== 0 && isMounted(this.mountpoint)) fusermount(['-u', '-z'], this.mountpoint);
      if (await settles(this.closed, graceMs)) return;
      const abort = `/sys/fs/fuse/connections/${this.connection}/abort`;
      try {
        fs.writeFileSync(abort, '1');
        await settles(this.closed, 1000);
      } catch {
        /* no fusectl: the session ends when the last open file is closed or the process exits */
      }
    })();
    return this.unmounting;
  }

  private push(c: Composition, invalFrom: number): void {
    this.native.setFile(this.handle, FILE_PREFIX + c.name, c.nativeTable(), invalFrom);
  }

  private readonly onChange = (_name: string, c: Composition, invalFrom: number): void => {
    try {
      this.push(c, invalFrom);
    } catch (e) {
      process.stderr.write(`livemr: cannot update ${FILE_PREFIX}${c.name} on the mount: ${(e as Error).message}\n`);
    }
  };

  private readonly onRemove = (name: string): void => {
    this.native.removeFile(this.handle, FILE_PREFIX + name);
  };
}

function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
