// Run state and vCPUs (qapi/run-state.json, qapi/machine.json).

import type { QmpClient } from '../protocol/client.js';
import { asArray, asObject, num, str } from './shape.js';

export interface VmStatus {
  /** RunState: running, paused, prelaunch, shutdown, inmigrate, ... */
  status: string;
  running: boolean;
}

export async function queryStatus(client: QmpClient): Promise<VmStatus> {
  const cmd = 'query-status';
  const r = asObject(cmd, await client.execute(cmd));
  return { status: str(cmd, r, 'status'), running: r.running === true };
}

/** Pause the vCPUs (QEMU also writes its cached qcow2 metadata out). Emits STOP. */
export async function stop(client: QmpClient): Promise<void> {
  await client.execute('stop');
}

/** Resume the vCPUs. Emits RESUME. */
export async function cont(client: QmpClient): Promise<void> {
  await client.execute('cont');
}

export interface VcpuInfo {
  cpuIndex: number;
  /** host thread id: /proc/<qemu-pid>/task/<threadId>/schedstat gives its CPU time */
  threadId: number;
  qomPath: string;
}

export async function queryCpusFast(client: QmpClient): Promise<VcpuInfo[]> {
  const cmd = 'query-cpus-fast';
  return asArray(cmd, await client.execute(cmd)).map((c) => ({
    cpuIndex: num(cmd, c, 'cpu-index'),
    threadId: num(cmd, c, 'thread-id'),
    qomPath: str(cmd, c, 'qom-path'),
  }));
}
