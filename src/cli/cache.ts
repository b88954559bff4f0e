// `livemr cache`: AC-SSD weights. `plan` prints the weights table from a metrics file or from live
// VMs (two samples over --sample seconds); `run` runs the closed loop. See docs/cache.md.

import {
  makePlan,
  formatPlan,
  parseLoopConfig,
  parseMetrics,
  readJsonFile,
  startSession,
  deltaMetrics,
  constraintsFor,
  SOLVERS,
  type Decision,
  type SolverName,
} from '../cache/index.js';
import { command, UsageError, type Values } from './args.js';

function positiveNumber(v: string | undefined, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number`);
  return n;
}

const PLAN = {
  metrics: { type: 'string', arg: 'FILE', help: 'per-VM metrics file (docs/cache.md)' },
  vms: { type: 'string', arg: 'CONFIG', help: 'loop configuration: sample the live VMs it names instead' },
  sample: { type: 'string', arg: 'S', help: 'with --vms: seconds between the two samples (default 2)' },
  solver: { type: 'string', arg: 'auto|exact|ga', help: 'weights solver (default auto)' },
  seed: { type: 'string', arg: 'N', help: 'seed of the genetic solver (default 1)' },
  json: { type: 'boolean', help: 'the plan as JSON' },
} as const;

async function plan(values: Values<typeof PLAN>): Promise<number> {
  if (!values.metrics === !values.vms) throw new UsageError('give exactly one of --metrics or --vms');
  const solver = (values.solver ?? 'auto') as SolverName;
  if (!SOLVERS.includes(solver)) throw new UsageError(`--solver must be one of ${SOLVERS.join(', ')}`);
  const seed = positiveNumber(values.seed, '--seed', 1);
  let input;
  let constraints;
  if (values.metrics) {
    const m = parseMetrics(readJsonFile(values.metrics));
    input = m;
    constraints = m.constraints;
  } else {
    const cfg = parseLoopConfig(readJsonFile(values.vms!));
    const seconds = positiveNumber(values.sample, '--sample', 2);
    const session = await startSession({ ...cfg, actuators: {} });
    try {
      const a = await session.monitor.sample();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const b = await session.monitor.sample();
      input = { ...deltaMetrics(cfg.vms, a, b), priorities: cfg.priorities };
      const min: Record<string, number> = {};
      const max: Record<string, number> = {};
      for (const v of cfg.vms) {
        if (v.min !== undefined) min[v.name] = v.min;
        if (v.max !== undefined) max[v.name] = v.max;
      }
      constraints = constraintsFor(cfg.vms.map((v) => v.name), min, max, cfg.units);
    } finally {
      await session.close();
    }
  }
  const p = makePlan(input, { solver, constraints, ga: { seed } });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ solver: p.solver, fitness: p.fitness, ideal: p.ideal, vms: p.rows }, null, 2)}\n`);
  } else {
    process.stdout.write(formatPlan(p));
  }
  return 0;
}

const LOOP = {
  vms: { type: 'string', arg: 'CONFIG', help: 'loop configuration (docs/cache.md), required' },
  interval: { type: 'string', arg: 'S', help: "seconds between decisions (default: the configuration's intervalSeconds, else 10)" },
  steps: { type: 'string', arg: 'N', help: 'stop after N decisions (default: until SIGTERM/SIGINT)' },
  'dry-run': { type: 'boolean', help: 'print the decisions, apply nothing' },
} as const;

async function loop(values: Values<typeof LOOP>): Promise<number> {
  if (!values.vms) throw new UsageError('--vms CONFIG is required');
  const cfg = parseLoopConfig(readJsonFile(values.vms));
  const interval = positiveNumber(values.interval, '--interval', cfg.intervalSeconds ?? 10);
  const steps = values.steps === undefined ? Infinity : positiveNumber(values.steps, '--steps', 1);
  const log = (d: Decision) => process.stdout.write(`${JSON.stringify(d)}\n`);
  const session = await startSession(cfg, { dryRun: values['dry-run'], log });
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await session.loop.run(interval * 1000, ac.signal, steps);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await session.close();
  }
  return 0;
}

export const commands = [
  command({ name: 'cache plan', summary: 'AC-SSD cache-space and IOPS weights from a metrics file or two samples of live VMs', options: PLAN, run: ({ values }) => plan(values) }),
  command({ name: 'cache run', summary: 'run the AC-SSD closed loop on live VMs until SIGTERM/SIGINT', options: LOOP, run: ({ values }) => loop(values) }),
];
