// The paper's search: a genetic algorithm over genomes (ws, wi) whose fitness is Algorithm 1. Seeded
// and deterministic (same features, constraints and seed → same result). Every genome is feasible by
// construction, so no penalty terms are needed:
// - initial genomes: random points of the simplex (normalized exponentials) repaired into the bounds;
// - crossover: a convex blend of two parents (the feasible set is convex; whole units are re-rounded);
// - mutation: move a random amount of share from one VM to another within both VMs' bounds, with a
//   step that shrinks over the generations;
// - tournament selection, and the best genomes survive unchanged (elitism).
// The exact solvers (./exact.ts) are its test oracle.

import { resolveBounds, type Bounds, type Constraints } from './constraints.js';
import { fitness, type Features, type Weights } from './model.js';
import { Rng } from './rng.js';

export interface GaOptions {
  seed?: number;
  population?: number;
  generations?: number;
  /** probability that a child is mutated */
  mutationRate?: number;
  elite?: number;
  tournament?: number;
}

export interface GaResult extends Weights {
  fitness: number;
  generations: number;
}

type Genome = { ws: number[]; wi: number[]; fit: number };

export function solveGa(f: Features, c: Constraints = {}, o: GaOptions = {}): GaResult {
  const n = f.s.length;
  const b = resolveBounds(n, c);
  const rng = new Rng(o.seed ?? 1);
  const popSize = Math.max(4, o.population ?? 64);
  const generations = Math.max(1, o.generations ?? 200 + 10 * n);
  const elite = Math.min(popSize - 1, o.elite ?? 2);
  const tour = Math.max(2, o.tournament ?? 3);
  const mutationRate = o.mutationRate ?? 0.9;
  const evaluate = (ws: number[], wi: number[]): Genome => ({ ws, wi, fit: fitness(f, { ws, wi }) });

  const random = (): number[] => {
    const e = Array.from({ length: n }, () => -Math.log(1 - rng.next()));
    const t = e.reduce((a, x) => a + x, 0);
    return repair(e.map((x) => x / t), b);
  };
  let pop: Genome[] = Array.from({ length: popSize }, () => evaluate(roundUnits(random(), b), random()));

  const pick = (): Genome => {
    let best = pop[rng.int(pop.length)]!;
    for (let k = 1; k < tour; k++) {
      const g = pop[rng.int(pop.length)]!;
      if (g.fit > best.fit) best = g;
    }
    return best;
  };

  for (let gen = 0; gen < generations; gen++) {
    pop.sort((x, y) => y.fit - x.fit);
    const next: Genome[] = pop.slice(0, elite);
    const step = 0.5 * (1 - gen / generations) ** 3 + 1e-6; // coarse moves first, fine ones at the end
    while (next.length < popSize) {
      const p1 = pick();
      const p2 = pick();
      const a = rng.next();
      let ws = p1.ws.map((x, i) => a * x + (1 - a) * p2.ws[i]!);
      let wi = p1.wi.map((x, i) => a * x + (1 - a) * p2.wi[i]!);
      if (b.units) ws = roundUnits(ws, b);
      if (rng.next() < mutationRate) {
        if (rng.next() < 0.5) ws = b.units ? moveUnits(ws, b, rng, step) : moveShare(ws, b, rng, step);
        else wi = moveShare(wi, b, rng, step);
      }
      next.push(evaluate(ws, wi));
    }
    pop = next;
  }
  pop.sort((x, y) => y.fit - x.fit);
  const best = pop[0]!;
  return { ws: best.ws, wi: best.wi, fitness: best.fit, generations };
}

/** Move share from VM i to VM j, at most `step` of the largest feasible amount. */
function moveShare(w: number[], b: Bounds, rng: Rng, step: number): number[] {
  const n = w.length;
  if (n < 2) return w;
  const i = rng.int(n);
  let j = rng.int(n - 1);
  if (j >= i) j++;
  const room = Math.min(w[i]! - b.lo[i]!, b.hi[j]! - w[j]!);
  if (room <= 0) return w;
  const amount = room * Math.min(1, step * Math.abs(rng.normal()));
  const out = [...w];
  out[i]! -= amount;
  out[j]! += amount;
  return out;
}

/** Move whole units from VM i to VM j. */
function moveUnits(w: number[], b: Bounds, rng: Rng, step: number): number[] {
  const u = b.units!;
  const k = w.map((x) => Math.round(x * u));
  const n = k.length;
  if (n < 2) return w;
  const i = rng.int(n);
  let j = rng.int(n - 1);
  if (j >= i) j++;
  const room = Math.min(k[i]! - b.kLo![i]!, b.kHi![j]! - k[j]!);
  if (room <= 0) return w;
  const amount = Math.max(1, Math.round(room * Math.min(1, step * Math.abs(rng.normal()))));
  k[i]! -= amount;
  k[j]! += amount;
  return k.map((x) => x / u);
}

/** Clamp into the bounds and restore Σ = 1 by moving the excess/deficit within the slack. */
export function repair(w: number[], b: Bounds): number[] {
  const out = w.map((x, i) => Math.min(b.hi[i]!, Math.max(b.lo[i]!, x)));
  for (let round = 0; round < 100; round++) {
    const err = 1 - out.reduce((a, x) => a + x, 0);
    if (Math.abs(err) < 1e-15) break;
    const slack = out.map((x, i) => (err > 0 ? b.hi[i]! - x : x - b.lo[i]!));
    const total = slack.reduce((a, x) => a + x, 0);
    if (total <= 0) break;
    const share = Math.min(1, Math.abs(err) / total);
    for (let i = 0; i < out.length; i++) out[i]! += Math.sign(err) * slack[i]! * share;
  }
  return out;
}

/** Round a feasible continuous ws to whole units (largest remainder within the unit bounds). */
export function roundUnits(w: number[], b: Bounds): number[] {
  if (!b.units) return w;
  const u = b.units;
  const exact = w.map((x) => x * u);
  const k = exact.map((x, i) => Math.min(b.kHi![i]!, Math.max(b.kLo![i]!, Math.floor(x + 1e-9))));
  let left = u - k.reduce((a, x) => a + x, 0);
  const order = exact.map((x, i) => i).sort((p, q) => exact[q]! - Math.floor(exact[q]!) - (exact[p]! - Math.floor(exact[p]!)) || p - q);
  for (let pass = 0; left !== 0 && pass < 2 * u + 2; pass++) {
    let moved = false;
    for (const i of order) {
      if (left > 0 && k[i]! < b.kHi![i]!) { k[i]!++; left--; moved = true; }
      else if (left < 0 && k[i]! > b.kLo![i]!) { k[i]!--; left++; moved = true; }
      if (left === 0) break;
    }
    if (!moved) break;
  }
  return k.map((x) => x / u);
}
