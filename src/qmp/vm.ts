// The VM model: the guest disks as QEMU actually runs them, built from the live block graph. This is
// what the image mapper consumes: for each disk the image file and format of every layer of its
// backing chain, with the node names needed to arm write thresholds or read statistics.
//
// Sources: query-status (run state), query-block (one entry per guest drive: qdev path, root node),
// qom-get <device>.serial (query-block does not report the serial), query-named-block-nodes flat
// (driver, filename, read-only, size of every node) and x-debug-query-block-graph (the parent/child
// edges; filenames alone are ambiguous when one base image is opened by two chains).

import type { QmpClient } from './protocol/client.js';
import { ExecuteError, UnexpectedReplyError } from './protocol/errors.js';
import { queryBlock, queryBlockGraph, queryNamedBlockNodes, qomGet, type BlockNode } from './vocab/block.js';
import { queryStatus } from './vocab/machine.js';

export interface ChainLayer {
  /** node name of the format node (auto-generated '#blockNNN' unless the VM was started with names) */
  nodeName: string;
  /** format driver: qcow2, raw, ... */
  format: string;
  /** image file of this layer, as opened by QEMU */
  file: string;
  /** node name of the protocol node under the format node (write thresholds go here) */
  fileNodeName: string;
  /** protocol driver of that node: file, host_device, nbd, ... */
  protocol: string;
  /** qcow2 external data file, when the image has one */
  dataFile?: string;
  readOnly: boolean;
  virtualSize: number;
  /**
   * raw layers opened with QEMU's `offset`/`size` options expose only that window of their file:
   * guest offset 0 is file offset `offset`. QEMU reports such a node's filename as a `json:` object.
   */
  window?: { offset: number; size: number };
  /** why this layer cannot be mapped safely (options the mapper does not understand) */
  unsupported?: string;
}

export interface VmDisk {
  /** qdev id given with -device ...,id= ; null for anonymous devices */
  qdevId: string | null;
  /** QOM path of the block device (query-block `qdev`); the `id` for block_set_io_throttle */
  qomPath: string | null;
  /** BlockBackend name (-drive id), null for devices on -blockdev nodes */
  device: string | null;
  /** the device's `serial` property, null if unset */
  serial: string | null;
  nodeName: string;
  fileNodeName: string;
  format: string;
  file: string;
  readOnly: boolean;
  virtualSize: number;
  /** the active layer first, then its backing files down to the base */
  chain: ChainLayer[];
}

export interface VmModel {
  status: string;
  running: boolean;
  disks: VmDisk[];
}

/** Drivers that sit above a format node and pass I/O to their 'file' child. */
const FILTER_DRIVERS = new Set([
  'throttle', 'copy-on-read', 'preallocate', 'compress', 'blkdebug', 'blklogwrites', 'copy-before-write', 'snapshot-access',
]);
const MAX_DEPTH = 256;
const CMD = 'x-debug-query-block-graph';

export async function describeVm(client: QmpClient): Promise<VmModel> {
  const [status, backends, nodes, graph] = await Promise.all([
    queryStatus(client),
    queryBlock(client),
    queryNamedBlockNodes(client),
    queryBlockGraph(client),
  ]);
  const byName = new Map(nodes.map((n) => [n.nodeName, n]));
  const nameOfId = new Map(graph.nodes.map((n) => [n.id, n.name]));
  const children = new Map<string, Map<string, string>>();
  for (const e of graph.edges) {
    const parent = nameOfId.get(e.parent);
    const child = nameOfId.get(e.child);
    if (parent === undefined || child === undefined) throw new UnexpectedReplyError(CMD, `edge to unknown node id`);
    if (!children.has(parent)) children.set(parent, new Map());
    children.get(parent)!.set(e.name, child);
  }
  const node = (name: string): BlockNode => {
    const n = byName.get(name);
    if (!n) throw new UnexpectedReplyError(CMD, `node '${name}' missing from query-named-block-nodes`);
    return n;
  };
  const child = (name: string, edge: string): string | undefined => children.get(name)?.get(edge);

  const skipFilters = (name: string): string => {
    for (let i = 0; i < MAX_DEPTH && FILTER_DRIVERS.has(node(name).drv); i++) {
      const below = child(name, 'file');
      if (below === undefined) break;
      name = below;
    }
    return name;
  };

  const chainFrom = (rootName: string): ChainLayer[] => {
    const chain: ChainLayer[] = [];
    const seen = new Set<string>();
    for (let name: string | undefined = skipFilters(rootName); name !== undefined; ) {
      if (seen.has(name) || chain.length >= MAX_DEPTH) throw new UnexpectedReplyError(CMD, `backing chain loops at '${name}'`);
      seen.add(name);
      const fmt = node(name);
      const protoName = child(name, 'file');
      // A device attached straight to a protocol node has no format layer: it reads the file raw.
      const proto = protoName === undefined ? fmt : node(protoName);
      const dataFileNode = child(name, 'data-file');
      const layer: ChainLayer = {
        nodeName: fmt.nodeName,
        format: protoName === undefined ? 'raw' : fmt.drv,
        file: proto.file,
        fileNodeName: proto.nodeName,
        protocol: proto.drv,
        readOnly: fmt.readOnly,
        virtualSize: fmt.image.virtualSize,
      };
      if (dataFileNode !== undefined) layer.dataFile = node(dataFileNode).file;
      if (layer.format === 'raw' && protoName !== undefined) Object.assign(layer, rawWindow(fmt.file, fmt.image.virtualSize));
      chain.push(layer);
      const backing = child(name, 'backing');
      name = backing === undefined ? undefined : skipFilters(backing);
    }
    return chain;
  };

  const disks: VmDisk[] = [];
  for (const b of backends) {
    if (!b.inserted) continue; // empty drive (e.g. a CD-ROM without medium)
    const chain = chainFrom(b.inserted.nodeName);
    const top = chain[0]!;
    const qomPath = b.qdev ?? null;
    disks.push({
      qdevId: qdevIdOf(b.qdev),
      qomPath,
      device: b.device === '' ? null : b.device,
      serial: qomPath === null ? null : await serialOf(client, qomPath),
      nodeName: top.nodeName,
      fileNodeName: top.fileNodeName,
      format: top.format,
      file: top.file,
      readOnly: top.readOnly,
      virtualSize: top.virtualSize,
      chain,
    });
  }
  return { status: status.status, running: status.running, disks };
}

/**
 * The window of a raw format node: QEMU names a node whose options matter (`offset`, `size`) by a
 * `json:{...}` pseudo-filename. Offset 0 and the full size need no window; anything unreadable is
 * reported as unsupported rather than guessed.
 */
export function rawWindow(filename: string, virtualSize: number): { window?: { offset: number; size: number }; unsupported?: string } {
  if (!filename.startsWith('json:')) return {};
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(filename.slice(5)) as Record<string, unknown>;
  } catch {
    return { unsupported: `raw node with unreadable options ${filename.slice(0, 200)}` };
  }
  const num = (v: unknown, d: number) => (v === undefined ? d : typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN);
  const offset = num(o.offset, 0);
  const size = num(o.size, virtualSize);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0 || size !== virtualSize) {
    return { unsupported: `raw node window offset=${String(o.offset)} size=${String(o.size)} does not match its virtual size ${virtualSize}` };
  }
  return offset === 0 && o.size === undefined ? {} : { window: { offset, size } };
}

/** '/machine/peripheral/disk0/virtio-backend' → 'disk0'; a bare id is returned as is; anonymous → null. */
export function qdevIdOf(qdev: string | undefined): string | null {
  if (qdev === undefined || qdev === '') return null;
  if (!qdev.startsWith('/')) return qdev;
  const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
  return m ? m[1]! : null;
}

async function serialOf(client: QmpClient, qdev: string): Promise<string | null> {
  const path = qdev.startsWith('/') ? qdev : `/machine/peripheral/${qdev}`;
  try {
    const v = await qomGet(client, path, 'serial');
    return typeof v === 'string' && v !== '' ? v : null;
  } catch (err) {
    if (err instanceof ExecuteError) return null; // device type without a serial property
    throw err;
  }
}
