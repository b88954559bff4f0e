// Typed errors of the cache area: bad input (metrics, configs, bounds) versus a host that cannot do
// what was asked (no cgroup controller, no BFQ, a command that failed).
import { LiveMrError } from '../errors/index.js';

type CacheErrorCode = 'CACHE_ERROR' | 'CACHE_INPUT' | 'CACHE_INFEASIBLE' | 'CACHE_CAPABILITY' | 'CACHE_ACTUATOR';

export class CacheError extends LiveMrError {
  override name = 'CacheError';
  readonly code: CacheErrorCode = 'CACHE_ERROR';
}

/** Metrics, a VM config or solver constraints that make no sense; nothing was changed. */
export class CacheInputError extends CacheError {
  override name = 'CacheInputError';
  override readonly code: CacheErrorCode = 'CACHE_INPUT';
}

/** Constraints no allocation can satisfy (e.g. minimum shares summing to more than 1). */
export class InfeasibleError extends CacheInputError {
  override name = 'InfeasibleError';
  override readonly code: CacheErrorCode = 'CACHE_INFEASIBLE';
}

/** The host lacks a mechanism (cgroup controller, scheduler, tool); `reason` says which. */
export class CapabilityError extends CacheError {
  override name = 'CapabilityError';
  override readonly code: CacheErrorCode = 'CACHE_CAPABILITY';
}

/** Writing or reading back a host setting failed. */
export class ActuatorError extends CacheError {
  override name = 'ActuatorError';
  override readonly code: CacheErrorCode = 'CACHE_ACTUATOR';
}
