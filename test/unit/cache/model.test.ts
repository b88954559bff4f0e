import { describe, expect, it } from 'vitest';
import { CacheInputError, computeFeatures, fitness, idealFitness, normalize, ratio, solveClosedForm, type VmMetrics } from '../../../src/cache/index.js';

const vm = (name: string, app: string, ioTimeNs: number, cpuTimeNs: number, iops: number, bandwidth: number): VmMetrics => ({
  name, app, ioTimeNs, cpuTimeNs, iops, bandwidth,
});

describe('Algorithm 1 on a hand-computed case', () => {
  // vm1: s=2/1, r=100/1000, traffic 500 → d=0.5 ; vm2: s=1/1, r=100/4000, d=500/4000
  const input = {
    vms: [vm('vm1', 'a', 2, 1, 100, 1000), vm('vm2', 'a', 1, 1, 100, 4000)],
    flows: [{ from: 'vm1', to: 'vm2', bytesPerSec: 500 }],
  };
  const f = computeFeatures(input);

  it('normalizes s, r, d to sum 1', () => {
    expect(f.s[0]).toBeCloseTo(2 / 3, 12);
    expect(f.s[1]).toBeCloseTo(1 / 3, 12);
    expect(f.r[0]).toBeCloseTo(0.8, 12);
    expect(f.r[1]).toBeCloseTo(0.2, 12);
    expect(f.d[0]).toBeCloseTo(0.8, 12);
    expect(f.d[1]).toBeCloseTo(0.2, 12);
  });

  it('fitness of an equal split: 8 − Σm computed by hand', () => {
    const m1 = (0.5 - 2 / 3) ** 2 + 3 * (0.5 - 0.8) ** 2;
    const m2 = (0.5 - 1 / 3) ** 2 + 3 * (0.5 - 0.2) ** 2;
    expect(fitness(f, { ws: [0.5, 0.5], wi: [0.5, 0.5] })).toBeCloseTo(8 - m1 - m2, 12);
  });

  it('closed form: ws=(s+d)/2, wi=(r+d)/2, fitness 8 − 4/225', () => {
    const w = solveClosedForm(f);
    expect(w.ws[0]).toBeCloseTo((2 / 3 + 0.8) / 2, 12);
    expect(w.wi).toEqual([expect.closeTo(0.8, 12), expect.closeTo(0.2, 12)]);
    expect(w.ws[0]! + w.ws[1]!).toBeCloseTo(1, 14);
    expect(fitness(f, w)).toBeCloseTo(8 - 4 / 225, 12);
    expect(idealFitness(f)).toBeCloseTo(8 - 4 / 225, 12);
  });

  it('traffic to VMs of other applications and to oneself does not count', () => {
    const g = computeFeatures({
      vms: [...input.vms, vm('x', 'b', 1, 1, 1, 1)],
      flows: [...input.flows, { from: 'vm1', to: 'x', bytesPerSec: 1e9 }, { from: 'vm2', to: 'vm2', bytesPerSec: 1e9 }],
    });
    expect(g.d[0]! / g.d[1]!).toBeCloseTo(4, 12); // 0.5 : 0.125 as before
    expect(g.d[2]).toBe(0);
  });
});

describe('edge cases', () => {
  it('ratio: 0/0 = 0, x/0 = ∞', () => {
    expect(ratio(0, 0)).toBe(0);
    expect(ratio(3, 0)).toBe(Infinity);
    expect(ratio(3, 2)).toBe(1.5);
  });

  it('normalize: ∞ entries share 1, all-zero → uniform', () => {
    expect(normalize([Infinity, 5, Infinity])).toEqual([0.5, 0, 0.5]);
    expect(normalize([0, 0, 0, 0])).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it('zero CPU time: a VM with IO but no CPU time takes all of s', () => {
    const f = computeFeatures({ vms: [vm('a', 'x', 10, 0, 1, 1), vm('b', 'x', 10, 5, 1, 1)], flows: [] });
    expect(f.s).toEqual([1, 0]);
    const idle = computeFeatures({ vms: [vm('a', 'x', 0, 0, 1, 1), vm('b', 'x', 10, 5, 1, 1)], flows: [] });
    expect(idle.s).toEqual([0, 1]);
  });

  it('zero bandwidth: r = 0, and d = ∞ when the VM has traffic', () => {
    const f = computeFeatures({
      vms: [vm('a', 'x', 1, 1, 0, 0), vm('b', 'x', 1, 1, 10, 100)],
      flows: [{ from: 'a', to: 'b', bytesPerSec: 10 }],
    });
    expect(f.r).toEqual([0, 1]);
    expect(f.d).toEqual([1, 0]);
  });

  it('an application with no traffic: d is uniform and the weights still sum to 1', () => {
    const f = computeFeatures({ vms: [vm('a', 'x', 1, 1, 10, 100), vm('b', 'x', 3, 1, 10, 200), vm('c', 'x', 1, 2, 1, 100)], flows: [] });
    expect(f.d).toEqual([1 / 3, 1 / 3, 1 / 3]);
    const w = solveClosedForm(f);
    expect(w.ws.reduce((a, b) => a + b)).toBeCloseTo(1, 14);
    expect(w.wi.reduce((a, b) => a + b)).toBeCloseTo(1, 14);
  });

  it('a single VM gets everything, fitness 4', () => {
    const f = computeFeatures({ vms: [vm('solo', 'x', 7, 3, 10, 100)], flows: [] });
    expect([f.s, f.r, f.d]).toEqual([[1], [1], [1]]);
    const w = solveClosedForm(f);
    expect(w).toEqual({ ws: [1], wi: [1] });
    expect(fitness(f, w)).toBe(4);
  });

  it('priorities scale an application up; equal priorities change nothing', () => {
    const vms = [vm('a1', 'a', 1, 1, 1, 10), vm('b1', 'b', 1, 1, 1, 10)];
    expect(computeFeatures({ vms, flows: [], priorities: { a: 5, b: 5 } }).s).toEqual([0.5, 0.5]);
    const f = computeFeatures({ vms, flows: [], priorities: { a: 3 } });
    expect(f.s).toEqual([0.75, 0.25]);
    expect(f.priority).toEqual([3, 1]);
  });

  it('rejects bad input with CacheInputError', () => {
    expect(() => computeFeatures({ vms: [], flows: [] })).toThrow(CacheInputError);
    expect(() => computeFeatures({ vms: [vm('a', 'x', -1, 1, 1, 1)], flows: [] })).toThrow(/ioTimeNs/);
    expect(() => computeFeatures({ vms: [vm('a', 'x', NaN, 1, 1, 1)], flows: [] })).toThrow(CacheInputError);
    expect(() => computeFeatures({ vms: [vm('a', 'x', 1, 1, 1, 1), vm('a', 'x', 1, 1, 1, 1)], flows: [] })).toThrow(/duplicate/);
    expect(() => computeFeatures({ vms: [vm('a', 'x', 1, 1, 1, 1)], flows: [{ from: 'a', to: 'zz', bytesPerSec: 1 }] })).toThrow(/unknown VM/);
    expect(() => computeFeatures({ vms: [vm('a', 'x', 1, 1, 1, 1)], flows: [], priorities: { x: 0 } })).toThrow(/priority/);
  });
});
