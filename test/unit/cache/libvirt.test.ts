// The cache loop's libvirt side without a daemon: counters summed from bulk-stats parameters as
// libvirtd sends them, config validation, and the monitor refusing a domain without a connection.
// The actuators against a real libvirtd are in test/integration/cache-libvirt.test.ts.
import { describe, expect, it } from 'vitest';
import { Monitor, parseLoopConfig, sumDomainBlockStats, vcpuTimeNs } from '../../../src/cache/index.js';
import type { TypedParam } from '../../../src/libvirt/index.js';

const u = (field: string, value: number): TypedParam => ({ field, type: 'uint', value });
const ul = (field: string, value: number): TypedParam => ({ field, type: 'ullong', value: BigInt(value) });
const s = (field: string, value: string): TypedParam => ({ field, type: 'string', value });

// two disks, then vdb's backing layer (as sent with VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING: each
// layer's backingIndex is its <source index>, the top's included)
const stats: TypedParam[] = [
  u('block.count', 3),
  s('block.0.name', 'vda'), u('block.0.backingIndex', 3), ul('block.0.rd.reqs', 10), ul('block.0.wr.reqs', 5), ul('block.0.rd.bytes', 4096), ul('block.0.wr.bytes', 512),
  ul('block.0.rd.times', 1000), ul('block.0.wr.times', 2000),
  s('block.1.name', 'vdb'), u('block.1.backingIndex', 2), ul('block.1.rd.reqs', 1), ul('block.1.wr.reqs', 2), ul('block.1.rd.bytes', 10), ul('block.1.wr.bytes', 20),
  ul('block.1.rd.times', 30), ul('block.1.wr.times', 40),
  s('block.2.name', 'vdb'), u('block.2.backingIndex', 1), ul('block.2.rd.reqs', 999), ul('block.2.wr.reqs', 999),
  u('vcpu.current', 2), u('vcpu.maximum', 2), ul('vcpu.0.time', 7_000_000), ul('vcpu.1.time', 3_000_000),
];

describe('cache loop on libvirt: counters', () => {
  it('sums the top of each selected disk, never a backing layer', () => {
    expect(sumDomainBlockStats(stats)).toEqual({ ops: 18, bytes: 4638, timeNs: 3070 });
    expect(sumDomainBlockStats(stats, ['vdb'])).toEqual({ ops: 3, bytes: 30, timeNs: 70 });
    expect(sumDomainBlockStats(stats, ['vdz'])).toEqual({ ops: 0, bytes: 0, timeNs: 0 });
  });

  it('sums the vCPU times', () => {
    expect(vcpuTimeNs(stats)).toBe(10_000_000);
    expect(vcpuTimeNs([])).toBe(0);
  });
});

describe('cache loop on libvirt: config', () => {
  it('takes a VM by domain with the libvirt connection, exactly one of qmp / domain', () => {
    const cfg = parseLoopConfig({ libvirt: { uri: 'qemu:///system' }, vms: [{ name: 'a', app: 'x', domain: 'instance-1', disks: ['vdb'] }] });
    expect(cfg.vms[0]).toEqual({ name: 'a', app: 'x', domain: 'instance-1', disks: ['vdb'] });
    expect(cfg.libvirt).toEqual({ uri: 'qemu:///system' });
    expect(parseLoopConfig({ libvirt: {}, vms: [{ name: 'a', app: 'x', domain: 'd' }] }).libvirt?.uri).toBe('qemu:///system');
    expect(() => parseLoopConfig({ vms: [{ name: 'a', app: 'x', domain: 'd', qmp: '/q' }] })).toThrow(/exactly one of qmp \/ domain/);
    expect(() => parseLoopConfig({ libvirt: 'qemu:///system', vms: [{ name: 'a', app: 'x', domain: 'd' }] })).toThrow(/config\.libvirt/);
  });

  it('the monitor refuses a domain without a libvirt connection', () => {
    expect(() => new Monitor([{ name: 'a', app: 'x', domain: 'd' }])).toThrow(/needs a libvirt connection/);
    expect(() => new Monitor([{ name: 'a', app: 'x' }])).toThrow(/exactly one of qmp \/ domain/);
  });
});
