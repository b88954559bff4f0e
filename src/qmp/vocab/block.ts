// Block-layer vocabulary (qapi/block-core.json): the block graph, statistics, write thresholds and
// I/O throttling. Types carry the fields LiveMR reads; the raw reply is kept where more may be wanted.

import type { QmpClient } from '../protocol/client.js';
import type { QmpEvent } from '../protocol/events.js';
import { QmpError } from '../protocol/errors.js';
import { asArray, asObject, num, optStr, str, type Obj } from './shape.js';

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  backing?: ImageInfo;
}

/** One node of the block graph (BlockDeviceInfo). */
export interface BlockNode {
  nodeName: string;
  /** block driver: a format (qcow2, raw), a protocol (file, host_device, nbd) or a filter (throttle) */
  drv: string;
  /** the node's filename as QEMU reports it (for format nodes: the image file) */
  file: string;
  readOnly: boolean;
  /** 0 = not armed */
  writeThreshold: number;
  image: ImageInfo;
  raw: Obj;
}

/** One BlockBackend, i.e. one guest drive (BlockInfo). */
export interface BlockBackend {
  /** backend name: the -drive id, '' for devices attached to a -blockdev node */
  device: string;
  /** qdev id or QOM path of the guest device (QEMU 7.2 gives the QOM path, e.g. /machine/peripheral/disk0/virtio-backend) */
  qdev: string | undefined;
  /** root node of the medium, absent when the drive is empty */
  inserted: BlockNode | undefined;
  throttle: ThrottleLimits | undefined;
  raw: Obj;
}

export interface ThrottleLimits {
  bps: number;
  bps_rd: number;
  bps_wr: number;
  iops: number;
  iops_rd: number;
  iops_wr: number;
  group?: string;
}

export interface BlockGraph {
  nodes: { id: number; type: string; name: string }[];
  edges: { parent: number; child: number; name: string }[];
}

function imageInfo(cmd: string, o: Obj): ImageInfo {
  const backing = o['backing-image'];
  return {
    filename: str(cmd, o, 'filename'),
    format: str(cmd, o, 'format'),
    virtualSize: num(cmd, o, 'virtual-size'),
    backing: backing === undefined ? undefined : imageInfo(cmd, asObject(cmd, backing, 'backing-image')),
  };
}

function blockNode(cmd: string, o: Obj): BlockNode {
  return {
    nodeName: str(cmd, o, 'node-name'),
    drv: str(cmd, o, 'drv'),
    file: str(cmd, o, 'file'),
    readOnly: o.ro === true,
    writeThreshold: typeof o.write_threshold === 'number' ? o.write_threshold : 0,
    image: imageInfo(cmd, asObject(cmd, o.image, 'image')),
    raw: o,
  };
}

function throttleOf(o: Obj): ThrottleLimits {
  const n = (k: string): number => (typeof o[k] === 'number' ? (o[k] as number) : 0);
  const limits: ThrottleLimits = {
    bps: n('bps'), bps_rd: n('bps_rd'), bps_wr: n('bps_wr'),
    iops: n('iops'), iops_rd: n('iops_rd'), iops_wr: n('iops_wr'),
  };
  const group = optStr(o, 'group');
  if (group !== undefined) limits.group = group;
  return limits;
}

export async function queryBlock(client: QmpClient): Promise<BlockBackend[]> {
  const cmd = 'query-block';
  return asArray(cmd, await client.execute(cmd)).map((o) => {
    const inserted = o.inserted === undefined ? undefined : asObject(cmd, o.inserted, 'inserted');
    return {
      device: str(cmd, o, 'device'),
      qdev: optStr(o, 'qdev'),
      inserted: inserted && blockNode(cmd, inserted),
      throttle: inserted && throttleOf(inserted),
      raw: o,
    };
  });
}

/** Every node of the graph, protocol nodes included. `flat`: each node's `image` has no nested backing-image. */
export async function queryNamedBlockNodes(client: QmpClient): Promise<BlockNode[]> {
  const cmd = 'query-named-block-nodes';
  return asArray(cmd, await client.execute(cmd, { flat: true })).map((o) => blockNode(cmd, o));
}

/** I/O counters of one device or node (BlockDeviceStats, the fields LiveMR reads). */
export interface BlockStats {
  /** BlockBackend name ('' for -blockdev devices) */
  device: string;
  /** QOM path of the guest device, as in query-block */
  qdev: string | undefined;
  nodeName: string | undefined;
  rdBytes: number;
  wrBytes: number;
  rdOperations: number;
  wrOperations: number;
  flushOperations: number;
  /** discard requests completed and bytes they covered (QEMU ≥ 4.2; undefined before; IDE and SCSI count them, virtio-blk does not in 7.2) */
  unmapOperations?: number;
  unmapBytes?: number;
  /**
   * discards the device's protocol node (file-posix, its `parent` entry's `driver-specific`) passed
   * to the host file: with discard=unmap, every qcow2 cluster QEMU freed (QEMU ≥ 4.2)
   */
  fileDiscards?: number;
  fileDiscardBytes?: number;
  /** highest offset written so far (+1) */
  wrHighestOffset: number;
  raw: Obj;
}

/** `discard-nb-ok`/`discard-bytes-ok` of a file-posix node's stats entry (BlockStatsSpecificFile), if it has them. */
function fileDiscardCounters(parent: unknown): { fileDiscards?: number; fileDiscardBytes?: number } {
  if (typeof parent !== 'object' || parent === null) return {};
  const d = (parent as Obj)['driver-specific'];
  if (typeof d !== 'object' || d === null) return {};
  const ok = (d as Obj)['discard-nb-ok'], bytes = (d as Obj)['discard-bytes-ok'];
  return typeof ok === 'number' && typeof bytes === 'number' ? { fileDiscards: ok, fileDiscardBytes: bytes } : {};
}

/** Per-device I/O counters; with `nodes`, per-node entries instead (those read 0 except wr_highest_offset). */
export async function queryBlockstats(client: QmpClient, nodes = false): Promise<BlockStats[]> {
  const cmd = 'query-blockstats';
  return asArray(cmd, await client.execute(cmd, nodes ? { 'query-nodes': true } : {})).map((o) => {
    const s = asObject(cmd, o.stats, 'stats');
    return {
      device: optStr(o, 'device') ?? '',
      qdev: optStr(o, 'qdev'),
      nodeName: optStr(o, 'node-name'),
      rdBytes: num(cmd, s, 'rd_bytes'),
      wrBytes: num(cmd, s, 'wr_bytes'),
      rdOperations: num(cmd, s, 'rd_operations'),
      wrOperations: num(cmd, s, 'wr_operations'),
      flushOperations: num(cmd, s, 'flush_operations'),
      ...(typeof s.unmap_operations === 'number' ? { unmapOperations: s.unmap_operations } : {}),
      ...(typeof s.unmap_bytes === 'number' ? { unmapBytes: s.unmap_bytes } : {}),
      ...fileDiscardCounters(o.parent),
      wrHighestOffset: num(cmd, s, 'wr_highest_offset'),
      raw: o,
    };
  });
}

/**
 * The exact parent/child edges of the block graph ('file', 'backing', 'data-file', 'root', ...).
 * `x-debug-query-block-graph` is the only QMP command that reports edges (QEMU ≥ 4.0); the stable
 * queries give filenames only, which are ambiguous when one image is opened twice.
 */
export async function queryBlockGraph(client: QmpClient): Promise<BlockGraph> {
  const cmd = 'x-debug-query-block-graph';
  const r = asObject(cmd, await client.execute(cmd));
  return {
    nodes: asArray(cmd, r.nodes, 'nodes').map((n) => ({ id: num(cmd, n, 'id'), type: str(cmd, n, 'type'), name: str(cmd, n, 'name') })),
    edges: asArray(cmd, r.edges, 'edges').map((e) => ({
      parent: num(cmd, e, 'parent'),
      child: num(cmd, e, 'child'),
      name: str(cmd, e, 'name'),
    })),
  };
}

/** Read a QOM property, e.g. a block device's `serial`. */
export function qomGet(client: QmpClient, path: string, property: string): Promise<unknown> {
  return client.execute('qom-get', { path, property });
}

/** Arm (or with 0 disarm) the one-shot BLOCK_WRITE_THRESHOLD event of a node. */
export async function setWriteThreshold(client: QmpClient, nodeName: string, threshold: number): Promise<void> {
  await client.execute('block-set-write-threshold', { 'node-name': nodeName, 'write-threshold': threshold });
}

export interface ThresholdCrossing {
  nodeName: string;
  threshold: number;
  amountExceeded: number;
  /** first byte past the threshold that was written: threshold + amountExceeded */
  offset: number;
  timestampMs: number;
}

export interface WriteThresholdOptions {
  nodeName: string;
  /** first threshold (bytes, host offset in the node) */
  threshold: number;
  /** re-arm at `offset + step` after each crossing, unless onCrossing decides otherwise */
  step: number;
  /** told about each crossing; may return the next threshold, or null to stop watching */
  onCrossing?: (c: ThresholdCrossing) => void | number | null | Promise<void | number | null>;
}

export interface WriteThresholdWatch {
  /** crossings seen so far */
  readonly count: number;
  /** resolves after stop() or when onCrossing returned null; rejects if re-arming or the connection failed */
  readonly done: Promise<void>;
  /** disarm and stop listening */
  stop(): Promise<void>;
}

/**
 * Keep a write threshold armed: BLOCK_WRITE_THRESHOLD fires once, so each crossing re-arms it.
 * Writes between a crossing and the re-arm are not reported; consumers that must not miss growth
 * compare against the node's current size (wr_highest_offset) after each crossing.
 */
export async function watchWriteThreshold(client: QmpClient, o: WriteThresholdOptions): Promise<WriteThresholdWatch> {
  const listener = client.listen({ names: ['BLOCK_WRITE_THRESHOLD'] });
  let count = 0;
  let stopped = false;
  try {
    await setWriteThreshold(client, o.nodeName, o.threshold);
  } catch (err) {
    listener.close();
    throw err;
  }
  const loop = async (): Promise<void> => {
    for await (const ev of listener) {
      const c = crossing(ev);
      if (!c || c.nodeName !== o.nodeName) continue;
      count++;
      const decided = await o.onCrossing?.(c);
      if (decided === null || stopped) break;
      const next = typeof decided === 'number' ? decided : c.offset + o.step;
      await setWriteThreshold(client, o.nodeName, next);
    }
    listener.close();
  };
  const done = loop();
  done.catch(() => {}); // observed through `done`; never an unhandled rejection
  return {
    get count() {
      return count;
    },
    done,
    async stop() {
      stopped = true;
      listener.close();
      if (client.state === 'open') await setWriteThreshold(client, o.nodeName, 0).catch(() => {});
      await done.catch(() => {});
    },
  };
}

function crossing(ev: QmpEvent): ThresholdCrossing | null {
  const d = ev.data;
  const nodeName = d['node-name'];
  const threshold = d['write-threshold'];
  const amount = d['amount-exceeded'];
  if (typeof nodeName !== 'string' || typeof threshold !== 'number' || typeof amount !== 'number') return null;
  return { nodeName, threshold, amountExceeded: amount, offset: threshold + amount, timestampMs: ev.timestampMs };
}

/**
 * Limit a guest device's I/O. `id` is the device's qdev id or QOM path — for virtio-blk it must be
 * the QOM path of the virtio backend that query-block reports as `qdev` (the PCI proxy's qdev id has
 * no block backend). Omitted limits are 0 = unlimited; QEMU rejects total and rd/wr limits together.
 */
export async function setIoThrottle(client: QmpClient, id: string, limits: Partial<ThrottleLimits>): Promise<void> {
  const args: Record<string, unknown> = { id, bps: 0, bps_rd: 0, bps_wr: 0, iops: 0, iops_rd: 0, iops_wr: 0, ...limits };
  await client.execute('block_set_io_throttle', args);
}

/** The throttle limits currently in force for a device, read back from query-block. */
export async function readIoThrottle(client: QmpClient, id: string): Promise<ThrottleLimits> {
  const match = (await queryBlock(client)).find((b) => b.qdev === id || (b.device !== '' && b.device === id));
  if (!match?.throttle) throw new QmpError(`no block device '${id}' with a medium`);
  return match.throttle;
}
