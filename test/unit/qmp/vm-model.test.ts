import { describe, expect, it } from 'vitest';
import { qdevIdOf } from '../../../src/qmp/vm.js';

describe('qdevIdOf', () => {
  it('takes the id from a /machine/peripheral path, null for anonymous devices', () => {
    expect(qdevIdOf('/machine/peripheral/disk0/virtio-backend')).toBe('disk0');
    expect(qdevIdOf('/machine/peripheral/scsi-disk1')).toBe('scsi-disk1');
    expect(qdevIdOf('/machine/peripheral-anon/device[3]/virtio-backend')).toBeNull();
    expect(qdevIdOf('disk0')).toBe('disk0');
    expect(qdevIdOf('')).toBeNull();
    expect(qdevIdOf(undefined)).toBeNull();
  });
});
