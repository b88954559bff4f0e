// The closed loop (AC-SSD's adaptation): every interval, monitor (sample counters) → analyze (deltas →
// Algorithm 1 features) → plan (weights) → execute (actuators), applying only when some weight moved
// more than the hysteresis since the last applied plan. Every decision is logged with its inputs and
// what the actuators read back. An actuator failure is logged and retried next round; the loop goes on.

import type { Flow, VmMetrics } from './model.js';
import { deltaMetrics, type Sample } from './monitor.js';
import { makePlan, maxMove, type Plan, type PlanOptions, type PlanRow } from './plan.js';
import type { Weights } from './model.js';

export interface Actuator {
  readonly name: string;
  /** apply the plan, return what the host reports back */
  apply(plan: Plan): Promise<unknown>;
}

export interface Decision {
  at: string;
  step: number;
  action: 'baseline' | 'applied' | 'held' | 'dry-run' | 'failed';
  reason: string;
  inputs?: { seconds: number; vms: VmMetrics[]; flows: Flow[] };
  plan?: { solver: Plan['solver']; fitness: number; rows: PlanRow[] };
  move?: number;
  hysteresis: number;
  readback?: Record<string, unknown>;
  errors?: Record<string, string>;
}

export interface LoopOptions {
  vms: { name: string; app: string }[];
  sample: () => Promise<Sample>;
  actuators: Actuator[];
  plan?: PlanOptions;
  priorities?: Record<string, number>;
  /** apply when a weight moved more than this (default 0.05) */
  hysteresis?: number;
  dryRun?: boolean;
  log?: (d: Decision) => void;
}

export class CacheLoop {
  private last: Sample | null = null;
  private applied: { names: string[]; w: Weights } | null = null;
  private steps = 0;
  readonly hysteresis: number;

  constructor(private readonly o: LoopOptions) {
    this.hysteresis = o.hysteresis ?? 0.05;
  }

  /** The weights last applied (or that a dry run would have applied). */
  get current(): { names: string[]; w: Weights } | null {
    return this.applied;
  }

  async step(): Promise<Decision> {
    const d = await this.decide();
    this.o.log?.(d);
    return d;
  }

  private async decide(): Promise<Decision> {
    const step = this.steps++;
    const base = { at: new Date().toISOString(), step, hysteresis: this.hysteresis };
    const sample = await this.o.sample();
    const prev = this.last;
    this.last = sample;
    if (!prev) return { ...base, action: 'baseline', reason: 'first sample: counters need a second one for rates' };

    const metrics = deltaMetrics(this.o.vms, prev, sample);
    const inputs = { seconds: (sample.atMs - prev.atMs) / 1000, ...metrics };
    const plan = makePlan({ ...metrics, priorities: this.o.priorities }, this.o.plan);
    const planned = { names: plan.features.names, w: plan.weights };
    const move = maxMove(this.applied, planned);
    const summary = { solver: plan.solver, fitness: plan.fitness, rows: plan.rows };
    const common = { ...base, inputs, plan: summary, move: Number.isFinite(move) ? move : -1 };
    const moved = Number.isFinite(move) ? `max weight change ${move.toFixed(4)}` : 'no weights applied yet';
    if (move <= this.hysteresis) {
      return { ...common, action: 'held', reason: `${moved} ≤ hysteresis ${this.hysteresis}` };
    }
    if (this.o.dryRun) {
      this.applied = planned;
      return { ...common, action: 'dry-run', reason: `${moved}: would apply (dry run)` };
    }
    const readback: Record<string, unknown> = {};
    const errors: Record<string, string> = {};
    for (const a of this.o.actuators) {
      try {
        readback[a.name] = await a.apply(plan);
      } catch (e) {
        errors[a.name] = `${(e as Error).name}: ${(e as Error).message}`;
      }
    }
    if (Object.keys(errors).length) {
      return { ...common, action: 'failed', reason: `${moved}: ${Object.keys(errors).length} actuator(s) failed; retry next round`, readback, errors };
    }
    this.applied = planned;
    return { ...common, action: 'applied', reason: moved, readback };
  }

  /** Step every `intervalMs` until the signal aborts or `maxSteps` rounds ran. */
  async run(intervalMs: number, signal: AbortSignal, maxSteps = Infinity): Promise<void> {
    for (let n = 0; n < maxSteps && !signal.aborted; n++) {
      const t0 = performance.now();
      try {
        await this.step();
      } catch (e) {
        // A monitor failure (a VM went away, a counter unreadable) ends this round, not the loop.
        this.o.log?.({ at: new Date().toISOString(), step: this.steps, action: 'failed', reason: `${(e as Error).name}: ${(e as Error).message}`, hysteresis: this.hysteresis });
      }
      if (n + 1 >= maxSteps) break;
      const wait = Math.max(0, intervalMs - (performance.now() - t0));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }
}
