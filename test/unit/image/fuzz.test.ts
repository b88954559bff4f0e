// Quick fuzz sample (bench/image-fuzz.ts runs >= 10^4 cases): mutated headers, L1 and L2 tables of
// real images made by qemu-img give either a working mapper or a typed ImageError.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCorpus } from './corpus.js';
import { fuzz } from './fuzz.js';

let dir = '';
let seeds: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemr-image-fuzz-'));
  seeds = [...new Set((await buildCorpus(dir, { quick: true })).map((c) => c.path))];
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('survives mutated images with typed errors only', async () => {
  const seed = Date.now() % 100000; // a fresh sample each run; the seed reproduces a failure
  const report = await fuzz(seeds, join(dir, 'fuzz-case.qcow2'), 400, seed);
  expect(report.crashes, `seed ${seed}`).toEqual([]);
  expect(report.hangs, `seed ${seed}`).toEqual([]);
  expect(report.cases).toBe(400);
  // Both outcomes occur: the mutations are neither all harmless nor all fatal.
  expect(report.opened).toBeGreaterThan(20);
  expect(report.typedErrors).toBeGreaterThan(20);
}, 60_000);
