// Analyze + plan: metrics → Algorithm 1 features → weights by the chosen solver, as one table.
//   auto  — the closed form without constraints, the GA with them (as the paper);
//   exact — closed form, or the exact constrained solvers (./exact.ts);
//   ga    — always the GA.

import { isConstrained, type Constraints } from './constraints.js';
import { CacheInputError } from './errors.js';
import { solveExact } from './exact.js';
import { solveGa, type GaOptions } from './ga.js';
import { computeFeatures, fitness, idealFitness, matchDegree, type Features, type ModelInput, type Weights } from './model.js';

export type SolverName = 'auto' | 'exact' | 'ga';
export const SOLVERS: readonly SolverName[] = ['auto', 'exact', 'ga'];

export interface PlanRow {
  name: string;
  app: string;
  s: number;
  r: number;
  d: number;
  ws: number;
  wi: number;
  m: number;
}

export interface Plan {
  solver: 'closed-form' | 'exact-constrained' | 'ga';
  rows: PlanRow[];
  fitness: number;
  /** fitness with every match degree at its unconstrained minimum */
  ideal: number;
  weights: Weights;
  features: Features;
}

export interface PlanOptions {
  solver?: SolverName;
  constraints?: Constraints;
  ga?: GaOptions;
}

export function makePlan(input: ModelInput, o: PlanOptions = {}): Plan {
  const solver = o.solver ?? 'auto';
  if (!SOLVERS.includes(solver)) throw new CacheInputError(`unknown solver '${solver}' (${SOLVERS.join(', ')})`);
  const f = computeFeatures(input);
  const constrained = isConstrained(o.constraints);
  let weights: Weights;
  let used: Plan['solver'];
  if (solver === 'ga' || (solver === 'auto' && constrained)) {
    const r = solveGa(f, o.constraints, o.ga);
    weights = { ws: r.ws, wi: r.wi };
    used = 'ga';
  } else {
    weights = solveExact(f, o.constraints);
    used = constrained ? 'exact-constrained' : 'closed-form';
  }
  const rows = f.names.map((name, i) => ({
    name,
    app: f.apps[i]!,
    s: f.s[i]!,
    r: f.r[i]!,
    d: f.d[i]!,
    ws: weights.ws[i]!,
    wi: weights.wi[i]!,
    m: matchDegree(weights.ws[i]!, weights.wi[i]!, f.s[i]!, f.r[i]!, f.d[i]!),
  }));
  return { solver: used, rows, fitness: fitness(f, weights), ideal: idealFitness(f), weights, features: f };
}

/** The weights table as text. */
export function formatPlan(p: Plan): string {
  const head = ['vm', 'app', 's', 'r', 'd', 'ws(cache)', 'wi(iops)', 'm'];
  const body = p.rows.map((r) => [r.name, r.app, ...[r.s, r.r, r.d, r.ws, r.wi].map((x) => x.toFixed(4)), r.m.toExponential(2)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    line(head),
    ...body.map(line),
    `solver ${p.solver}; fitness ${p.fitness.toFixed(6)} (ideal ${p.ideal.toFixed(6)}, ${p.rows.length} VMs)`,
    '',
  ].join('\n');
}

/** Largest change of any weight between two allocations of the same VMs (by name). */
export function maxMove(prev: { names: string[]; w: Weights } | null, next: { names: string[]; w: Weights }): number {
  if (!prev) return Infinity;
  const at = new Map(prev.names.map((n, i) => [n, i]));
  let worst = 0;
  next.names.forEach((n, i) => {
    const j = at.get(n);
    if (j === undefined) return void (worst = Infinity);
    worst = Math.max(worst, Math.abs(prev.w.ws[j]! - next.w.ws[i]!), Math.abs(prev.w.wi[j]! - next.w.wi[i]!));
  });
  if (prev.names.length !== next.names.length) worst = Infinity;
  return worst;
}
