// IOPS weights → QEMU's own per-drive throttle (block_set_io_throttle): iops = weight × measured
// capacity. Exact for buffered and direct guest I/O alike, independent of cgroups. Uses the QMP client's
// setIoThrottle/readIoThrottle; only the lookup of a disk's QOM path by qdev id lives here.

import { queryBlock, readIoThrottle, setIoThrottle, type QmpClient, type ThrottleLimits } from '../qmp/index.js';
import { CacheInputError } from './errors.js';

/** The id block_set_io_throttle wants for a disk given by qdev id, QOM path or -drive id. */
export async function throttleIdOf(client: QmpClient, disk: string): Promise<string> {
  const backends = await queryBlock(client);
  for (const b of backends) {
    if (!b.inserted) continue;
    if (b.qdev === disk || (b.device !== '' && b.device === disk)) return b.qdev ?? b.device;
    if (b.qdev?.startsWith(`/machine/peripheral/${disk}/`)) return b.qdev;
  }
  throw new CacheInputError(`no disk '${disk}' with a medium (have: ${backends.map((b) => b.qdev ?? b.device).join(', ')})`);
}

/** Cap one drive at `iops` total operations per second (0 = no cap); returns the limits read back. */
export async function applyDriveIops(client: QmpClient, disk: string, iops: number): Promise<ThrottleLimits> {
  if (!Number.isFinite(iops) || iops < 0) throw new CacheInputError(`bad IOPS cap ${iops}`);
  const id = await throttleIdOf(client, disk);
  await setIoThrottle(client, id, { iops: Math.round(iops) });
  return readIoThrottle(client, id);
}

/** IOPS caps for weights: weight × capacity, at least `floor` so no VM is starved to a halt. */
export function iopsCaps(wi: readonly number[], capacityIops: number, floor = 10): number[] {
  return wi.map((w) => Math.max(floor, Math.round(w * capacityIops)));
}
