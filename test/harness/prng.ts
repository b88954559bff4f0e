// Seeded PRNG for tests and benchmarks (corpora, fuzzing): the project's one mulberry32 (src/cache/rng.ts)
// behind the plain function interface the generators use.
import { Rng } from '../../src/cache/rng.js';

export function prng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
