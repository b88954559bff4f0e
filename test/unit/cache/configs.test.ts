import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CacheInputError,
  devValue,
  parseIoMax,
  parseLoopConfig,
  parseMetrics,
  parseNftCounters,
  NftPairCounters,
  renderCasCommands,
  renderCasIoClasses,
  renderLvmCommands,
  scaleWeights,
  toUnits,
} from '../../../src/cache/index.js';

const fixture = (f: string) => readFileSync(join(import.meta.dirname, '../../fixtures/cache', f), 'utf8');

describe('cache configurations (golden files)', () => {
  const cas = {
    cacheId: 1,
    cacheDevice: '/dev/nvme0n1',
    ioclassFile: '/etc/opencas/livemr-ioclass.csv',
    cores: [
      { vm: 'job-vm0', coreId: 1, coreDevice: '/dev/vg0/job-vm0', ws: 0.4567 },
      { vm: 'job-vm1', coreId: 2, coreDevice: '/dev/vg0/job-vm1', ws: 0.3333 },
      { vm: 'job-vm2', coreId: 3, coreDevice: '/dev/vg0/job-vm2', ws: 0.21 },
    ],
  };

  it('Open CAS IO classes: one class per core, allocations in hundredths summing to 1.00', () => {
    const csv = renderCasIoClasses(cas);
    expect(csv).toBe(fixture('opencas-ioclass.csv'));
    const alloc = csv.trim().split('\n').slice(2).map((l) => Number(l.split(',')[3]));
    expect(alloc.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
  });

  it('casadm setup and live reload commands', () => {
    expect(`${JSON.stringify(renderCasCommands(cas), null, 1)}\n`).toBe(fixture('opencas-commands.json'));
  });

  it('lvmcache pools sized in whole extents', () => {
    const plan = renderLvmCommands({
      vg: 'vg0', ssdPv: '/dev/nvme0n1', extents: 1000,
      origins: [{ vm: 'job-vm0', lv: 'job-vm0', ws: 0.6 }, { vm: 'job-vm1', lv: 'job-vm1', ws: 0.4 }, { vm: 'idle', lv: 'idle', ws: 0 }],
    });
    expect(plan.extents).toEqual([600, 400, 0]);
    expect(`${JSON.stringify(plan, null, 1)}\n`).toBe(fixture('lvmcache-plan.json'));
  });

  it('refuses names that could smuggle options or paths', () => {
    expect(() => renderCasIoClasses({ ...cas, cacheDevice: '/dev/x;rm' })).toThrow(CacheInputError);
    expect(() => renderCasIoClasses({ ...cas, cores: [{ ...cas.cores[0]!, coreId: 1 }, { ...cas.cores[1]!, coreId: 1 }] })).toThrow(/twice/);
    expect(() => renderLvmCommands({ vg: '-rf', ssdPv: '/dev/x', extents: 10, origins: [] })).toThrow(CacheInputError);
  });

  it('toUnits splits exactly', () => {
    expect(toUnits([1 / 3, 1 / 3, 1 / 3], 100)).toEqual([34, 33, 33]);
    expect(toUnits([0.5, 0.5], 3).reduce((a, b) => a + b)).toBe(3);
  });
});

describe('host file formats', () => {
  it('cgroup v1 "MAJ:MIN value" lines and v2 io.max', () => {
    expect(devValue('default 100\n7:0 800\n', '7:0')).toBe(800);
    expect(devValue('default 100\n', '7:0')).toBeNull();
    expect(parseIoMax('7:0 rbps=max wbps=max riops=200 wiops=max\n', '7:0')).toEqual({ riops: 200, wiops: null });
    expect(scaleWeights([8 / 9, 1 / 9], 1000)).toEqual([1000, 125]);
    expect(scaleWeights([0.5, 0.0001], 1000)).toEqual([1000, 1]);
  });

  it('nftables pair counters: ruleset and JSON counters', () => {
    const c = new NftPairCounters({ a: '10.0.0.1', b: '10.0.0.2', c: 'fd00::3' }, { table: 't1' });
    const rules = c.ruleset();
    expect(rules).toContain('ip saddr 10.0.0.1 ip daddr 10.0.0.2 counter comment "a>b"');
    expect(rules).not.toContain('fd00::3 ip'); // no v4/v6 mixed pairs
    const json = fixture('nft-list.json');
    expect(parseNftCounters(json)).toEqual([
      { from: 'a', to: 'b', bytes: 2205420 },
      { from: 'b', to: 'a', bytes: 42264 },
    ]);
    expect(() => parseNftCounters('garbage')).toThrow(/not JSON/);
    expect(() => new NftPairCounters({ 'x"; flush ruleset': '10.0.0.1' })).toThrow(CacheInputError);
    expect(() => new NftPairCounters({ a: '10.0.0.1; drop' })).toThrow(/not an IP/);
  });
});

describe('input files', () => {
  it('metrics file with per-VM bounds and units', () => {
    const m = parseMetrics(JSON.parse(fixture('metrics.json')));
    expect(m.vms.length).toBe(4);
    expect(m.constraints).toEqual({ min: [0.1, 0, 0, 0], max: [1, 1, 1, 0.3], units: 100 });
  });

  it('reports what is wrong', () => {
    expect(() => parseMetrics({})).toThrow(/"vms"/);
    expect(() => parseMetrics({ vms: [{ name: 'a', app: 'x', ioTimeNs: 1, cpuTimeNs: 1, iops: 1 }] })).toThrow(/vms\[0\]\.bandwidth/);
    expect(() => parseLoopConfig({ vms: [{ name: 'a', app: 'x' }] })).toThrow(/vms\[0\]: give exactly one of qmp \/ domain/);
    expect(() => parseLoopConfig({ vms: [{ name: 'a', app: 'x', qmp: '/q' }], solver: 'magic' })).toThrow(/solver/);
    expect(parseLoopConfig({ vms: [{ name: 'a', app: 'x', qmp: '/q', disks: ['vd0'] }], actuators: { qemuThrottle: true } }).actuators?.qemuThrottle).toBe(true);
  });
});
