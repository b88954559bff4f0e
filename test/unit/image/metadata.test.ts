// A guest cluster the image maps onto its own metadata is refused (docs/image.md, "Metadata is never
// guest data"): crafted qcow2 images whose L2 entry for guest cluster 1 points at each kind of
// metadata cluster. map() and read() throw ImageMetadataOverlapError naming the structure and the
// first guest byte concerned; the clusters around it map as before.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageMetadataOverlapError, openImage } from '../../../src/image/index.js';
import { compressedL2EntryAt, pointL2EntryAt, type MetadataTarget } from './support/craft.js';

const C = 65536;
let dir: string;
let base: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'livemr-image-meta-'));
  base = join(dir, 'base.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x61 0 ${3 * C}`, base]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const snapshot = (f: string) => execFileSync('qemu-img', ['snapshot', '-c', 's1', f]);
const bitmap = (f: string) => execFileSync('qemu-img', ['bitmap', '--add', f, 'b0']);

/** a copy of the base image, with `prep` applied to it */
function variant(name: string, prep?: (f: string) => void): string {
  const f = join(dir, `${name}.qcow2`);
  copyFileSync(base, f);
  prep?.(f);
  return f;
}

const cases: [MetadataTarget, string, ((f: string) => void)?][] = [
  ['l1', 'L1 table'],
  ['l2', 'L2 table'],
  ['refcount-table', 'refcount table'],
  ['refcount-block', 'refcount block'],
  ['snapshot-table', 'snapshot table', snapshot],
  ['bitmap-directory', 'bitmap directory', bitmap],
];

describe('metadata clusters are never guest data', () => {
  it.each(cases)('refuses a data cluster on the %s', async (target, structure, prep) => {
    const f = variant(target, prep);
    const host = pointL2EntryAt(f, 1, target);
    const img = await openImage(f);
    try {
      const err = await img.map(0, 3 * C).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ImageMetadataOverlapError);
      expect(err).toMatchObject({ code: 'IMAGE_METADATA_OVERLAP', guestOffset: C, hostOffset: host, structure });
      await expect(img.read(C + 100, 10)).rejects.toBeInstanceOf(ImageMetadataOverlapError);
      // the neighbours are still the guest's
      expect((await img.read(0, C)).equals(Buffer.alloc(C, 0x61))).toBe(true);
      expect((await img.read(2 * C, C)).equals(Buffer.alloc(C, 0x61))).toBe(true);
    } finally {
      await img.close();
    }
  });

  it('refuses a compressed cluster inside the header (an L2 offset of 0 means unallocated, so only a compressed one can point there)', async () => {
    const f = variant('header');
    compressedL2EntryAt(f, 1, 512);
    const img = await openImage(f);
    try {
      await expect(img.read(C, 10)).rejects.toMatchObject({ code: 'IMAGE_METADATA_OVERLAP', guestOffset: C, hostOffset: 512, structure: 'header' });
    } finally {
      await img.close();
    }
  });

  it('maps an intact image (with a snapshot and a bitmap) as before', async () => {
    const f = variant('intact', (x) => { snapshot(x); bitmap(x); });
    const img = await openImage(f);
    try {
      expect((await img.map(0, 3 * C)).map((e) => e.kind)).toEqual(['data']);
      expect((await img.read(0, 3 * C)).equals(Buffer.alloc(3 * C, 0x61))).toBe(true);
    } finally {
      await img.close();
    }
  });
});
