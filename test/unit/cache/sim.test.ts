import { describe, expect, it } from 'vitest';
import { DEFAULT_TRACE, hadoopTrace, metricsOf, simulate, withNoisyNeighbor, type Trace } from '../../../src/cache/index.js';

const tiny = (accesses: number[][], critical?: boolean[]): Trace => ({
  vms: accesses.map((_, i) => ({ name: `v${i}`, app: 'x' })),
  phases: [{ name: 'p', accesses: accesses.map((a) => Uint32Array.from(a)), computeUs: accesses.map(() => 0) }],
  blockBytes: 4096,
  flows: [],
  critical,
});

describe('partitioned SSD cache simulator', () => {
  const p = { cacheBlocks: 2, hitUs: 1, missUs: 10 };

  it('LRU hits and evictions, hand-counted', () => {
    // 1 2 1 3 2 with 2 blocks: miss miss hit miss(evicts 2) miss
    const r = simulate(tiny([[1, 2, 1, 3, 2]]), { kind: 'shared' }, p);
    expect(r.hits).toBe(1);
    expect(r.jctUs).toBe(41);
  });

  it('partitions isolate VMs; a zero-share VM never hits', () => {
    const t = tiny([[1, 1, 1, 1], [5, 6, 7, 8, 5, 6, 7, 8]]);
    const part = simulate(t, { kind: 'partitioned', ws: [0.5, 0.5] }, p);
    expect(part.perVm[0]!.hits).toBe(3);
    expect(part.perVm[1]!.hits).toBe(0);
    const starved = simulate(t, { kind: 'partitioned', ws: [0, 1] }, p);
    expect(starved.perVm[0]!.hits).toBe(0);
  });

  it('the phase ends with its slowest critical VM', () => {
    const t = tiny([[1, 2], [1, 2, 3, 4, 5]], [true, false]);
    expect(simulate(t, { kind: 'partitioned', ws: [0.5, 0.5] }, p).jctUs).toBe(20);
  });

  it('generated traces: map, shuffle, reduce; shuffle flows go to the reducers; deterministic', () => {
    const t = hadoopTrace({ ...DEFAULT_TRACE, splitBlocks: 200, seed: 4 });
    expect(t.phases.map((x) => x.name)).toEqual(['map', 'shuffle', 'reduce']);
    expect(new Set(t.flows.map((f) => f.to))).toEqual(new Set(['job-vm0', 'job-vm4']));
    expect(hadoopTrace({ ...DEFAULT_TRACE, splitBlocks: 200, seed: 4 })).toEqual(t);
    const withScan = withNoisyNeighbor(t, 500);
    expect(withScan.critical).toEqual([...t.vms.map(() => true), false]);
    const r = simulate(t, { kind: 'shared' }, { cacheBlocks: 500, hitUs: 100, missUs: 1500 });
    const m = metricsOf(t, r);
    expect(m.vms.every((v) => v.iops > 0 && v.cpuTimeNs > 0)).toBe(true);
    expect(m.flows.length).toBe(t.flows.length);
  });
});
