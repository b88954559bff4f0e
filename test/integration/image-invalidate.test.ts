// The mapper against an image that a running QEMU (no guest, -machine none) keeps rewriting:
// pending ranges are re-resolved on invalidate() once QEMU has flushed its L2 tables, and a
// resize that moves the L1 table is picked up by invalidate().
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { startQemu, tempDir, type TestQemu } from '../unit/qmp/support/qemu.js';
import { openImage, readQcow2Header, type ImageMapper } from '../../src/image/index.js';
import { ImageFile } from '../../src/image/file.js';

let dir = '';
let qemu: TestQemu | undefined;
let client: QmpClient | undefined;
let base = '', top = '';
let img: ImageMapper | undefined;
const M = 1024 * 1024;

beforeAll(async () => {
  dir = tempDir('livemr-image-live-');
  base = path.join(dir, 'base.qcow2');
  top = path.join(dir, 'top.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '32M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 4M', base]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', base, '-F', 'qcow2', top]);
  qemu = await startQemu(dir, [
    '-machine', 'none',
    '-blockdev', `driver=file,filename=${top},node-name=top-file`,
    '-blockdev', `driver=qcow2,file=top-file,node-name=top-fmt,backing.driver=qcow2,backing.file.driver=file,backing.file.filename=${base}`,
  ]);
  client = await QmpClient.connect(qemu.qmp[0]!);
  img = await openImage(top);
});

afterAll(async () => {
  await img?.close();
  await client?.close();
  await qemu?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function qemuIo(cmd: string): Promise<void> {
  const out = await client!.execute<string>('human-monitor-command', { 'command-line': `qemu-io top-fmt "${cmd}"` });
  expect(out).toBe('');
}

describe('image mapper on an image QEMU is writing', () => {
  it('keeps a range pending until QEMU allocates and flushes it, then resolves it on invalidate', async () => {
    const mapper = img!;
    const before = await mapper.map(1 * M, 64 * 1024);
    expect(before.every((e) => e.depth === 1 && e.kind === 'data')).toBe(true);
    // The top image alone: not allocated there, the backing chain decides.
    expect(await mapper.map(1 * M, 64 * 1024, { followBacking: false })).toEqual([{ kind: 'unallocated', start: 1 * M, length: 64 * 1024, depth: 0 }]);
    const range = mapper.pending.add(1 * M, 64 * 1024, 'file-A');
    const other = mapper.pending.add(8 * M, 4096, 'file-B');
    expect(mapper.pending.count).toBe(2);

    // Nothing changed yet: still pending after an invalidation.
    expect(await mapper.invalidate()).toEqual([]);
    expect(mapper.pending.count).toBe(2);

    await qemuIo(`write -P 0x5a ${1 * M} ${64 * 1024}`);
    await qemuIo('flush');
    const resolved = await mapper.invalidate();
    expect(resolved.map((r) => r.range.id)).toEqual([range.id]);
    expect(resolved[0]!.range.tag).toBe('file-A');
    expect(resolved[0]!.extents.every((e) => e.kind === 'data' && e.depth === 0 && e.file === top)).toBe(true);
    expect(mapper.pending.count).toBe(1);
    expect(mapper.pending.list()[0]!.id).toBe(other.id);

    const bytes = await mapper.read(1 * M - 512, 64 * 1024 + 1024);
    expect(bytes.subarray(0, 512).every((b) => b === 0x11)).toBe(true);
    expect(bytes.subarray(512, 512 + 64 * 1024).every((b) => b === 0x5a)).toBe(true);
    expect(bytes.subarray(512 + 64 * 1024).every((b) => b === 0x11)).toBe(true);
    // The zero-copy extent really holds the guest bytes in the image file.
    const e = resolved[0]!.extents[0]!;
    if (e.kind !== 'data') throw new Error('expected data');
    const f = await ImageFile.open(e.file);
    const buf = Buffer.alloc(e.length);
    await f.readData(buf, 0, e.length, e.fileOffset);
    await f.close();
    expect(buf.every((b) => b === 0x5a)).toBe(true);
  });

  it('follows a live resize that moves the L1 table', async () => {
    const mapper = img!;
    const file = await ImageFile.open(top);
    const l1Before = (await readQcow2Header(file)).l1TableOffset;
    // 4 KiB clusters: one L2 table covers 2 MiB, so 8 GiB needs a 32 KiB L1 table, which QEMU relocates.
    await client!.execute('block_resize', { 'node-name': 'top-fmt', size: 8 * 1024 * M });
    await qemuIo(`write -P 0x77 ${6 * 1024 * M} 8192`);
    await qemuIo('flush');
    await file.refreshSize();
    const h = await readQcow2Header(file);
    await file.close();
    expect(h.l1TableOffset).not.toBe(l1Before);
    expect(mapper.size).toBe(32 * M);
    await mapper.invalidate();
    expect(mapper.size).toBe(8 * 1024 * M);
    const ext = await mapper.map(6 * 1024 * M, 8192);
    expect(ext).toMatchObject([{ kind: 'data', depth: 0, length: 8192 }]);
    expect((await mapper.read(6 * 1024 * M, 8192)).every((b) => b === 0x77)).toBe(true);
    // Past the 32 MiB base the resized overlay reads zeros, attributed to the overlay (depth 0).
    expect(await mapper.map(64 * M, 4096)).toMatchObject([{ kind: 'unallocated', depth: 0 }]);
    // And the earlier write is still found.
    expect((await mapper.read(1 * M, 4096)).every((b) => b === 0x5a)).toBe(true);
  });

  it('reopens a header-derived chain when QEMU rewrites the backing file name (block-stream)', async () => {
    const mapper = img!;
    const before = await mapper.read(0, 4 * M);
    expect(mapper.chain.length).toBe(2);
    await client!.execute('block-stream', { 'job-id': 'stream0', device: 'top-fmt' });
    for (let i = 0; i < 200; i++) {
      const jobs = await client!.execute<{ id: string }[]>('query-jobs');
      if (!jobs.some((j) => j.id === 'stream0')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await qemuIo('flush');
    await mapper.invalidate();
    expect(mapper.chain.map((c) => c.file)).toEqual([top]);
    // Everything now lives in the top image, with the same guest-visible bytes.
    const extents = await mapper.map(0, 4 * M);
    expect(extents.every((e) => e.kind === 'data' && e.depth === 0 && e.file === top)).toBe(true);
    expect((await mapper.read(0, 4 * M)).equals(before)).toBe(true);
  });
});
