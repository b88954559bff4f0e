// Host readers running while the guest writes (docs/consistency.md, "Readers"): on the FUSE mount a
// whole-file read, pread at random offsets, mmap (python3, its own process), `tail -F`; on the
// WebHDFS gateway OPEN with offset and length; and `hold`, a descriptor kept open for seconds across
// removals, revocations and shrinks, each pread on it checked on its own (the interval is that
// pread's, so a read issued after the host published a removal must fail: EIO, or EOF past a shrink).
// Every read becomes a ReadRecord with its host
// CLOCK_REALTIME interval. Each reader is sequential, so a reader's next read starts after its last
// one ended: `lowWater()` bounds the start of every read not yet recorded.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../src/cache/rng.js';
import { compositionName, unescapePath } from '../../src/host/naming.js';
import type { ReadRecord, ReaderKind } from './history.js';

export const hostNow = (): number => performance.timeOrigin + performance.now();

export interface ReadersOptions {
  mount: string;
  vm: string;
  /** http://127.0.0.1:PORT of the agent's gateway */
  gateway: string;
  /** guest paths followed with tail -F (append-only, rotated by rename) */
  tailPaths: string[];
  seed: number;
  /** pause between reads of one reader (ms) */
  pauseMs: number;
  record(r: ReadRecord): void;
  /** true while the checker is behind: the in-process readers wait (their reads stay in memory until checked) */
  busy?: () => boolean;
}

export interface Readers {
  /** no read not yet recorded started before this host time */
  lowWater(): number;
  stop(): Promise<void>;
  stats(): { mmapRestarts: number; errors: number; errorSamples: string[]; holdEnded: number };
  /**
   * while on (an agent restart: no mount), reader errors are not counted and `hold` keeps no
   * descriptor; resolves once it has closed them
   */
  quiet(on: boolean): Promise<void>;
}

const MMAP_PY = String.raw`
import json, mmap, os, random, sys, time, base64
mnt, prefix, pause, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
random.seed(seed)
while True:
    names = [n for n in os.listdir(mnt) if n.startswith(prefix)]
    if not names:
        time.sleep(0.05); continue
    n = random.choice(names)
    s = time.time() * 1000
    try:
        fd = os.open(os.path.join(mnt, n), os.O_RDONLY)
    except OSError:
        continue
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            continue
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        off = max(0, size - random.randint(1, 65536)) if random.random() < 0.5 else random.randrange(size)
        ln = min(size - off, random.randint(1, 65536))
        data = m[off:off + ln]
        m.close()
    except (OSError, ValueError):
        continue
    finally:
        os.close(fd)
    e = time.time() * 1000
    sys.stdout.write(json.dumps({"name": n, "off": off, "eof": off + ln == size, "s": s, "e": e, "data": base64.b64encode(data).decode()}) + "\n")
    sys.stdout.flush()
    time.sleep(pause)
`;

const TAIL_MSG = /tail: [^\n]*\n/g;

/** Where a tail note starts that this chunk does not finish (its newline, or even its 'tail: ', is in the next), or -1. */
export function splitNote(d: Buffer): number {
  const open = d.lastIndexOf('tail: ');
  if (open >= 0 && d.indexOf(0x0a, open) < 0) return open;
  for (let k = Math.min(5, d.length); k >= 1; k--) if ('tail: '.startsWith(d.subarray(d.length - k).toString('latin1'))) return d.length - k;
  return -1;
}

export function startReaders(o: ReadersOptions): Readers {
  const prefix = `livemr_${o.vm}_`;
  const pathOf = (name: string) => unescapePath(name.slice(prefix.length));
  let stopping = false;
  let errors = 0;
  let mmapRestarts = 0;
  let holdEnded = 0;
  let quiet = false;
  let holding = false; // the hold reader has descriptors open
  const errorSamples: string[] = [];
  const fail = (msg: string) => {
    if (quiet) return;
    errors++;
    if (errorSamples.length < 5) errorSamples.push(msg);
  };
  const marks = new Map<string, number>(); // reader → end of its last read (or its start)
  const loops: Promise<void>[] = [];
  const children: ChildProcess[] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const rec = (reader: string, kind: ReaderKind, name: string, off: number, data: Buffer, eof: boolean, s: number, e: number, opened?: number) => {
    if (kind !== 'tail') marks.set(reader, e); // a tail chunk is stamped on arrival: none can start before now
    o.record({ reader, kind, path: pathOf(name), off, data, eof, s, e, ...(opened === undefined ? {} : { opened }) });
  };
  const names = async () => (await fsp.readdir(o.mount)).filter((n) => n.startsWith(prefix));

  const loop = (reader: string, rng: Rng, body: (name: string) => Promise<void>) => {
    marks.set(reader, hostNow());
    loops.push((async () => {
      while (!stopping) {
        try {
          const l = await names();
          if (l.length) await body(l[rng.int(l.length)]!);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT') fail(`${reader}: ${(e as Error).message}`);
        }
        marks.set(reader, Math.max(marks.get(reader)!, hostNow() - 1)); // nothing in flight now
        await sleep(rng.next() * 2 * o.pauseMs);
        while (o.busy?.() && !stopping) {
          await sleep(50);
          marks.set(reader, Math.max(marks.get(reader)!, hostNow() - 1)); // waiting: nothing in flight
        }
      }
    })());
  };
  // where in a file to read: half the time near the end, where the tail races the writer
  const offsetIn = (rng: Rng, size: number) => (rng.next() < 0.5 ? Math.max(0, size - 1 - rng.int(65536)) : rng.int(size));
  const lenFor = (rng: Rng) => 1 + rng.int(rng.next() < 0.3 ? 4096 : 256 * 1024);

  const r1 = new Rng(o.seed + 1);
  loop('read', r1, async (name) => {
    const s = hostNow();
    const data = await fsp.readFile(join(o.mount, name));
    rec('read', 'read', name, 0, data, true, s, hostNow());
  });
  const r2 = new Rng(o.seed + 2);
  loop('pread', r2, async (name) => {
    const s = hostNow();
    const fh = await fsp.open(join(o.mount, name), 'r');
    try {
      const size = (await fh.stat()).size;
      if (size === 0) return;
      const off = offsetIn(r2, size);
      const len = lenFor(r2);
      const buf = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, off + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      rec('pread', 'pread', name, off, buf.subarray(0, got), got < len, s, hostNow());
    } finally {
      await fh.close();
    }
  });
  const r3 = new Rng(o.seed + 3);
  loop('webhdfs', r3, async (name) => {
    const size = (await fsp.stat(join(o.mount, name))).size;
    if (size === 0) return;
    const off = offsetIn(r3, size);
    const len = lenFor(r3);
    const s = hostNow();
    const res = await fetch(`${o.gateway}/webhdfs/v1/${name}?op=OPEN&offset=${off}&length=${len}&user.name=livemr-checker`);
    const data = Buffer.from(await res.arrayBuffer());
    const e = hostNow();
    if (res.status === 200) rec('webhdfs', 'webhdfs', name, off, data, data.length < len, s, e);
    else if (res.status !== 404 && res.status !== 403) fail(`webhdfs ${res.status}: ${data.toString().slice(0, 200)}`); // 404 removed, 403 offset past a shrunk end
  });

  // hold: a descriptor open on every file that gets removed, revoked, replaced or cut (and one
  // other) for 3-6 s, a pread on one of them every 10-50 ms — the same range again now and then (its
  // pages cached); a descriptor whose file was removed (EIO) is closed, the others go on
  const r6 = new Rng(o.seed + 6);
  const risky = /_(revoke\.log|churn--\d\.bin|cp\.log\.1|app\.log(\.1)?|trunc\.log)$/;
  const gone = (e: unknown) => ['EIO', 'ENOENT', 'ENOTCONN', 'ESTALE'].includes((e as NodeJS.ErrnoException).code ?? '');
  loop('hold', r6, async (any) => {
    holding = true;
    const held: { name: string; fh: FileHandle; opened: number; last?: { off: number; len: number } }[] = [];
    try {
      for (const name of new Set([...(await names()).filter((n) => risky.test(n)), any])) {
        const opened = hostNow();
        if (quiet) break;
        try { held.push({ name, fh: await fsp.open(join(o.mount, name), 'r'), opened }); } catch (e) { if (!gone(e)) throw e; }
      }
      const until = hostNow() + 3000 + r6.int(3000);
      while (held.length && hostNow() < until && !stopping && !quiet) {
        const i = r6.int(held.length);
        const h = held[i]!;
        const s = hostNow();
        try {
          const size = (await h.fh.stat()).size;
          if (size > 0) {
            const { off, len } = h.last && r6.next() < 0.3 ? h.last : { off: offsetIn(r6, size), len: lenFor(r6) };
            h.last = { off, len };
            const buf = Buffer.alloc(len);
            const { bytesRead } = await h.fh.read(buf, 0, len, off);
            rec('hold', 'hold', h.name, off, buf.subarray(0, bytesRead), bytesRead < len, s, hostNow(), h.opened);
          }
        } catch (e) {
          // its file was removed (EIO on the open handle) or the mount went away (a restart): expected
          if (!gone(e)) throw e;
          holdEnded++;
          held.splice(i, 1);
          await h.fh.close().catch(() => {});
        }
        await sleep(10 + r6.int(40));
        marks.set('hold', Math.max(marks.get('hold')!, hostNow() - 1));
      }
    } finally {
      await Promise.all(held.map((h) => h.fh.close().catch(() => {})));
      holding = false;
    }
  });

  // mmap: python3, restarted if a file shrinks under its mapping (SIGBUS)
  const startMmap = () => {
    if (stopping) return;
    marks.set('mmap', hostNow());
    const py = spawn('python3', ['-c', MMAP_PY, o.mount, prefix, String(o.pauseMs / 1000), String(o.seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(py);
    let buf = '';
    py.stdout!.setEncoding('utf8');
    py.stdout!.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, nl)) as { name: string; off: number; eof: boolean; s: number; e: number; data: string };
        buf = buf.slice(nl + 1);
        rec('mmap', 'mmap', m.name, m.off, Buffer.from(m.data, 'base64'), m.eof, m.s, m.e);
      }
    });
    py.stderr!.on('data', () => {});
    py.on('exit', (_c, sig) => {
      if (stopping) return;
      if (sig === 'SIGBUS') mmapRestarts++;
      else fail(`mmap reader exited (${_c}, ${sig})`);
      setTimeout(startMmap, 100);
    });
  };
  startMmap();

  // tail -F with stderr merged into stdout, so "replaced"/"truncated" notes arrive in order with the
  // data; pattern bytes are odd and 't' (0x74) and '\n' are even, so a note cannot be data
  // a tail that exits (tail -F gave up on the name) is an error a user would see: counted, restarted
  const startTail = (i: number, p: string) => {
    if (stopping) return;
    const reader = `tail${i}`;
    const name = `livemr_${compositionName(o.vm, p)}`;
    const file = join(o.mount, name);
    const t = spawn('sh', ['-c', 'exec tail -F -c +1 -s 0.1 "$1" 2>&1', 'sh', file], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(t);
    let pos = 0;
    let carry = Buffer.alloc(0); // a note split across chunks waits for its newline
    let lastNote = '';
    t.on('exit', (c, sig) => {
      if (stopping) return;
      fail(`${reader} exited (${c}, ${sig}): ${lastNote}`);
      setTimeout(() => startTail(i, p), 100);
    });
    t.stdout!.on('data', (chunk: Buffer) => {
      const at = hostNow();
      let d = Buffer.concat([carry, chunk]);
      const partial = splitNote(d);
      if (partial >= 0) { carry = Buffer.from(d.subarray(partial)); d = d.subarray(0, partial); } else carry = Buffer.alloc(0);
      let from = 0;
      const text = d.toString('latin1');
      for (const m of text.matchAll(TAIL_MSG)) {
        if (m.index! > from) { rec(reader, 'tail', name, pos, d.subarray(from, m.index), false, at, at); pos += m.index! - from; }
        lastNote = m[0].trim();
        if (/replaced|truncated|appeared|inaccessible/.test(m[0])) pos = 0;
        from = m.index! + m[0].length;
      }
      if (from < d.length) { rec(reader, 'tail', name, pos, d.subarray(from), false, at, at); pos += d.length - from; }
    });
  };
  for (const [i, p] of o.tailPaths.entries()) startTail(i, p);

  return {
    lowWater: () => Math.min(...marks.values()),
    stats: () => ({ mmapRestarts, errors, errorSamples, holdEnded }),
    async quiet(on: boolean) {
      quiet = on;
      for (let i = 0; on && holding && i < 250; i++) await sleep(20);
    },
    async stop() {
      stopping = true;
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      await Promise.all(loops);
      await Promise.all(children.map((c) => new Promise<void>((r) => { if (c.exitCode !== null || c.signalCode !== null) r(); else c.once('exit', () => r()); })));
    },
  };
}
