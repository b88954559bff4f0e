// AC-SSD for LiveMR: per-VM SSD cache space and IOPS weights by application-level importance, in a
// closed loop on a real KVM host. See docs/cache.md.
export * from './errors.js';
export * from './model.js';
export * from './constraints.js';
export * from './exact.js';
export * from './ga.js';
export * from './plan.js';
export * from './monitor.js';
export * from './netcounters.js';
export * from './cgroup.js';
export * from './qemu-throttle.js';
export * from './capacity.js';
export * from './cache-config.js';
export * from './actuators.js';
export * from './libvirt.js';
export * from './loop.js';
export * from './config.js';
export * from './setup.js';
export * from './sim.js';
export * from './trace.js';
export { Rng } from './rng.js';
