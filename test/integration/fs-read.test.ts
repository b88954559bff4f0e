// Byte-exact reads of composed files through the real FUSE mount, against a reference built with dd:
// cat, dd, pread windows across segment boundaries, four concurrent readers, sendfile, splice, mmap,
// and Java FileChannel.transferTo / map. Sources have offsets beyond 4 GiB (sparse files).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComposedMount } from '../../src/fs/mount.js';
import { CompositionStore, type SegmentSpec } from '../../src/fs/store.js';

const run = promisify(execFile);
const GiB = 2 ** 30;
const MiB = 2 ** 20;

let tmp: string;
let mnt: string;
let store: CompositionStore;
let mount: ComposedMount | undefined;
let spliceMount: ComposedMount | undefined;
let mntSplice: string;
let ref: Buffer;
let refHash: string;
let segs: SegmentSpec[];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { maxBuffer: 64 * MiB }).toString().trim();

function unmountQuietly(mp: string): void {
  if (spawnSync('fusermount3', ['-u', mp], { stdio: 'ignore' }).status !== 0)
    spawnSync('fusermount3', ['-u', '-z', mp], { stdio: 'ignore' });
}

/** Deterministic pseudo-random numbers (the test must be reproducible). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-fsread-'));
  mnt = path.join(tmp, 'mnt');
  fs.mkdirSync(mnt);
  mntSplice = path.join(tmp, 'mnt-splice');
  fs.mkdirSync(mntSplice);
  const big = path.join(tmp, 'big.img'); // 6 GiB sparse, random data in four 4 MiB chunks
  const small = path.join(tmp, 'small.img');
  const chunks = [0, 2 * GiB + 12345, 4 * GiB + 777_777, 5 * GiB + 3];
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 6 * GiB);
  for (const c of chunks) sh(`dd if=/dev/urandom of=${big} bs=1M count=4 seek=${c} oflag=seek_bytes conv=notrunc status=none`);
  sh(`dd if=/dev/urandom of=${small} bs=1M count=8 status=none`);

  const r = rng(42);
  segs = [];
  for (let k = 0; k < 24; k++) {
    const length = 1 + Math.floor(r() * 1.5 * MiB) | 1; // odd, unaligned
    if (k % 6 === 5) segs.push({ zero: true, length });
    else if (k % 3 === 0) segs.push({ file: small, offset: 1 + Math.floor(r() * 6 * MiB), length });
    else {
      const base = chunks[k % 4]!;
      segs.push({ file: big, offset: base + 1 + Math.floor(r() * 2 * MiB), length: Math.min(length, 2 * MiB - 1) });
    }
  }
  // the reference, built by dd from the same ranges
  const refFile = path.join(tmp, 'ref');
  fs.writeFileSync(refFile, '');
  for (const s of segs) {
    const src = 'zero' in s ? '/dev/zero' : s.file;
    const skip = 'zero' in s ? 0 : s.offset;
    sh(`dd if=${src} of=${refFile} bs=64K skip=${skip} count=${s.length} iflag=skip_bytes,count_bytes oflag=append conv=notrunc status=none`);
  }
  ref = fs.readFileSync(refFile);
  refHash = sha(ref);

  store = CompositionStore.open(path.join(tmp, 'state'));
  store.compose('t', segs);
  store.compose('direct', segs, { directIo: true });
  // a composed file that is itself larger than 4 GiB: 4.5 GiB of zeros, then data from 5 GiB + 3
  store.compose('far', [{ zero: true, length: 4.5 * GiB }, { file: big, offset: 5 * GiB + 3, length: 100_000 }]);
  mount = await ComposedMount.mount(store, mnt);
  spliceMount = await ComposedMount.mount(store, mntSplice, { splice: true }); // same store, splice replies
}, 120_000);

afterAll(async () => {
  try {
    await mount?.unmount();
    await spliceMount?.unmount();
  } finally {
    unmountQuietly(mnt);
    unmountQuietly(mntSplice);
    store?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

describe('composed file reads are byte-exact', () => {
  it('has the composed size and at least 16 unaligned segments', () => {
    expect(store.get('t')!.segments.count).toBeGreaterThanOrEqual(16);
    expect(fs.statSync(path.join(mnt, 'livemr_t')).size).toBe(ref.length);
    expect(ref.length).toBeGreaterThan(10 * MiB);
  });

  it('cat', () => {
    expect(sh(`cat ${mnt}/livemr_t | sha256sum | cut -d' ' -f1`)).toBe(refHash);
  });

  it('dd with 1 MiB and odd block sizes, and with O_DIRECT on a direct_io file', () => {
    expect(sh(`dd if=${mnt}/livemr_t bs=1M status=none | sha256sum | cut -d' ' -f1`)).toBe(refHash);
    expect(sh(`dd if=${mnt}/livemr_t bs=4097 status=none | sha256sum | cut -d' ' -f1`)).toBe(refHash);
    expect(sh(`dd if=${mnt}/livemr_direct bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1`)).toBe(refHash);
  });

  it('pread windows across every segment boundary and at random places', () => {
    const fd = fs.openSync(path.join(mnt, 'livemr_t'), 'r');
    try {
      const check = (off: number, len: number) => {
        const b = Buffer.alloc(len);
        const n = fs.readSync(fd, b, 0, len, off);
        expect(n).toBe(Math.max(0, Math.min(len, ref.length - off)));
        expect(b.subarray(0, n).equals(ref.subarray(off, off + n))).toBe(true);
      };
      for (const s of store.segments('t')) for (const d of [-4097, -1, 0, 1]) if (s.at + d >= 0) check(s.at + d, 8193);
      const r = rng(7);
      for (let i = 0; i < 300; i++) check(Math.floor(r() * ref.length), 1 + Math.floor(r() * 300_000));
      check(ref.length - 10, 100); // short read at EOF
      check(ref.length + 5, 100); // beyond EOF: 0 bytes
    } finally {
      fs.closeSync(fd);
    }
  });

  it('four concurrent readers (page cache dropped first)', async () => {
    sh(`dd if=${mnt}/livemr_t iflag=nocache count=0 status=none`); // POSIX_FADV_DONTNEED on the composed file
    const outs = await Promise.all(
      [65536, 1 << 20, 131072, 4097].map((bs) =>
        run('bash', ['-c', `dd if=${mnt}/livemr_t bs=${bs} status=none | sha256sum | cut -d' ' -f1`]),
      ),
    );
    for (const o of outs) expect(o.stdout.trim()).toBe(refHash);
  });

  it('a composed file larger than 4 GiB reads its tail exactly', () => {
    const tail = sh(`dd if=${mnt}/livemr_far bs=64K skip=${4.5 * GiB} iflag=skip_bytes status=none | sha256sum | cut -d' ' -f1`);
    const want = sh(`dd if=${tmp}/big.img bs=64K skip=${5 * GiB + 3} count=100000 iflag=skip_bytes,count_bytes status=none | sha256sum | cut -d' ' -f1`);
    expect(tail).toBe(want);
    expect(fs.statSync(path.join(mnt, 'livemr_far')).size).toBe(4.5 * GiB + 100_000);
  });

  it('sendfile, splice and mmap (python3 os.sendfile / os.splice / mmap)', () => {
    const py = `
import hashlib, mmap, os, socket, sys, threading
p = sys.argv[1]; size = os.path.getsize(p); out = {}
a, b = socket.socketpair()
def drain(key, s):
    h = hashlib.sha256()
    while True:
        d = s.recv(1 << 20)
        if not d: break
        h.update(d)
    out[key] = h.hexdigest()
t = threading.Thread(target=drain, args=('sendfile', b)); t.start()
fd = os.open(p, os.O_RDONLY); off = 0
while off < size:
    n = os.sendfile(a.fileno(), fd, off, size - off)
    assert n > 0; off += n
a.close(); t.join()
r, w = os.pipe(); h = hashlib.sha256(); off = 0
while off < size:
    n = os.splice(fd, w, min(65536, size - off), offset_src=off)
    assert n > 0; off += n
    got = 0
    while got < n:
        d = os.read(r, n - got); h.update(d); got += len(d)
out['splice'] = h.hexdigest()
with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m: out['mmap'] = hashlib.sha256(m).hexdigest()
print(out['sendfile'], out['splice'], out['mmap'])
`;
    const res = execFileSync('python3', ['-c', py, path.join(mnt, 'livemr_t')]).toString().trim().split(' ');
    expect(res).toEqual([refHash, refHash, refHash]);
  });

  it('Java FileChannel.transferTo to a socket (what a DataNode does) and FileChannel.map', () => {
    const src = path.join(tmp, 'TransferTo.java');
    fs.writeFileSync(
      src,
      `import java.io.*; import java.net.*; import java.nio.*; import java.nio.channels.*; import java.nio.file.*; import java.security.*;
public class TransferTo {
  static String hex(byte[] d) { StringBuilder s = new StringBuilder(); for (byte b : d) s.append(String.format("%02x", b)); return s.toString(); }
  public static void main(String[] a) throws Exception {
    Path p = Paths.get(a[0]);
    try (FileChannel fc = FileChannel.open(p, StandardOpenOption.READ);
         ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
      long size = fc.size();
      SocketChannel out = SocketChannel.open(ss.getLocalAddress());
      SocketChannel in = ss.accept();
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      Thread t = new Thread(() -> { try { ByteBuffer b = ByteBuffer.allocate(1 << 20);
        while (in.read(b) >= 0) { b.flip(); md.update(b); b.clear(); } } catch (IOException e) { throw new UncheckedIOException(e); } });
      t.start();
      long pos = 0;
      while (pos < size) { long n = fc.transferTo(pos, size - pos, out); if (n <= 0) throw new IOException("transferTo returned " + n); pos += n; }
      out.close(); t.join();
      MessageDigest mm = MessageDigest.getInstance("SHA-256");
      mm.update(fc.map(FileChannel.MapMode.READ_ONLY, 0, size));
      System.out.println(hex(md.digest()) + " " + hex(mm.digest()));
    }
  }
}
`,
    );
    execFileSync('javac', ['-d', tmp, src]);
    const res = execFileSync('java', ['-cp', tmp, 'TransferTo', path.join(mnt, 'livemr_t')]).toString().trim().split(' ');
    expect(res).toEqual([refHash, refHash]);
  });

  it('the splice read path (--splice mount) gives the same bytes', async () => {
    const f = path.join(mntSplice, 'livemr_t');
    sh(`dd if=${f} iflag=nocache count=0 status=none`);
    expect(sh(`cat ${f} | sha256sum | cut -d' ' -f1`)).toBe(refHash);
    expect(sh(`dd if=${path.join(mntSplice, 'livemr_direct')} bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1`)).toBe(refHash);
    const fd = fs.openSync(path.join(mntSplice, 'livemr_direct'), 'r'); // direct_io: every pread is a request
    try {
      for (const s of store.segments('t')) {
        const off = Math.max(0, s.at - 3000);
        const b = Buffer.alloc(6000);
        const n = fs.readSync(fd, b, 0, 6000, off);
        expect(b.subarray(0, n).equals(ref.subarray(off, off + n))).toBe(true);
      }
    } finally {
      fs.closeSync(fd);
    }
    expect(spliceMount!.stats().readErrors).toBe(0);
  });

  it('served every read in the addon without errors', () => {
    const st = mount!.stats();
    expect(st.reads).toBeGreaterThan(0);
    expect(st.readErrors).toBe(0);
  });
});
