// The VM's control plane as the host agent needs it: what disks (and image chains) the VM runs, a
// cheap way to notice a changed chain, events that change them, allocation watches on qcow2 disks,
// and hot-plugging the LiveMR channel. VmLink depends only on this interface; `QmpControl` talks raw
// QMP to QEMU; a libvirt implementation goes next to it (docs/host.md#control-plane).
import type { VmDisk, VmModel } from '../../qmp/index.js';

/** What happened to the VM, in the agent's terms (each implementation maps its own events). */
export type VmEvent =
  /** a block job or corruption changed what the image chain holds: reload it, remap every file */
  | { kind: 'graph-changed'; name: string; data?: unknown }
  /** the guest paused, resumed, shut down or was reset: `runState` is the new run state */
  | { kind: 'lifecycle'; name: string; runState: string };

export interface AllocationWatch {
  /** disarm and stop listening */
  stop(): Promise<void>;
}

export interface AllocationWatchOptions {
  /** first threshold: host bytes of the disk's top image file */
  threshold: number;
  /** re-arm this far past each crossing */
  step: number;
  /** QEMU wrote past the threshold: it allocated clusters, so the image's L2 tables changed */
  onCrossing: () => void;
}

/** A guest disk's request counters, as far as they tell that image mappings may have changed. */
export interface DiskCounters {
  /** discard (unmap) requests completed and their bytes; undefined when the hypervisor does not count them */
  unmapOperations?: number;
  unmapBytes?: number;
  /** discards passed down to the image file (QEMU freed qcow2 clusters, with discard=unmap) */
  fileDiscards?: number;
  fileDiscardBytes?: number;
  /** flush requests completed: after one, QEMU's qcow2 metadata on disk includes every earlier discard */
  flushOperations: number;
}

/** The result of plugging the LiveMR channel: new, or left by an earlier run of the agent. */
export type ChannelPlug = 'plugged' | 'already-plugged';

/** One live connection to a VM's control plane. Dead once `closed` resolved; connect again. */
export interface VmControlSession {
  /** true until the connection ended */
  readonly open: boolean;
  /** resolves when the connection ended: undefined after close(), else why */
  readonly closed: Promise<Error | undefined>;
  /** the disks as the VM runs them now (the live block graph wins over image headers) */
  describe(): Promise<VmModel>;
  /** a string that changes whenever any disk's root node or image chain changes (one round trip) */
  chainSignature(): Promise<string>;
  /**
   * hot-plugs the org.livemr.0 port on a unix socket the hypervisor listens on. An implementation
   * whose hypervisor picks the socket itself (libvirt) ignores `socketPath` and reports the real
   * one in `channelSocketPath`.
   */
  plugChannel(socketPath: string): Promise<ChannelPlug>;
  /** set by plugChannel when the socket is not the one asked for */
  readonly channelSocketPath?: string;
  /** watches a qcow2 disk's top image for newly allocated clusters */
  watchAllocation(disk: VmDisk, o: AllocationWatchOptions): Promise<AllocationWatch>;
  /**
   * every guest disk's counters by QOM path (VmDisk.qomPath), one round trip; absent when the
   * control plane cannot read them (then discards go unseen: docs/host.md, "Discards")
   */
  diskCounters?(): Promise<Map<string, DiskCounters>>;
  /** subscribes to VM events; returns unsubscribe */
  onEvent(fn: (ev: VmEvent) => void): () => void;
  close(): Promise<void>;
}

/** How to reach one VM's control plane. */
export interface VmControl {
  /** 'qmp' or 'libvirt': for logs */
  readonly kind: string;
  /** where it connects, for logs (a socket path, a libvirt URI and domain) */
  readonly address: string;
  /** connects, retrying while the other end is not there yet; rejects when `signal` aborts */
  connect(signal: AbortSignal): Promise<VmControlSession>;
}
