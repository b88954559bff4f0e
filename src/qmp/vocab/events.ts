// The QMP events LiveMR reacts to, with the fields it reads (qapi/block-core.json, qapi/job.json,
// qapi/run-state.json, qapi/qdev.json). Pass these names to client.listen({names}).

export const BLOCK_JOB_EVENTS = [
  'BLOCK_JOB_COMPLETED',
  'BLOCK_JOB_CANCELLED',
  'BLOCK_JOB_ERROR',
  'BLOCK_JOB_READY',
  'BLOCK_JOB_PENDING',
] as const;

/** Events after which the block graph or the image contents may have changed under LiveMR. */
export const GRAPH_CHANGE_EVENTS = [...BLOCK_JOB_EVENTS, 'JOB_STATUS_CHANGE', 'BLOCK_IMAGE_CORRUPTED'] as const;

/** Events that end or restart the guest. */
export const LIFECYCLE_EVENTS = ['SHUTDOWN', 'RESET', 'STOP', 'RESUME'] as const;

export const BLOCK_WRITE_THRESHOLD = 'BLOCK_WRITE_THRESHOLD';
export const DEVICE_DELETED = 'DEVICE_DELETED';

/** data of BLOCK_JOB_COMPLETED / _CANCELLED / _READY (BLOCK_JOB_ERROR has `operation`, `action`) */
export interface BlockJobEventData {
  type: string;
  device: string;
  len?: number;
  offset?: number;
  speed?: number;
  error?: string;
}

/** data of JOB_STATUS_CHANGE */
export interface JobStatusChangeData {
  id: string;
  status: string;
}

/** data of BLOCK_IMAGE_CORRUPTED */
export interface BlockImageCorruptedData {
  device: string;
  'node-name'?: string;
  msg: string;
  offset?: number;
  size?: number;
  fatal: boolean;
}

/** data of SHUTDOWN and RESET */
export interface ShutdownData {
  guest: boolean;
  reason: string;
}

/** data of DEVICE_DELETED */
export interface DeviceDeletedData {
  device?: string;
  path: string;
}
