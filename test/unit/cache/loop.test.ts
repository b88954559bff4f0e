// The loop's decision logic with a scripted counter source (the real monitor is exercised against
// real guests in test/integration/cache-loop.test.ts).
import { describe, expect, it } from 'vitest';
import { CacheLoop, type Actuator, type Decision, type Plan, type Sample } from '../../../src/cache/index.js';

const vms = [{ name: 'a', app: 'x' }, { name: 'b', app: 'x' }];

/** Cumulative counters that grow by the given per-step increments. */
function source(steps: { a: [number, number, number, number]; b: [number, number, number, number]; ab: number }[]) {
  let k = 0;
  const acc = { a: { ops: 0, bytes: 0, timeNs: 0, cpu: 0 }, b: { ops: 0, bytes: 0, timeNs: 0, cpu: 0 }, ab: 0 };
  return async (): Promise<Sample> => {
    const s = steps[Math.min(k, steps.length - 1)]!;
    if (k++ > 0) {
      for (const v of ['a', 'b'] as const) {
        const [ops, bytes, timeNs, cpu] = s[v];
        acc[v].ops += ops; acc[v].bytes += bytes; acc[v].timeNs += timeNs; acc[v].cpu += cpu;
      }
      acc.ab += s.ab;
    }
    return {
      atMs: k * 1000,
      vms: Object.fromEntries((['a', 'b'] as const).map((v) => [v, { disk: { ops: acc[v].ops, bytes: acc[v].bytes, timeNs: acc[v].timeNs }, cpuNs: acc[v].cpu }])),
      pairs: [{ from: 'a', to: 'b', bytes: acc.ab }],
    };
  };
}

function recorder(fail = false): Actuator & { calls: Plan[] } {
  const calls: Plan[] = [];
  return {
    name: 'rec', calls,
    async apply(plan) {
      calls.push(plan);
      if (fail) throw new Error('device gone');
      return { ws: plan.weights.ws };
    },
  };
}

describe('closed loop', () => {
  const busyA = { a: [100, 1e6, 9e8, 1e8] as [number, number, number, number], b: [100, 1e6, 1e8, 9e8] as [number, number, number, number], ab: 0 };

  it('baseline, apply, hold within the hysteresis, apply again when the plan moves', async () => {
    const log: Decision[] = [];
    const act = recorder();
    const flip = { a: busyA.b, b: busyA.a, ab: 0 };
    const loop = new CacheLoop({ vms, sample: source([busyA, busyA, busyA, flip]), actuators: [act], hysteresis: 0.05, log: (d) => log.push(d) });
    for (let i = 0; i < 4; i++) await loop.step();
    expect(log.map((d) => d.action)).toEqual(['baseline', 'applied', 'held', 'applied']);
    expect(act.calls.length).toBe(2);
    const d1 = log[1]!;
    expect(d1.inputs!.vms[0]).toMatchObject({ name: 'a', iops: 100, bandwidth: 1e6, ioTimeNs: 9e8, cpuTimeNs: 1e8 });
    expect(d1.plan!.rows[0]!.ws).toBeGreaterThan(d1.plan!.rows[1]!.ws);
    expect(d1.readback).toEqual({ rec: { ws: d1.plan!.rows.map((r) => r.ws) } });
    expect(log[2]!.reason).toMatch(/≤ hysteresis 0.05/);
    expect(log[3]!.plan!.rows[1]!.ws).toBeGreaterThan(log[3]!.plan!.rows[0]!.ws);
  });

  it('dry run: plans and logs, never calls an actuator', async () => {
    const act = recorder();
    const loop = new CacheLoop({ vms, sample: source([busyA]), actuators: [act], dryRun: true });
    const actions = [];
    for (let i = 0; i < 3; i++) actions.push((await loop.step()).action);
    expect(actions).toEqual(['baseline', 'dry-run', 'held']);
    expect(act.calls.length).toBe(0);
  });

  it('an actuator failure is logged and retried next round', async () => {
    const act = recorder(true);
    const loop = new CacheLoop({ vms, sample: source([busyA]), actuators: [act] });
    await loop.step();
    const d = await loop.step();
    expect(d.action).toBe('failed');
    expect(d.errors).toEqual({ rec: 'Error: device gone' });
    expect((await loop.step()).action).toBe('failed'); // not held: nothing was applied
    expect(act.calls.length).toBe(2);
  });

  it('run() keeps going after a monitor error and stops after maxSteps', async () => {
    const log: Decision[] = [];
    let n = 0;
    const good = source([busyA]);
    const loop = new CacheLoop({
      vms, actuators: [], log: (d) => log.push(d),
      sample: async () => { if (n++ === 1) throw new Error('QMP socket closed'); return good(); },
    });
    await loop.run(1, new AbortController().signal, 4);
    expect(log.map((d) => d.action)).toEqual(['baseline', 'failed', 'applied', 'held']);
    expect(log[1]!.reason).toMatch(/QMP socket closed/);
  });
});
