// The VM control plane (docs/host.md#control-plane): the interface VmLink uses, and its QMP implementation.
export * from './types.js';
export { CHANNEL_DEVICE_ID, QmpControl, QmpControlSession, type QmpControlOptions } from './qmp.js';
export { LibvirtControl, LibvirtControlSession, LIBVIRT_CHANNEL_PORT, type LibvirtControlOptions } from './libvirt.js';
