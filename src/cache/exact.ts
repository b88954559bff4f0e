// Exact solvers. Fitness is separable: per VM, (ws−s)²+(ws−d)² = 2(ws−(s+d)/2)² + const and likewise
// for wi, so the unconstrained optimum is ws = (s+d)/2, wi = (r+d)/2, which already sums to 1 because
// s, r and d each do. With constraints the problem stays a separable convex quadratic:
// - min/max shares: minimize Σ 2p(w−t)² on the capped simplex; KKT gives w = clamp(t − λ/(4p), lo, hi)
//   with one multiplier λ, found by bisection (Σw is monotone in λ).
// - whole units: separable convex cost over integers with a fixed total — giving units one at a time
//   to the VM whose cost drops most is optimal (greedy marginal allocation).
// These are the GA's test oracles for the variants.

import { resolveBounds, isConstrained, type Bounds, type Constraints } from './constraints.js';
import type { Features, Weights } from './model.js';

export function targets(f: Features): { ts: number[]; ti: number[] } {
  return {
    ts: f.s.map((s, i) => (s + f.d[i]!) / 2),
    ti: f.r.map((r, i) => (r + f.d[i]!) / 2),
  };
}

/** The closed form (no constraints). */
export function solveClosedForm(f: Features): Weights {
  const { ts, ti } = targets(f);
  return { ws: ts, wi: ti };
}

/** Weighted Euclidean projection of t onto {Σw = 1, lo ≤ w ≤ hi} (weights p > 0). */
export function projectCappedSimplex(t: readonly number[], p: readonly number[], lo: readonly number[], hi: readonly number[]): number[] {
  const at = (lambda: number) => t.map((x, i) => Math.min(hi[i]!, Math.max(lo[i]!, x - lambda / (4 * p[i]!))));
  const sum = (w: number[]) => w.reduce((a, b) => a + b, 0);
  // Σw(λ) is non-increasing; bracket the root.
  let a = -1;
  let b = 1;
  while (sum(at(a)) < 1 && a > -1e12) a *= 2;
  while (sum(at(b)) > 1 && b < 1e12) b *= 2;
  for (let k = 0; k < 200 && b - a > 1e-15 * Math.max(1, Math.abs(a), Math.abs(b)); k++) {
    const m = (a + b) / 2;
    if (sum(at(m)) > 1) a = m;
    else b = m;
  }
  const w = at((a + b) / 2);
  // Put the bisection's last rounding error on a VM with slack so Σw is 1 to machine precision.
  const err = 1 - sum(w);
  const i = w.findIndex((x, j) => x + err >= lo[j]! && x + err <= hi[j]!);
  if (i >= 0) w[i]! += err;
  return w;
}

/** Optimal whole-unit split of `units` for cost Σ 2p(k/units − t)², kLo ≤ k ≤ kHi. */
export function allocateUnits(t: readonly number[], p: readonly number[], kLo: readonly number[], kHi: readonly number[], units: number): number[] {
  const k = [...kLo];
  let left = units - k.reduce((a, b) => a + b, 0);
  const gain = (i: number) => {
    const x0 = k[i]! / units - t[i]!;
    const x1 = (k[i]! + 1) / units - t[i]!;
    return 2 * p[i]! * (x1 * x1 - x0 * x0); // cost increase of one more unit (can be negative)
  };
  // A binary heap keyed by the marginal cost keeps this O((n + units) log n).
  const heap: number[] = [];
  const less = (a: number, b: number) => gain(a) < gain(b) || (gain(a) === gain(b) && a < b);
  const push = (i: number) => {
    heap.push(i);
    for (let c = heap.length - 1; c > 0; ) {
      const parent = (c - 1) >> 1;
      if (!less(heap[c]!, heap[parent]!)) break;
      [heap[c], heap[parent]] = [heap[parent]!, heap[c]!];
      c = parent;
    }
  };
  const pop = (): number => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let c = 0; ; ) {
        const l = 2 * c + 1;
        const r = l + 1;
        let m = c;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === c) break;
        [heap[c], heap[m]] = [heap[m]!, heap[c]!];
        c = m;
      }
    }
    return top;
  };
  for (let i = 0; i < k.length; i++) if (k[i]! < kHi[i]!) push(i);
  while (left > 0) {
    const i = pop();
    k[i]! += 1;
    left--;
    if (k[i]! < kHi[i]!) push(i);
  }
  return k;
}

/** Exact optimum under constraints (the closed form when there are none). */
export function solveExact(f: Features, c?: Constraints): Weights {
  if (!isConstrained(c)) return solveClosedForm(f);
  const b: Bounds = resolveBounds(f.s.length, c);
  const { ts, ti } = targets(f);
  const wi = projectCappedSimplex(ti, f.priority, b.lo, b.hi);
  const ws = b.units
    ? allocateUnits(ts, f.priority, b.kLo!, b.kHi!, b.units).map((k) => k / b.units!)
    : projectCappedSimplex(ts, f.priority, b.lo, b.hi);
  return { ws, wi };
}
