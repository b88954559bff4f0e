// The agent config's libvirt part: "libvirt": {"uri"}, VMs given by "domain", "domains": "*", and
// the refusals that keep a typo from silently disabling a VM.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, vmNameForDomain } from '../../../src/host/config.js';

const base = { mountpoint: '/srv/livemr', stateDir: '/var/lib/livemr' };

describe('libvirt in the agent config', () => {
  it('accepts VMs by domain next to QMP VMs, and discovery', () => {
    const c = parseConfig({
      ...base, libvirt: { uri: 'qemu:///system' }, domains: '*',
      vms: [{ name: 'web1', domain: 'instance-0000002a', share: ['/var/log/a.log'] }, { name: 'raw1', qmp: '/run/q.sock' }],
    });
    expect(c.libvirt).toEqual({ uri: 'qemu:///system' });
    expect(c.domains).toBe('*');
    expect(c.vms).toEqual([
      { name: 'web1', domain: 'instance-0000002a', share: ['/var/log/a.log'] },
      { name: 'raw1', qmp: '/run/q.sock', share: [] },
    ]);
    expect(parseConfig({ ...base, libvirt: {}, vms: [] }).libvirt).toEqual({ uri: 'qemu:///system' });
  });

  it('refuses a VM with both or neither of qmp and domain, a domain without libvirt, bad discovery values', () => {
    const bad = (cfg: object, msg: RegExp) => expect(() => parseConfig({ ...base, ...cfg })).toThrow(msg);
    bad({ libvirt: {}, vms: [{ name: 'a', qmp: '/q', domain: 'd' }] }, /\$\.vms\[0\]: give exactly one of/);
    bad({ vms: [{ name: 'a' }] }, /give exactly one of/);
    bad({ vms: [{ name: 'a', domain: 'd' }] }, /\$\.vms\[0\]\.domain: needs "libvirt"/);
    bad({ libvirt: {}, vms: [{ name: 'a', domain: 'd', channel: '/c' }] }, /\$\.vms\[0\]\.channel/);
    bad({ domains: '*', vms: [] }, /\$\.domains: needs "libvirt"/);
    bad({ libvirt: {}, domains: 'all', vms: [] }, /\$\.domains: must be "\*"/);
    bad({ libvirt: { uri: 'system' }, vms: [] }, /\$\.libvirt\.uri/);
    bad({ libvirt: { url: 'qemu:///system' }, vms: [] }, /\$\.libvirt\.url: unknown key/);
    expect(() => parseConfig({ ...base, vms: [{ name: 'a' }] })).toThrow(ConfigError);
  });

  it('maps domain names to legal VM names', () => {
    expect(vmNameForDomain('instance-0000002a')).toBe('instance-0000002a');
    expect(vmNameForDomain('my_vm (prod)')).toBe('my-vm--prod-');
    expect(vmNameForDomain('_x')).toBe('x');
    expect(vmNameForDomain('é')).toBe('domain');
    expect(vmNameForDomain('a'.repeat(100))).toHaveLength(63);
  });
});
