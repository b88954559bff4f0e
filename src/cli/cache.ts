// `livemr cache`: AC-SSD weights. `plan` prints the weights table from a metrics file or from live
// VMs (two samples over --sample seconds); `run` runs the closed loop. See docs/cache.md.

import { parseArgs } from 'node:util';
import {
  CacheError,
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
import { UsageError } from './main.js';

const USAGE = `usage:
  livemr cache plan (--metrics FILE | --vms CONFIG [--sample S]) [--solver auto|exact|ga] [--seed N] [--json]
  livemr cache run --vms CONFIG [--interval S] [--steps N] [--dry-run]`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'plan') return await plan(rest);
    if (sub === 'run') return await loop(rest);
    if (sub === '-h' || sub === '--help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
  } catch (e) {
    if (e instanceof CacheError) {
      process.stderr.write(`livemr cache: ${e.name}: ${e.message}\n`);
      return 1;
    }
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    throw e;
  }
  throw new UsageError(USAGE);
}

function positiveNumber(v: string | undefined, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number`);
  return n;
}

async function plan(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      metrics: { type: 'string' },
      vms: { type: 'string' },
      sample: { type: 'string' },
      solver: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.metrics === !values.vms) throw new UsageError(`give exactly one of --metrics or --vms\n${USAGE}`);
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

async function loop(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      vms: { type: 'string' },
      interval: { type: 'string' },
      steps: { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
  });
  if (!values.vms) throw new UsageError(`--vms CONFIG is required\n${USAGE}`);
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
