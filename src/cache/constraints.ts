// Constraints of the allocation variants the closed form cannot do: per-VM minimum/maximum shares
// (applied to both weights) and cache space in whole allocation units (ws = k/units).

import { InfeasibleError, CacheInputError } from './errors.js';

export interface Constraints {
  /** per-VM lower bound of ws and wi (default 0) */
  min?: number[];
  /** per-VM upper bound of ws and wi (default 1) */
  max?: number[];
  /** cache space is split in this many whole units (ws multiples of 1/units) */
  units?: number;
}

export const MAX_UNITS = 1 << 20;
const EPS = 1e-12;

export interface Bounds {
  lo: number[];
  hi: number[];
  /** unit bounds of ws when `units` is set */
  kLo?: number[];
  kHi?: number[];
  units?: number;
}

export function isConstrained(c: Constraints | undefined): boolean {
  return !!c && (c.min !== undefined || c.max !== undefined || c.units !== undefined);
}

/** Check the constraints against n VMs and make them explicit; InfeasibleError if nothing fits. */
export function resolveBounds(n: number, c: Constraints = {}): Bounds {
  const vec = (v: number[] | undefined, dflt: number, what: string): number[] => {
    if (v === undefined) return new Array<number>(n).fill(dflt);
    if (!Array.isArray(v) || v.length !== n) throw new CacheInputError(`${what} must list ${n} shares`);
    return v.map((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 1) {
        throw new CacheInputError(`${what}[${i}] must be in [0, 1], got ${JSON.stringify(x)}`);
      }
      return x;
    });
  };
  const lo = vec(c.min, 0, 'min');
  const hi = vec(c.max, 1, 'max');
  for (let i = 0; i < n; i++) {
    if (lo[i]! > hi[i]! + EPS) throw new InfeasibleError(`VM #${i}: min share ${lo[i]} > max share ${hi[i]}`);
  }
  const sumLo = lo.reduce((a, b) => a + b, 0);
  const sumHi = hi.reduce((a, b) => a + b, 0);
  if (sumLo > 1 + 1e-9) throw new InfeasibleError(`minimum shares sum to ${sumLo.toFixed(6)} > 1`);
  if (sumHi < 1 - 1e-9) throw new InfeasibleError(`maximum shares sum to ${sumHi.toFixed(6)} < 1`);
  const b: Bounds = { lo, hi };
  if (c.units !== undefined) {
    const u = c.units;
    if (!Number.isInteger(u) || u < 1 || u > MAX_UNITS) throw new CacheInputError(`units must be an integer in 1..${MAX_UNITS}`);
    b.units = u;
    b.kLo = lo.map((x) => Math.ceil(x * u - 1e-9));
    b.kHi = hi.map((x) => Math.floor(x * u + 1e-9));
    const kl = b.kLo.reduce((a, x) => a + x, 0);
    const kh = b.kHi.reduce((a, x) => a + x, 0);
    if (kl > u || kh < u) throw new InfeasibleError(`no split of ${u} whole units meets the min/max shares`);
    for (let i = 0; i < n; i++) {
      if (b.kLo[i]! > b.kHi[i]!) throw new InfeasibleError(`VM #${i}: no whole number of units between its min and max share`);
    }
  }
  return b;
}

/** Does w satisfy the bounds (and units for ws)? Used by tests and by the GA's invariants. */
export function satisfies(w: number[], b: Bounds, integral = false, tol = 1e-9): boolean {
  const sum = w.reduce((a, x) => a + x, 0);
  if (Math.abs(sum - 1) > 1e-7) return false;
  return w.every((x, i) => {
    if (x < b.lo[i]! - tol || x > b.hi[i]! + tol) return false;
    if (integral && b.units) return Math.abs(x * b.units - Math.round(x * b.units)) < 1e-6;
    return true;
  });
}
