// Solver benchmark: the closed-form exact solver on 1000 VMs (must stay under 1 ms), and the GA's
// fitness gap to the exact optimum on random instances of 10–100 VMs (P7: ≤ 0.1%), unconstrained and
// with the variants (min/max shares, whole units) against the exact constrained solvers.
// Run: npx tsx bench/cache-solver.ts

import { computeFeatures, fitness, solveExact, solveGa, Rng, type Constraints, type Features } from '../src/cache/index.js';

function instance(n: number, seed: number): Features {
  const rng = new Rng(seed);
  const vms = Array.from({ length: n }, (_, i) => ({
    name: `v${i}`, app: `a${i % 4}`,
    ioTimeNs: rng.next() * 1e9, cpuTimeNs: rng.next() * 1e9 + 1, iops: rng.next() * 1000, bandwidth: rng.next() * 1e8 + 1,
  }));
  const flows = Array.from({ length: 2 * n }, () => ({ from: `v${rng.int(n)}`, to: `v${rng.int(n)}`, bytesPerSec: rng.next() * 1e7 }));
  return computeFeatures({ vms, flows });
}

// 1. exact solver, 1000 VMs
const big = instance(1000, 1);
for (let i = 0; i < 50; i++) solveExact(big); // warm up
const reps = 2000;
let t0 = performance.now();
for (let i = 0; i < reps; i++) solveExact(big);
const exactMs = (performance.now() - t0) / reps;
t0 = performance.now();
for (let i = 0; i < 20; i++) solveExact(big, { min: new Array(1000).fill(0.0002), max: new Array(1000).fill(0.004) });
const boundedMs = (performance.now() - t0) / 20;
t0 = performance.now();
for (let i = 0; i < 20; i++) solveExact(big, { units: 4096 });
const unitsMs = (performance.now() - t0) / 20;
console.log(`exact solver, 1000 VMs: closed form ${exactMs.toFixed(4)} ms (limit 1 ms, ratio ${(exactMs / 1).toFixed(3)}); ` +
  `min/max ${boundedMs.toFixed(3)} ms; 4096 units ${unitsMs.toFixed(3)} ms`);

// 2. GA vs exact
console.log('\nGA (seeded, population 64, 200+10n generations) vs exact optimum; gap = (F_exact − F_ga)/F_exact');
console.log(`${'VMs'.padStart(4)} ${'variant'.padEnd(10)} ${'max gap'.padStart(10)} ${'mean gap'.padStart(10)} ${'Σm ga/exact'.padStart(12)} ${'GA ms'.padStart(8)}`);
const variants: { name: string; c: (n: number) => Constraints }[] = [
  { name: 'none', c: () => ({}) },
  { name: 'min/max', c: (n) => ({ min: new Array(n).fill(0.5 / n), max: new Array(n).fill(2 / n) }) },
  { name: 'units', c: () => ({ units: 256 }) },
];
let worst = 0;
for (const n of [10, 25, 50, 100]) {
  for (const v of variants) {
    let max = 0, sum = 0, mRatio = 0, ms = 0;
    const seeds = [1, 2, 3];
    for (const seed of seeds) {
      const f = instance(n, 1000 * n + seed);
      const c = v.c(n);
      const fe = fitness(f, solveExact(f, c));
      const t = performance.now();
      const g = solveGa(f, c, { seed });
      ms += (performance.now() - t) / seeds.length;
      const gap = (fe - g.fitness) / fe;
      max = Math.max(max, gap);
      sum += gap / seeds.length;
      mRatio += (4 * n - g.fitness) / (4 * n - fe) / seeds.length;
    }
    worst = Math.max(worst, max);
    console.log(`${String(n).padStart(4)} ${v.name.padEnd(10)} ${(max * 100).toExponential(2).padStart(9)}% ${(sum * 100).toExponential(2).padStart(9)}% ${mRatio.toFixed(3).padStart(12)} ${ms.toFixed(0).padStart(8)}`);
  }
}
console.log(`\nworst GA gap ${(worst * 100).toExponential(2)}% of fitness (P7 limit 0.1%: ratio ${(worst / 0.001).toFixed(3)})`);
