// The guest side of the consistency run: bundled by esbuild (bundleWorkload) into one .mjs, pushed
// into the guest with the control channel and run with node there. It writes files on both data
// disks in the ways docs/consistency.md lists and logs every operation, with the guest's
// CLOCK_REALTIME before and after, as JSON lines. One writer, so log order is the order of effects.
// Sizes are kept bounded (rotation, truncation) so a long soak fits on the 256 MiB disks.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { Rng } from '../../src/cache/rng.js';
import type { GuestOp } from './history.js';
import { pattern } from './pattern.js';

export interface WorkloadConfig {
  seed: number;
  durationMs: number;
  log: string;
  done: string;
  /**
   * the directories the files live in, one per data disk: name → dir; `trim`: a disk QEMU runs with
   * discard=unmap and detect-zeroes=unmap, where the workload also writes zeros over data, punches
   * holes and runs fstrim (case 6)
   */
  dirs: { disk: string; dir: string; trim?: boolean }[];
  /** mean pause between operations, ms */
  pauseMs: number;
  /** app.log and direct.bin rotate past this size, trunc.log and cp.log past half of it (default 8 MiB) */
  rotateBytes?: number;
}

/** The guest paths a run shares (the host agent asks for all of them). */
export function workloadPaths(dirs: { disk: string; dir: string }[]): string[] {
  const out: string[] = [];
  for (const { dir } of dirs) out.push(...FILES.map((f) => `${dir}/${f}`));
  return out;
}

/** A name too long for a composition name (the store's limit is 200 characters): the host refuses it, and only it (case 4). */
export const LONG_NAME = `long-${'l'.repeat(200)}.log`;
/** Shared, then its consent revoked while host readers may hold it open; unlinked and created again (case 2). */
export const REVOKE_NAME = 'revoke.log';
const FILES = ['app.log', 'app.log.1', 'trunc.log', 'cp.log', 'cp.log.1', 'sparse.bin', 'direct.bin', 'churn-0.bin', 'churn-1.bin', REVOKE_NAME, LONG_NAME];
const MiB = 1 << 20;
const SHARE = 'user.livemr.share';
const now = () => performance.timeOrigin + performance.now();

interface F { key: number; gen: number; size: number; path: string; disk: string; fd: number; born: number }

export function runWorkload(cfg: WorkloadConfig): void {
  const rng = new Rng(cfg.seed);
  const logFd = fs.openSync(cfg.log, 'w');
  let pendingLog: string[] = [];
  let lastFlush = now();
  const log = (op: GuestOp) => {
    pendingLog.push(JSON.stringify(op));
    if (now() - lastFlush > 100 || op.op === 'end') {
      fs.writeSync(logFd, pendingLog.join('\n') + '\n');
      pendingLog = [];
      lastFlush = now();
    }
  };
  let setxattr: (path: string, name: string, value: Buffer) => void;
  let removexattr: (path: string, name: string) => void;
  try {
    const nat = createRequire(import.meta.url)('/opt/livemr/livemr_guest.node') as { setxattr: typeof setxattr; removexattr: typeof removexattr };
    setxattr = (p, n, v) => nat.setxattr(p, n, v);
    removexattr = (p, n) => nat.removexattr(p, n);
  } catch {
    setxattr = (p, n) => execFileSync('setfattr', ['-n', n, '-v', '1', p]);
    removexattr = (p, n) => execFileSync('setfattr', ['-x', n, p]);
  }
  let nextKey = 1;
  const files = new Map<string, F>(); // path → live file
  const logSize = () => Math.max(1, Math.floor(Math.exp(rng.next() * Math.log(MiB)))); // 1 B … 1 MiB, log-uniform

  const create = (disk: string, path: string): F => {
    const t0 = now();
    const fd = fs.openSync(path, 'wx+');
    setxattr(path, SHARE, Buffer.from('1'));
    const f: F = { key: nextKey++, gen: 0, size: 0, path, disk, fd, born: t0 };
    files.set(path, f);
    log({ op: 'create', t0, t1: now(), key: f.key, path, disk, ino: fs.fstatSync(fd).ino });
    return f;
  };
  const unlink = (f: F) => {
    const t0 = now();
    fs.unlinkSync(f.path);
    fs.closeSync(f.fd);
    files.delete(f.path);
    log({ op: 'unlink', t0, t1: now(), key: f.key, path: f.path });
  };
  const write = (f: F, off: number, len: number, how: 'buf' | 'fsync') => {
    const b = pattern(f.key, f.gen, off, len);
    const t0 = now();
    fs.writeSync(f.fd, b, 0, len, off);
    if (how === 'fsync') fs.fsyncSync(f.fd);
    f.size = Math.max(f.size, off + len);
    log({ op: 'write', t0, t1: now(), key: f.key, off, len, src: f.key, sgen: f.gen, how });
  };
  const trunc = (f: F, size: number, newGen: boolean) => {
    const t0 = now();
    fs.ftruncateSync(f.fd, size);
    f.size = size;
    log({ op: 'trunc', t0, t1: now(), key: f.key, size });
    if (newGen) f.gen++;
  };
  const get = (disk: string, dir: string, name: string) => files.get(`${dir}/${name}`) ?? create(disk, `${dir}/${name}`);
  const append = (f: F) => write(f, f.size, logSize(), rng.next() < 0.25 ? 'fsync' : 'buf');
  /** unlink the live churn file (older than 3 s), then another that likely reuses the freed blocks */
  const churnAt = new Map<string, number>(); // disk → which churn name is live
  const churn = (disk: string, dir: string) => {
    const i = churnAt.get(disk) ?? 0;
    const cur = files.get(`${dir}/churn-${i}.bin`);
    if (cur && now() - cur.born > 3000) {
      unlink(cur);
      churnAt.set(disk, 1 - i);
      const f = create(disk, `${dir}/churn-${1 - i}.bin`);
      write(f, 0, MiB + rng.int(3 * MiB), 'fsync');
    } else if (!cur) {
      const f = create(disk, `${dir}/churn-${i}.bin`);
      write(f, 0, MiB + rng.int(3 * MiB), 'fsync');
    }
  };
  const revokedAt = new Map<number, number>(); // key → when its consent was removed

  for (const { dir } of cfg.dirs) {
    fs.mkdirSync(dir, { recursive: true });
    for (const n of FILES) fs.rmSync(`${dir}/${n}`, { force: true });
  }
  const chunk = '/tmp/cons-direct.chunk';
  let directOk = true;
  let trimOk = true;
  const ROT = cfg.rotateBytes ?? 8 * MiB;
  const end = now() + cfg.durationMs;
  let n = 0;
  while (now() < end) {
    const { disk, dir, trim } = cfg.dirs[rng.int(cfg.dirs.length)]!;
    const r = rng.next();
    if (r < 0.4) {
      // append-only log, rotated by rename + create
      let f = get(disk, dir, 'app.log');
      if (f.size > ROT) {
        const t0 = now();
        const to = `${dir}/app.log.1`;
        const old = files.get(to);
        fs.renameSync(f.path, to);
        if (old) { fs.closeSync(old.fd); files.delete(to); }
        files.delete(f.path);
        log({ op: 'rename', t0, t1: now(), key: f.key, from: f.path, to, replaced: old?.key });
        f.path = to;
        files.set(to, f);
        f = create(disk, `${dir}/app.log`);
      }
      write(f, f.size, logSize(), rng.next() < 0.25 ? 'fsync' : 'buf');
    } else if (r < 0.5) {
      // truncate to a random smaller size, then regrow: a new generation past the cut
      const f = get(disk, dir, 'trunc.log');
      if (f.size > ROT / 2) trunc(f, rng.int(f.size >> 1), true);
      else write(f, f.size, logSize(), rng.next() < 0.25 ? 'fsync' : 'buf');
    } else if (r < 0.6) {
      // rotation by copytruncate
      const f = get(disk, dir, 'cp.log');
      if (f.size > ROT / 2) {
        const to = `${dir}/cp.log.1`;
        const old = files.get(to);
        if (old) unlink(old);
        const t0 = now();
        fs.copyFileSync(f.path, to);
        setxattr(to, SHARE, Buffer.from('1'));
        const c: F = { key: nextKey++, gen: 0, size: f.size, path: to, disk, fd: fs.openSync(to, 'r+'), born: t0 };
        files.set(to, c);
        log({ op: 'copy', t0, t1: now(), key: c.key, from: f.key, path: to, disk, ino: fs.fstatSync(c.fd).ino });
        trunc(f, 0, true);
      } else write(f, f.size, logSize(), rng.next() < 0.25 ? 'fsync' : 'buf');
    } else if (r < 0.7) {
      // sparse file: writes into holes, fallocate, truncate to 0 and regrow
      let f = files.get(`${dir}/sparse.bin`);
      if (!f) { f = create(disk, `${dir}/sparse.bin`); trunc(f, 16 * MiB, false); }
      const q = rng.next();
      if (q < 0.05) { trunc(f, 0, true); trunc(f, 16 * MiB, false); } else if (q < 0.2) {
        const off = rng.int(4096) * 4096;
        const len = (1 + rng.int(256)) * 4096;
        const t0 = now();
        execFileSync('fallocate', ['-o', String(off), '-l', String(len), f.path]);
        log({ op: 'falloc', t0, t1: now(), key: f.key, off, len });
        f.size = Math.max(f.size, off + len);
      } else {
        const len = Math.min(logSize(), 256 * 1024);
        write(f, rng.int(f.size - len), len, rng.next() < 0.25 ? 'fsync' : 'buf');
      }
    } else if (r < 0.8 && directOk) {
      // O_DIRECT appends (dd aligns its buffer; offsets and sizes stay 4 KiB multiples)
      const f = get(disk, dir, 'direct.bin');
      if (f.size > ROT) trunc(f, 0, true);
      else {
        const len = (1 + rng.int(64)) * 4096;
        fs.writeFileSync(chunk, pattern(f.key, f.gen, f.size, len));
        const t0 = now();
        try {
          execFileSync('dd', [`if=${chunk}`, `of=${f.path}`, `bs=${len}`, 'count=1', 'oflag=direct,append', 'conv=notrunc', 'status=none'], { stdio: ['ignore', 'ignore', 'pipe'] });
          log({ op: 'write', t0, t1: now(), key: f.key, off: f.size, len, src: f.key, sgen: f.gen, how: 'direct' });
          f.size += len;
        } catch (e) {
          process.stderr.write(`O_DIRECT append failed, no more: ${(e as Error).message}\n`);
          directOk = false;
        }
      }
    } else if (r < 0.85) {
      churn(disk, dir);
    } else if (r < 0.92) {
      // case 2: an append-only log whose owner revokes consent after a while (the host readers may
      // hold it open); it keeps growing unshared, then is unlinked and created again with consent
      const f = files.get(`${dir}/${REVOKE_NAME}`);
      const at = f && revokedAt.get(f.key);
      if (!f) append(create(disk, `${dir}/${REVOKE_NAME}`));
      else if (at !== undefined && now() - at > 1000) { unlink(f); append(create(disk, `${dir}/${REVOKE_NAME}`)); }
      else if (at === undefined && now() - f.born > 2000 && rng.next() < 0.3) {
        const t0 = now();
        removexattr(f.path, SHARE);
        revokedAt.set(f.key, t0);
        log({ op: 'revoke', t0, t1: now(), key: f.key, path: f.path });
      } else append(f);
    } else if (r < 0.95) {
      // case 4: one batch of the helper with a file the host must refuse (its name is too long) and
      // other files' truncate and removal, which it must apply all the same
      const f = get(disk, dir, LONG_NAME);
      if (f.size > MiB) trunc(f, 0, true);
      else write(f, f.size, 1 + rng.int(64 * 1024), 'buf');
      const t = files.get(`${dir}/trunc.log`);
      if (t && t.size > 0) trunc(t, rng.int(t.size), true);
      churn(disk, dir);
    } else if (trim && trimOk) {
      // case 6: the guest discards blocks — zeros over data (detect-zeroes=unmap turns them into
      // discards), a punched hole, fstrim of the freed blocks — and QEMU reuses the clusters
      const f = files.get(`${dir}/sparse.bin`);
      const q = rng.next();
      if (f && f.size < 16 * 65536) { /* between its truncate and regrowth */ } else if (f && q < 0.4) {
        const len = (1 + rng.int(4)) * 65536;
        const off = rng.int(Math.floor((f.size - len) / 65536)) * 65536;
        const t0 = now();
        fs.writeSync(f.fd, Buffer.alloc(len), 0, len, off);
        fs.fsyncSync(f.fd);
        log({ op: 'write', t0, t1: now(), key: f.key, off, len, src: 0, sgen: 0, how: 'zero' });
      } else if (f && q < 0.7) {
        const len = (1 + rng.int(16)) * 65536;
        const off = rng.int(Math.floor((f.size - len) / 65536)) * 65536;
        const t0 = now();
        try {
          execFileSync('fallocate', ['-p', '-o', String(off), '-l', String(len), f.path], { stdio: ['ignore', 'ignore', 'pipe'] });
          log({ op: 'punch', t0, t1: now(), key: f.key, off, len });
        } catch (e) { trimOk = false; process.stderr.write(`punch failed, no more discards: ${(e as Error).message}\n`); }
      } else {
        const t0 = now();
        try {
          execFileSync('fstrim', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
          log({ op: 'trim', t0, t1: now(), disk });
        } catch (e) { trimOk = false; process.stderr.write(`fstrim failed, no more discards: ${(e as Error).message}\n`); }
      }
    }
    n++;
    const p = rng.next() < 0.02 ? 300 : rng.next() * 2 * cfg.pauseMs; // now and then a quiet period
    if (p > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, p);
  }
  const t0 = now();
  const live = [...files.values()].map((f) => {
    fs.fsyncSync(f.fd);
    return { key: f.key, path: f.path, size: fs.fstatSync(f.fd).size, sha256: createHash('sha256').update(fs.readFileSync(f.path)).digest('hex') };
  });
  log({ op: 'end', t0, t1: now(), files: live });
  fs.closeSync(logFd);
  fs.writeFileSync(cfg.done, `${n}\n`);
}

/**
 * The guest clock for the host (busybox `date` has no sub-second format): every request written
 * to the FIFO `req` is answered on the FIFO `rsp` with CLOCK_REALTIME in ms, taken between the
 * host's send and its receipt, so the round trip bounds the error.
 */
export function serveClock(req: string, rsp: string): void {
  const b = Buffer.alloc(64);
  fs.writeFileSync(`${req}.ready`, '');
  for (;;) {
    const fd = fs.openSync(req, 'r');
    while (fs.readSync(fd, b, 0, b.length, null) > 0) { /* drain */ }
    fs.closeSync(fd);
    const out = fs.openSync(rsp, 'w');
    fs.writeSync(out, `${now().toFixed(3)}\n`);
    fs.closeSync(out);
  }
}

// entry points in the guest: node workload.mjs CONFIG.json | node workload.mjs --clock REQ RSP
if (process.argv[1]?.endsWith('.mjs')) {
  if (process.argv[2] === '--clock') serveClock(process.argv[3]!, process.argv[4]!);
  else if (process.argv[2]) runWorkload(JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as WorkloadConfig);
}
