// Semantics, errors, permissions and the daemon's lifecycle on the real FUSE mount: EROFS, live
// growth and removal, EIO for missing/short backing files, xattrs, group-restricted allow_other,
// SIGTERM with open files, kill -9 and restart, stale-mount cleanup, `livemr umount`.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComposedMount } from '../../src/fs/mount.js';
import { CompositionStore } from '../../src/fs/store.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LIVEMR = path.join(ROOT, 'bin/livemr.mjs');
const GROUP = 4242; // an analytics group that need not exist in /etc/group
const NOBODY = 65534;

let tmp: string;
const mountpoints: string[] = [];
const children: ChildProcess[] = [];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const errno = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  return undefined;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mounted(mp: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mp);
}

function unmountQuietly(mp: string): void {
  if (!mounted(mp)) return;
  if (spawnSync('fusermount3', ['-u', mp], { stdio: 'ignore' }).status !== 0)
    spawnSync('fusermount3', ['-u', '-z', mp], { stdio: 'ignore' });
}

function newMountpoint(name: string): string {
  const mp = path.join(tmp, name);
  fs.mkdirSync(mp);
  mountpoints.push(mp);
  return mp;
}

function livemr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [LIVEMR, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `livemr mount` and waits until it says it is mounted. */
async function startDaemon(mp: string, state: string, ...extra: string[]): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [LIVEMR, 'mount', mp, '--state', state, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  for (let i = 0; i < 300 && !log.includes('mounted ') && child.exitCode === null; i++) await sleep(50);
  if (!log.includes('mounted ')) throw new Error(`daemon did not mount: ${log}`);
  return { child, log: () => log };
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

const SLOWFS_SRC = path.join(ROOT, 'test/fixtures/slowfs/slowfs.c');

/** A FUSE file whose reads take `delayMs` (test/fixtures/slowfs), backed by a plain file. */
async function slowSource(name: string, content: Buffer, delayMs: number) {
  const bin = path.join(tmp, 'slowfs');
  if (!fs.existsSync(bin)) {
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' }).trim().split(/\s+/);
    execFileSync('cc', ['-O2', '-o', bin, SLOWFS_SRC, ...flags]);
  }
  const backing = path.join(tmp, `${name}.backing`);
  fs.writeFileSync(backing, content);
  const mp = newMountpoint(`${name}.slow`);
  const child = spawn(bin, [backing, String(delayMs), mp], { stdio: 'ignore' });
  children.push(child);
  const file = path.join(mp, 'data');
  for (let i = 0; i < 100 && !fs.existsSync(file); i++) await sleep(50);
  if (!fs.existsSync(file)) throw new Error('slowfs did not mount');
  return {
    file,
    backing,
    async stop() {
      unmountQuietly(mp);
      if (!(await exited(child, 5000))) child.kill('SIGKILL');
    },
  };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-fslife-'));
  fs.chmodSync(tmp, 0o755); // the permission tests run readers as another user
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 9)) & 0xff;
  fs.writeFileSync(path.join(tmp, 'a.img'), data);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of children) await exited(c, 5000);
  for (const mp of mountpoints) unmountQuietly(mp);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('in-process mount (ComposedMount API)', () => {
  let store: CompositionStore;
  let mount: ComposedMount;
  let mnt: string;
  let img: string;

  beforeAll(async () => {
    img = path.join(tmp, 'a.img');
    mnt = newMountpoint('api');
    store = CompositionStore.open(path.join(tmp, 'api-state'));
    store.compose('grow', [{ file: img, offset: 10, length: 1000 }]);
    mount = await ComposedMount.mount(store, mnt);
  });

  afterAll(async () => {
    try {
      await mount?.unmount();
    } finally {
      unmountQuietly(mnt);
      store?.close();
    }
  });

  it('is read-only: write, create, unlink, rename, setattr, mkdir, xattr changes give EROFS', () => {
    const f = path.join(mnt, 'livemr_grow');
    expect(errno(() => fs.openSync(f, 'r+'))).toBe('EROFS');
    expect(errno(() => fs.writeFileSync(f, 'x'))).toBe('EROFS');
    expect(errno(() => fs.writeFileSync(path.join(mnt, 'new'), 'x'))).toBe('EROFS');
    expect(errno(() => fs.unlinkSync(f))).toBe('EROFS');
    expect(errno(() => fs.renameSync(f, path.join(mnt, 'other')))).toBe('EROFS');
    expect(errno(() => fs.chmodSync(f, 0o777))).toBe('EROFS');
    expect(errno(() => fs.truncateSync(f, 1))).toBe('EROFS');
    expect(errno(() => fs.utimesSync(f, 1, 1))).toBe('EROFS');
    expect(errno(() => fs.mkdirSync(path.join(mnt, 'd')))).toBe('EROFS');
    expect(spawnSync('setfattr', ['-n', 'user.x', '-v', '1', f], { encoding: 'utf8' }).stderr).toMatch(/Read-only/);
  });

  it('grows live: size and mtime change, an open descriptor sees the new bytes, old bytes stay', async () => {
    const f = path.join(mnt, 'livemr_grow');
    const fd = fs.openSync(f, 'r');
    try {
      const st0 = fs.fstatSync(fd);
      expect(st0.size).toBe(1000);
      const head = Buffer.alloc(1000);
      fs.readSync(fd, head, 0, 1000, 0); // now in the page cache
      await sleep(20);
      store.append('grow', [{ file: img, offset: 5000, length: 3000 }]);
      const st1 = fs.fstatSync(fd);
      expect(st1.size).toBe(4000);
      expect(st1.mtimeMs).toBeGreaterThan(st0.mtimeMs);
      const all = Buffer.alloc(4000);
      expect(fs.readSync(fd, all, 0, 4000, 0)).toBe(4000);
      const a = fs.readFileSync(img);
      expect(all.equals(Buffer.concat([a.subarray(10, 1010), a.subarray(5000, 8000)]))).toBe(true);
      store.truncate('grow', 1500); // a guest file can shrink
      expect(fs.fstatSync(fd).size).toBe(1500);
      expect(fs.readFileSync(f).equals(all.subarray(0, 1500))).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('files appear and disappear live; an open file stops at decompose: EIO, even for pages it had read', () => {
    // its own copy of the bytes, so that the guest reusing the blocks can be played
    const reuse = path.join(tmp, 'reuse.img');
    fs.copyFileSync(img, reuse);
    store.compose('live', [{ file: reuse, offset: 0, length: 65536 }]);
    expect(fs.readdirSync(mnt)).toContain('livemr_live');
    const fd = fs.openSync(path.join(mnt, 'livemr_live'), 'r');
    try {
      const b = Buffer.alloc(65536);
      expect(fs.readSync(fd, b, 0, 65536, 0)).toBe(65536); // now in the page cache
      expect(b.equals(fs.readFileSync(img).subarray(0, 65536))).toBe(true);
      store.remove('live');
      fs.writeFileSync(reuse, Buffer.alloc(65536, 's')); // the guest gives the blocks to other data
      expect(fs.readdirSync(mnt)).not.toContain('livemr_live');
      expect(errno(() => fs.statSync(path.join(mnt, 'livemr_live')))).toBe('ENOENT');
      expect(errno(() => fs.readSync(fd, b, 0, 4096, 0))).toBe('EIO');
      expect(errno(() => fs.readSync(fd, b, 0, 4096, 32768))).toBe('EIO');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('an open file stops at a shrink: end of file past the new size, even for pages it had read', () => {
    const reuse = path.join(tmp, 'reuse-shrink.img');
    fs.copyFileSync(img, reuse);
    store.compose('shrink', [{ file: reuse, offset: 0, length: 65536 }]);
    const fd = fs.openSync(path.join(mnt, 'livemr_shrink'), 'r');
    try {
      const b = Buffer.alloc(65536);
      expect(fs.readSync(fd, b, 0, 65536, 0)).toBe(65536);
      store.truncate('shrink', 4096);
      const fw = fs.openSync(reuse, 'r+');
      fs.writeSync(fw, Buffer.alloc(65536 - 4096, 's'), 0, 65536 - 4096, 4096);
      fs.closeSync(fw);
      expect(fs.readSync(fd, b, 0, 4096, 8192)).toBe(0);
      expect(fs.readSync(fd, b, 0, 65536, 0)).toBe(4096);
      expect(b.subarray(0, 4096).equals(fs.readFileSync(img).subarray(0, 4096))).toBe(true);
    } finally {
      fs.closeSync(fd);
      store.remove('shrink');
    }
  });

  it.each([
    ['shrink', (n: string) => void store.truncate(n, 0)],
    ['removal', (n: string) => void store.remove(n)],
  ])('a read in flight across a %s never returns the blocks\' new contents', async (what, revoke) => {
    // the source is a file whose reads take 300 ms (test/fixtures/slowfs): a read is still in
    // flight when the file is cut; it must be answered with the bytes it began on, before the cut
    // returns, never with what the guest wrote to the reused blocks after it
    const slow = await slowSource(`race-${what}`, Buffer.alloc(1 << 20, 'g'), 300);
    const name = `race-${what}`;
    store.compose(name, [{ file: slow.file, offset: 0, length: 1 << 20 }], { directIo: true });
    const fh = await fs.promises.open(path.join(mnt, `livemr_${name}`), 'r');
    try {
      const read = fh.read(Buffer.alloc(65536), 0, 65536, 0).then(
        (r) => r.buffer.subarray(0, r.bytesRead),
        (e: NodeJS.ErrnoException) => e.code ?? 'error',
      );
      await sleep(100); // the read waits in the source
      const t0 = Date.now();
      revoke(name);
      const waited = Date.now() - t0;
      fs.writeFileSync(slow.backing, Buffer.alloc(1 << 20, 's')); // the guest reuses the blocks
      const got = await read;
      if (typeof got !== 'string') expect(got.includes('s')).toBe(false);
      expect(waited).toBeGreaterThan(100); // the cut waited for the read in flight
      expect(errno(() => fs.readSync(fh.fd, Buffer.alloc(10), 0, 10, 0)) ?? 'EOF').toBe(what === 'shrink' ? 'EOF' : 'EIO');
    } finally {
      await fh.close();
      if (store.get(name)) store.remove(name);
      await slow.stop();
    }
  });

  it('a missing or short backing file gives EIO for the affected reads only; the mount stays up', () => {
    const late = path.join(tmp, 'late.img');
    store.compose('missing', [{ file: late, offset: 0, length: 100 }]);
    store.compose('short', [
      { file: img, offset: 0, length: 8192 },
      { file: img, offset: (1 << 20) - 100, length: 200 }, // 100 bytes past the end of a.img
    ]);
    const f = path.join(mnt, 'livemr_short');
    expect(errno(() => fs.readFileSync(path.join(mnt, 'livemr_missing')))).toBe('EIO');
    const fd = fs.openSync(f, 'r');
    try {
      const b = Buffer.alloc(4096);
      expect(fs.readSync(fd, b, 0, 4096, 0)).toBe(4096); // the healthy part
      expect(errno(() => fs.readSync(fd, Buffer.alloc(50), 0, 50, 8192 + 150))).toBe('EIO');
    } finally {
      fs.closeSync(fd);
    }
    expect(mount.stats().readErrors).toBeGreaterThan(0);
    // the mount still serves, and a backing file that shows up later is picked up
    fs.writeFileSync(late, Buffer.alloc(100, 7));
    expect(fs.readFileSync(path.join(mnt, 'livemr_missing')).equals(Buffer.alloc(100, 7))).toBe(true);
    expect(fs.readFileSync(path.join(mnt, 'livemr_grow')).length).toBe(1500);
  });

  it('shows the mapping in user.livemr.* xattrs, the full list in pages', () => {
    const segs = Array.from({ length: 1300 }, (_, i) =>
      i % 2 ? { zero: true as const, length: 3 + i } : { file: img, offset: i * 300, length: 100 + i },
    );
    store.compose('xattr', segs);
    const f = path.join(mnt, 'livemr_xattr');
    const get = (n: string) => execFileSync('getfattr', ['--only-values', '-n', n, f]).toString();
    expect(JSON.parse(get('user.livemr.sources'))).toEqual([img]);
    expect(get('user.livemr.segment_count')).toBe('1300');
    const pages = Number(get('user.livemr.segment_pages'));
    expect(pages).toBe(3);
    const lines = Array.from({ length: pages }, (_, p) => get(`user.livemr.segments.${p}`)).join('').trim().split('\n');
    const want = store.segments('xattr').map((s) => `${s.at} ${s.file === null ? '-' : 0} ${s.offset} ${s.length}`);
    expect(lines).toEqual(want);
    expect(execFileSync('getfattr', ['-d', f]).toString()).toMatch(/user\.livemr\.segment_count="1300"/);
    // the content too: 1300 segments exercise both levels of the native lookup
    const a = fs.readFileSync(img);
    const want2 = Buffer.concat(segs.map((s) => ('zero' in s ? Buffer.alloc(s.length) : a.subarray(s.offset, s.offset + s.length))));
    expect(fs.readFileSync(f).equals(want2)).toBe(true);
    const fd = fs.openSync(f, 'r');
    try {
      for (const s of store.segments('xattr').filter((_, i) => i % 7 === 0)) {
        const b = Buffer.alloc(300);
        const n = fs.readSync(fd, b, 0, 300, Math.max(0, s.at - 150));
        expect(b.subarray(0, n).equals(want2.subarray(Math.max(0, s.at - 150), Math.max(0, s.at - 150) + n))).toBe(true);
      }
    } finally {
      fs.closeSync(fd);
    }
    expect(spawnSync('getfattr', ['-n', 'user.livemr.segments.3', f], { encoding: 'utf8' }).stderr).toMatch(/No such attribute/);
  });
});

describe('unmount with a file held open (API)', () => {
  it('returns promptly; the open file keeps reading until closed, then the session ends', async () => {
    const mnt = newMountpoint('held-api');
    const store = CompositionStore.open(path.join(tmp, 'held-api-state'));
    let mount: ComposedMount | undefined;
    try {
      const img = path.join(tmp, 'a.img');
      store.compose('h', [{ file: img, offset: 0, length: 100_000 }]);
      mount = await ComposedMount.mount(store, mnt);
      const fd = fs.openSync(path.join(mnt, 'livemr_h'), 'r');
      let closed = false;
      void mount.closed.then(() => (closed = true));
      try {
        const t0 = Date.now();
        await mount.unmount(500);
        expect(Date.now() - t0).toBeLessThan(5000);
        expect(mounted(mnt)).toBe(false); // gone from the namespace at once
        const b = Buffer.alloc(1000);
        expect(fs.readSync(fd, b, 0, 1000, 50_000)).toBe(1000); // detached, still served
        expect(b.equals(fs.readFileSync(img).subarray(50_000, 51_000))).toBe(true);
      } finally {
        fs.closeSync(fd);
      }
      for (let i = 0; i < 100 && !closed; i++) await sleep(50);
      expect(closed).toBe(true);
    } finally {
      await mount?.unmount();
      unmountQuietly(mnt);
      store.close();
    }
  });
});

describe('permissions: allow_other restricted to a group', () => {
  let store: CompositionStore;
  let mount: ComposedMount;
  let mnt: string;

  beforeAll(async () => {
    mnt = newMountpoint('perm');
    store = CompositionStore.open(path.join(tmp, 'perm-state'));
    store.compose('p', [{ file: path.join(tmp, 'a.img'), offset: 0, length: 5000 }]);
    mount = await ComposedMount.mount(store, mnt, { group: GROUP });
  });

  afterAll(async () => {
    try {
      await mount?.unmount();
    } finally {
      unmountQuietly(mnt);
      store?.close();
    }
  });

  const asUser = (groups: number[], cmd: string[]) =>
    spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${groups.join(',') || NOBODY}`, ...cmd], {
      encoding: 'utf8',
    });

  it('a member of the group reads; anyone else gets EACCES', () => {
    const f = path.join(mnt, 'livemr_p');
    const st = fs.statSync(f);
    expect(st.gid).toBe(GROUP);
    expect(st.mode & 0o777).toBe(0o440);
    const member = asUser([GROUP], ['sha256sum', f]);
    expect(member.status).toBe(0);
    expect(member.stdout.split(' ')[0]).toBe(sha(fs.readFileSync(path.join(tmp, 'a.img')).subarray(0, 5000)));
    const other = asUser([], ['cat', f]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    expect(asUser([], ['ls', mnt]).stderr).toMatch(/Permission denied/);
    expect(asUser([GROUP], ['ls', mnt]).stdout.trim()).toBe('livemr_p');
  });
});

describe('the livemr mount daemon', () => {
  it('compose/ls/decompose through the daemon; kill -9 leaves a stale mount, a restart cleans it and brings the same files back', async () => {
    const mp = newMountpoint('d1');
    const state = path.join(tmp, 'd1-state');
    const { child } = await startDaemon(mp, state);
    const img = path.join(tmp, 'a.img');
    let r = livemr('compose', 'x', '--segment', `${img}:7:3000`, '--zero', '10', '--segment', `${img}:9000:123`, '--state', state);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/livemr_x 3133 bytes, 3 segments/);
    r = livemr('compose', 'y', '--segment', `${img}:0:10`, '--state', state);
    expect(r.code).toBe(0);
    expect(livemr('decompose', 'y', '--state', state).code).toBe(0);
    expect(livemr('decompose', 'y', '--state', state).code).toBe(1);
    const ls = JSON.parse(livemr('ls', '--json', '--state', state).stdout) as { fileName: string; size: number }[];
    expect(ls.map((f) => [f.fileName, f.size])).toEqual([['livemr_x', 3133]]);
    expect(livemr('compose', 'bad', '--segment', `${img}:x:1`, '--state', state).code).toBe(2);
    const before = sha(fs.readFileSync(path.join(mp, 'livemr_x')));

    child.kill('SIGKILL');
    expect(await exited(child, 5000)).toBe(true);
    expect(errno(() => fs.readdirSync(mp))).toBe('ENOTCONN'); // the stale mount a crash leaves

    await startDaemon(mp, state);
    expect(fs.readdirSync(mp)).toEqual(['livemr_x']);
    expect(sha(fs.readFileSync(path.join(mp, 'livemr_x')))).toBe(before);
    expect(livemr('umount', '--state', state).code).toBe(0);
    expect(mounted(mp)).toBe(false);
  });

  it('SIGTERM unmounts and exits promptly even with a file held open', async () => {
    const mp = newMountpoint('d2');
    const state = path.join(tmp, 'd2-state');
    livemr('compose', 'held', '--segment', `${path.join(tmp, 'a.img')}:0:65536`, '--state', state);
    const { child, log } = await startDaemon(mp, state);
    const fd = fs.openSync(path.join(mp, 'livemr_held'), 'r');
    try {
      const t0 = Date.now();
      child.kill('SIGTERM');
      expect(await exited(child, 15_000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(child.exitCode).toBe(0);
      expect(log()).toMatch(/stopping \(SIGTERM\)/);
      expect(mounted(mp)).toBe(false);
      // the held descriptor now fails instead of hanging
      expect(errno(() => fs.readSync(fd, Buffer.alloc(10), 0, 10, 0))).toMatch(/ENOTCONN|ENODEV|EIO/);
    } finally {
      errno(() => fs.closeSync(fd)); // close on an aborted connection reports ENOTCONN
    }
  });

  it('livemr umount MOUNTPOINT (fusermount3) makes the daemon exit', async () => {
    const mp = newMountpoint('d3');
    const { child } = await startDaemon(mp, path.join(tmp, 'd3-state'));
    expect(livemr('umount', mp).code).toBe(0);
    expect(await exited(child, 10_000)).toBe(true);
    expect(mounted(mp)).toBe(false);
  });

  it('refuses a second daemon on the same state directory and a live mountpoint', async () => {
    const mp = newMountpoint('d4');
    const state = path.join(tmp, 'd4-state');
    const { child } = await startDaemon(mp, state);
    const r = livemr('mount', newMountpoint('d4b'), '--state', state);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/in use by pid/);
    const r2 = livemr('mount', mp, '--state', path.join(tmp, 'd4c-state'));
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/already mounted/);
    child.kill('SIGTERM');
    expect(await exited(child, 10_000)).toBe(true);
  });
});
