// The guest helper in a booted guest, driven through the real virtio-serial port by the host-side
// GuestSession: for every scenario the extents the host receives are read from the VM's qcow2 chain
// (through `qemu-img map`, independent of LiveMR's own mapper) and must equal the file's content as
// the guest reads it. One boot for the whole file.
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestSession, type GuestFile } from '../../src/guest/host-session.js';
import { EXTENT_UNMAPPABLE, EXTENT_UNWRITTEN, type MessageOf } from '../../src/guest/protocol.js';
import { readViaQemuImgMap } from '../harness/selfcheck.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';

let vm: GuestVm;
let session: GuestSession;
const statuses: MessageOf<'shareStatus'>[] = [];
const removals: { file: GuestFile; reason: string }[] = [];
const truncations: { fileId: number; size: number }[] = [];

async function openSession(): Promise<GuestSession> {
  const sock = connect(vm.channelSocket);
  await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  const s = new GuestSession(sock, { hostId: 'itest', helloIntervalMs: 500 });
  s.on('shareStatus', (m) => statuses.push(m));
  s.on('remove', (file, reason) => removals.push({ file, reason }));
  s.on('truncate', (f) => truncations.push({ fileId: f.fileId, size: f.size }));
  await withTimeout(s.synced(), 20_000, 'initial resync');
  return s;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms); })]);
  } finally { clearTimeout(t); }
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}; helper log:\n${(await vm.exec('tail -20 /var/log/livemr-guest.log')).stdout}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const byPath = (path: string) => [...session.files.values()].find((f) => f.path === path);

/** The file's bytes as the host would serve them, from the image, using only what the guest reported. */
function bytesFromImage(f: GuestFile): Buffer {
  const disk = vm.disks.find((d) => d.serial === f.disk);
  if (!disk) throw new Error(`unknown disk ${f.disk}`);
  const out = Buffer.alloc(f.size); // holes read as zeros
  for (const x of f.extents) {
    if (x.logical >= f.size || x.flags & EXTENT_UNWRITTEN) continue;
    if (x.flags & EXTENT_UNMAPPABLE) throw new Error(`unmappable extent in ${f.path}`);
    const len = Math.min(x.length, f.size - x.logical);
    readViaQemuImgMap(disk.overlay, x.physical, len).copy(out, x.logical);
  }
  return out;
}

async function guestBytes(path: string): Promise<Buffer> {
  const r = await vm.exec(`cat '${path}'`);
  if (r.code !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

/** Waits until the host's view of `path` has the guest's size, then compares the bytes. */
async function expectSameBytes(path: string): Promise<GuestFile> {
  const want = await guestBytes(path);
  const f = await until(`${path} at ${want.length} bytes`, () => { const f = byPath(path); return f && f.size === want.length && f; });
  // the helper reports after its batch delay; give a rewrite of flags (unwritten → written) the same
  let got = bytesFromImage(f);
  for (let i = 0; i < 40 && !got.equals(want); i++) {
    await new Promise((r) => setTimeout(r, 100));
    got = bytesFromImage(byPath(path) ?? f);
  }
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
  return byPath(path) ?? f;
}

async function shareConsented(path: string): Promise<void> {
  await vm.sh(`setfattr -n user.livemr.share -v 1 '${path}'`);
  session.share(path);
  await until(`shared ${path}`, () => byPath(path));
}

describe('guest helper in a booted guest', () => {
  beforeAll(async () => {
    execFileSync('bash', ['scripts/build-native-guest.sh'], { stdio: 'inherit' });
    vm = await bootGuest({ name: 'guest-helper' });
    session = await openSession();
  });
  afterAll(async () => {
    session?.close();
    await vm?.shutdown();
  });

  it('says hello with its disks, their serials and partition starts', () => {
    const g = session.guest!;
    expect(g.capabilities).toContain('fiemap-sync');
    const pdata = g.disks.find((d) => d.serial === 'pdata')!;
    expect(pdata.partitions[0]!.start).toBe(vm.disks[1]!.fsOffset);
    expect(g.disks.find((d) => d.serial === 'data')!.partitions).toEqual([]);
  });

  it('buffered appends', async () => {
    const p = '/mnt/data/app.log';
    await vm.sh(`echo first line > ${p}`);
    await shareConsented(p);
    await expectSameBytes(p);
    for (let i = 0; i < 3; i++) {
      await vm.sh(`dd if=/dev/urandom bs=64k count=${4 + i} 2>/dev/null >> ${p}`);
      await expectSameBytes(p);
    }
  });

  it('O_DIRECT appends', async () => {
    const p = '/mnt/data/direct.bin';
    await vm.sh(`: > ${p}`);
    await shareConsented(p);
    for (let i = 0; i < 3; i++) {
      await vm.sh(`dd if=/dev/urandom of=${p} bs=64k count=8 oflag=direct,append conv=notrunc 2>/dev/null`);
      const f = await expectSameBytes(p);
      expect(f.size).toBe((i + 1) * 8 * 65536);
    }
  });

  it('sparse writes: holes are not reported and read as zeros', async () => {
    const p = '/mnt/data/sparse.bin';
    await vm.sh(`dd if=/dev/urandom of=${p} bs=4k count=1 2>/dev/null && dd if=/dev/urandom of=${p} bs=4k seek=300 count=2 conv=notrunc 2>/dev/null`);
    await shareConsented(p);
    const f = await expectSameBytes(p);
    expect(f.extents.reduce((s, x) => s + x.length, 0)).toBeLessThan(f.size / 10);
    await vm.sh(`dd if=/dev/urandom of=${p} bs=4k seek=150 count=1 conv=notrunc 2>/dev/null`);
    await until('middle block reported', () => byPath(p)!.extents.some((x) => x.logical === 150 * 4096));
    await expectSameBytes(p);
  });

  it('fallocate: unwritten extents read as zeros, written parts as data', async () => {
    const p = '/mnt/data/falloc.bin';
    await vm.sh(`fallocate -l 1M ${p}`);
    await shareConsented(p);
    const f = await expectSameBytes(p);
    expect(f.extents.every((x) => x.flags & EXTENT_UNWRITTEN)).toBe(true);
    await vm.sh(`dd if=/dev/urandom of=${p} bs=4k seek=10 count=5 conv=notrunc 2>/dev/null`);
    await until('written part reported', () => byPath(p)!.extents.some((x) => x.logical === 10 * 4096 && !(x.flags & EXTENT_UNWRITTEN)));
    await expectSameBytes(p);
  });

  it('truncate: the host is told at once to withdraw the file, which is described again from 0', async () => {
    const p = '/mnt/data/app.log';
    const before = byPath(p)!;
    const n = truncations.length;
    await vm.sh(`truncate -s 5000 ${p}`);
    // a shrink may have gone lower and been rewritten since (copytruncate): nothing below the new end is vouched for
    await until('truncate event', () => truncations.slice(n).find((t) => t.fileId === before.fileId && t.size === 0));
    await until('described again', () => session.files.get(before.fileId)?.size === 5000);
    const f = await expectSameBytes(p);
    expect(f.extents.every((x) => x.logical < 8192)).toBe(true);
    await vm.sh(`dd if=/dev/urandom bs=4k count=3 2>/dev/null >> ${p}`);
    await expectSameBytes(p);
  });

  it('copytruncate: cut to 0 and rewritten to the same size in one go, the host serves the new bytes', async () => {
    const p = '/mnt/data/app.log';
    const before = byPath(p)!;
    const size = (await vm.sh(`stat -c %s ${p}`)).trim();
    const n = truncations.length;
    // one shell: the helper's next look sees only "smaller than reported, then as large again"
    await vm.sh(`truncate -s 0 ${p} && head -c ${size} /dev/urandom >> ${p} && truncate -s ${Number(size) - 1} ${p}`);
    await until('truncate event', () => truncations.slice(n).find((t) => t.fileId === before.fileId && t.size === 0));
    await expectSameBytes(p);
  });

  it('log rotation: the old inode is followed under its new name; a new consented file at the path is shared', async () => {
    const p = '/mnt/data/app.log';
    const old = byPath(p)!;
    await vm.sh(`mv ${p} ${p}.1 && echo rotated > ${p} && setfattr -n user.livemr.share -v 1 ${p}`);
    // the rename alone is reported: the old inode's path changes without a write
    await until('old inode under its new name', () => session.files.get(old.fileId)?.path === `${p}.1`);
    await until('new inode shared at the old path', () => { const f = byPath(p); return f && f.fileId !== old.fileId && f; });
    await vm.sh(`echo more >> ${p}.1`);
    await expectSameBytes(p);
    await expectSameBytes(`${p}.1`);
  });

  it('unlink: the file is removed', async () => {
    const old = byPath('/mnt/data/app.log.1')!;
    await vm.sh('rm /mnt/data/app.log.1');
    const r = await until('removal', () => removals.find((x) => x.file.fileId === old.fileId));
    expect(r.reason).toBe('deleted');
    expect(session.files.has(old.fileId)).toBe(false);
  });

  it('many small files', async () => {
    const n = 40;
    await vm.sh(`mkdir -p /mnt/data/small && cd /mnt/data/small && i=0; while [ $i -lt ${n} ]; do head -c $((i * 97 + 1)) /dev/urandom > f$i; setfattr -n user.livemr.share -v 1 f$i; i=$((i+1)); done`);
    for (let i = 0; i < n; i++) session.share(`/mnt/data/small/f${i}`);
    await until('all small files shared', () => [...session.files.values()].filter((f) => f.path.startsWith('/mnt/data/small/')).length === n);
    for (let i = 0; i < n; i++) await expectSameBytes(`/mnt/data/small/f${i}`);
  });

  it('a file on the partitioned disk: offsets include the partition start', async () => {
    const p = '/mnt/pdata/part.bin';
    await vm.sh(`dd if=/dev/urandom of=${p} bs=64k count=20 2>/dev/null`);
    await shareConsented(p);
    const f = await expectSameBytes(p);
    expect(f.disk).toBe('pdata');
    expect(f.extents[0]!.physical % 4096).toBe(vm.disks[1]!.fsOffset % 4096); // not block-aligned on the disk
  });

  it('consent: without the xattr a request is pending for the owner; grant shares, deny refuses', async () => {
    await vm.sh('echo secret > /mnt/data/alice.txt && echo other > /mnt/data/alice2.txt && chown alice /mnt/data/alice.txt /mnt/data/alice2.txt');
    const seq = session.share('/mnt/data/alice.txt');
    const st = await until('pending status', () => statuses.find((s) => s.refSeq === seq));
    expect(st.status).toBe('pending-consent');
    expect(byPath('/mnt/data/alice.txt')).toBeUndefined();
    // the owner sees the request; the spool directory is hers alone
    expect(await vm.sh('stat -c %U:%a /var/lib/livemr/requests/1000')).toBe('alice:700\n');
    const listed = await vm.sh('su alice -c "livemr-guest requests"');
    expect(listed).toContain('/mnt/data/alice.txt');
    const id = /^([0-9a-f]{12})\s/m.exec(listed)![1]!;
    expect(await vm.sh(`su alice -c "livemr-guest grant ${id}"`)).toContain('granted');
    expect(await vm.sh('getfattr --only-values -n user.livemr.share /mnt/data/alice.txt')).toBe('1');
    await until('granted file shared', () => byPath('/mnt/data/alice.txt'));
    await expectSameBytes('/mnt/data/alice.txt');

    const seq2 = session.share('/mnt/data/alice2.txt');
    await until('second pending', () => statuses.find((s) => s.refSeq === seq2 && s.status === 'pending-consent'));
    expect(await vm.sh('su alice -c "livemr-guest deny /mnt/data/alice2.txt"')).toContain('denied');
    await until('denied status', () => statuses.find((s) => s.path === '/mnt/data/alice2.txt' && s.status === 'denied'));
    expect(byPath('/mnt/data/alice2.txt')).toBeUndefined();

    // revoking consent removes a shared file
    const shared = byPath('/mnt/data/alice.txt')!;
    await vm.sh('su alice -c "livemr-guest unshare /mnt/data/alice.txt"');
    const r = await until('revocation', () => removals.find((x) => x.file.fileId === shared.fileId));
    expect(r.reason).toBe('consent-revoked');
  });

  it('refuses files that are not on a plain disk, clearly', async () => {
    await vm.sh('echo x > /tmp/t.txt');
    const seq = session.share('/tmp/t.txt'); // tmpfs: no disk behind it
    const st = await until('status', () => statuses.find((s) => s.refSeq === seq));
    expect(st.status).toBe('unsupported-device');
    expect(st.message).toMatch(/not a block device/);
    const seq2 = session.share('/mnt/data/nonexistent');
    expect((await until('status', () => statuses.find((s) => s.refSeq === seq2))).status).toBe('not-found');
    const seq3 = session.share('/mnt/data/small');
    expect((await until('status', () => statuses.find((s) => s.refSeq === seq3))).status).toBe('not-regular');
  });

  it('flush gives a consistency point', async () => {
    const p = '/mnt/data/direct.bin';
    await vm.sh(`dd if=/dev/urandom of=${p} bs=4k count=3 oflag=append conv=notrunc 2>/dev/null`);
    await withTimeout(session.flush(), 20_000, 'flush');
    const want = await guestBytes(p);
    expect(byPath(p)!.size).toBe(want.length);
    expect(bytesFromImage(byPath(p)!).equals(want)).toBe(true);
  });

  it('a host reconnect gets a full resync with the same files', async () => {
    const before = new Map([...session.files.values()].map((f) => [f.path, f.size]));
    session.close();
    await new Promise((r) => setTimeout(r, 300));
    session = await openSession();
    const after = new Map([...session.files.values()].map((f) => [f.path, f.size]));
    expect(after).toEqual(before);
    await expectSameBytes('/mnt/data/direct.bin');
    await expectSameBytes('/mnt/pdata/part.bin');
  });

  it('a helper restart in the guest is noticed and resynced', async () => {
    const hellos: number[] = [];
    session.on('hello', () => hellos.push(Date.now()));
    const synced = new Promise<void>((r) => session.on('synced', () => r()));
    await vm.sh('kill $(cat /run/livemr-guest.pid)');
    await withTimeout(synced, 20_000, 'resync after helper restart');
    expect(hellos.length).toBeGreaterThan(0);
    // the restarted helper remembered what the host wanted (shares.json) and reports it again
    await until('files back', () => byPath('/mnt/data/direct.bin'));
    await vm.sh('dd if=/dev/urandom bs=4k count=2 2>/dev/null >> /mnt/data/direct.bin');
    await expectSameBytes('/mnt/data/direct.bin');
  });
});
