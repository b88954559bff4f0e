// Typed errors of the cache area: bad input (metrics, configs, bounds) versus a host that cannot do
// what was asked (no cgroup controller, no BFQ, a command that failed).

export class CacheError extends Error {
  override name = 'CacheError';
}

/** Metrics, a VM config or solver constraints that make no sense; nothing was changed. */
export class CacheInputError extends CacheError {
  override name = 'CacheInputError';
}

/** Constraints no allocation can satisfy (e.g. minimum shares summing to more than 1). */
export class InfeasibleError extends CacheInputError {
  override name = 'InfeasibleError';
}

/** The host lacks a mechanism (cgroup controller, scheduler, tool); `reason` says which. */
export class CapabilityError extends CacheError {
  override name = 'CapabilityError';
}

/** Writing or reading back a host setting failed. */
export class ActuatorError extends CacheError {
  override name = 'ActuatorError';
}
