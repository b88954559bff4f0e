// The disk maps: one image mapper per guest disk (by virtio serial), built from the VM's live block
// graph, plus an allocation watch on each qcow2 disk and a discard watch on them all (the disks'
// unmap counters, polled). Rebuilt whenever the chain changes; the guest names disks by serial, so a
// disk without one cannot be shared from.
import { stat } from 'node:fs/promises';
import { openImage, type ImageMapper, type OpenImageOptions } from '../image/index.js';
import type { VmDisk, VmModel } from '../qmp/index.js';
import type { AllocationWatch, DiskCounters, VmControlSession } from './control/index.js';
import { diskImageOptions } from './disk-image.js';
import type { Logger } from './log.js';

/** re-arm the write threshold this far past each crossing (host bytes of the image file) */
export const THRESHOLD_STEP = 16 << 20;
/** how often the disks' unmap counters are read (one query per VM) */
export const DISCARD_POLL_MS = 1000;

export interface DiskMapsOptions {
  log: Logger;
  /** QEMU allocated new clusters in this disk's top image (its L2 tables changed) */
  onAllocation: (serial: string) => void;
  /**
   * The guest discarded ranges of this qcow2 disk ('discard'), or flushed it after one ('flush'):
   * QEMU may have freed clusters and reused them, so every mapping on it may have changed.
   */
  onDiscard?: (serial: string, why: 'discard' | 'flush') => void;
  /** the unmap counters' poll period (default DISCARD_POLL_MS) */
  discardPollMs?: number;
  /** opens a mapper (default: openImage) */
  open?: (file: string, o: OpenImageOptions) => Promise<ImageMapper>;
  /** the image file's size, where the first allocation threshold goes (default: stat) */
  fileSize?: (file: string) => Promise<number>;
}

export class DiskMaps {
  private mappers = new Map<string, ImageMapper>();
  private watches: AllocationWatch[] = [];
  private discardTimer?: NodeJS.Timeout;
  /** counts the discard watch has done, for status and cost figures */
  readonly discardStats = { polls: 0, discards: 0, flushes: 0 };
  private signature?: string;
  /** the VM as last described; undefined while detached */
  model?: VmModel;

  constructor(private readonly o: DiskMapsOptions) {}

  get(serial: string): ImageMapper | undefined { return this.mappers.get(serial); }

  /** (Re)builds every mapper from the VM's live block graph, which wins over image headers. */
  async load(ctl: VmControlSession): Promise<void> {
    const model = await ctl.describe();
    await this.close();
    for (const d of model.disks) {
      if (!d.serial) continue;
      // formats, chain, data file, a raw node's offset/size window, QEMU's virtual size as the bound
      const o = diskImageOptions(d);
      if ('refused' in o) {
        this.o.log.warn('disk not mapped: its files cannot be shared', { serial: d.serial, reason: o.refused });
        continue;
      }
      const mapper = await (this.o.open ?? openImage)(d.file, o.options);
      this.mappers.set(d.serial, mapper);
      await this.watchAllocation(ctl, d);
    }
    this.model = model;
    this.signature = await ctl.chainSignature();
    this.watchDiscards(ctl, model);
    this.o.log.info('block graph loaded', { status: model.status, disks: model.disks.map((d) => ({ serial: d.serial, file: d.file, chain: d.chain.length })) });
  }

  /**
   * An external snapshot (blockdev-snapshot-sync) or a block job's graph change can put a new image
   * on top without an event we can rely on: compares the chains the VM runs now with ours and
   * reloads when they differ. Returns true when it reloaded.
   */
  async reloadIfChanged(ctl: VmControlSession): Promise<boolean> {
    if ((await ctl.chainSignature()) === this.signature) return false;
    await this.load(ctl);
    return true;
  }

  /** Drops every cached header/L1/L2 of these disks (their metadata on disk is current again). */
  async invalidate(serials: Iterable<string>): Promise<void> {
    for (const serial of serials) await this.mappers.get(serial)?.invalidate();
  }

  setRunState(status: string): void {
    if (this.model) this.model.status = status;
  }

  private async watchAllocation(ctl: VmControlSession, d: VmDisk): Promise<void> {
    if (d.format !== 'qcow2') return;
    try {
      const threshold = await (this.o.fileSize ?? (async (f: string) => (await stat(f)).size))(d.file);
      this.watches.push(await ctl.watchAllocation(d, { threshold, step: THRESHOLD_STEP, onCrossing: () => this.o.onAllocation(d.serial!) }));
    } catch (e) {
      this.o.log.warn('cannot arm the write threshold', { serial: d.serial, error: e as Error });
    }
  }

  /**
   * A discard lets QEMU free a qcow2 cluster and reuse it — for an L2 table, for another write —
   * with no event and no report from the guest: the discard counters of every qcow2 disk (the
   * device's unmap requests, and the discards QEMU passed to the image file) are read every
   * discardPollMs, and a change re-verifies the disk's files. QEMU writes the discard's own
   * metadata (the L2 entry no longer pointing at the cluster) only when it flushes, so the files are
   * verified again on each of the next flushes (two: a flush under way during the discard may have
   * written its tables before it).
   */
  private watchDiscards(ctl: VmControlSession, model: VmModel): void {
    const disks = model.disks.filter((d) => d.serial && d.qomPath && d.format === 'qcow2' && this.mappers.has(d.serial));
    if (!ctl.diskCounters || !this.o.onDiscard || disks.length === 0) return;
    const onDiscard = this.o.onDiscard;
    const last = new Map<string, DiskCounters>();
    const suspect = new Map<string, number>(); // serial → flushes seen when its last discard was
    let warned = false;
    const tick = async () => {
      this.discardTimer = undefined;
      if (!ctl.open) return;
      try {
        const counters = await ctl.diskCounters!();
        if (this.discardTick !== tick) return; // stopped (or reloaded) meanwhile
        this.discardStats.polls++;
        for (const d of disks) {
          const c = counters.get(d.qomPath!);
          if (!c) continue;
          if (c.unmapOperations === undefined && c.fileDiscards === undefined && !warned) {
            warned = true;
            this.o.log.warn('the hypervisor does not count discards: a discarded cluster QEMU reuses goes unseen until the guest reports its file', { serial: d.serial });
          }
          const prev = last.get(d.serial!);
          last.set(d.serial!, c);
          if (!prev) continue;
          // the guest's discard requests (IDE, SCSI count them) or the discards QEMU passed to the image
          // file (virtio-blk's too, and the clusters a write-zeroes with unmap freed)
          if (c.unmapOperations !== prev.unmapOperations || c.unmapBytes !== prev.unmapBytes
            || c.fileDiscards !== prev.fileDiscards || c.fileDiscardBytes !== prev.fileDiscardBytes) {
            suspect.set(d.serial!, c.flushOperations);
            this.discardStats.discards++;
            onDiscard(d.serial!, 'discard');
          } else if (suspect.has(d.serial!) && c.flushOperations !== prev.flushOperations) {
            if (c.flushOperations >= suspect.get(d.serial!)! + 2) suspect.delete(d.serial!);
            this.discardStats.flushes++;
            onDiscard(d.serial!, 'flush');
          }
        }
      } catch (e) {
        if (ctl.open) this.o.log.warn('cannot read the disks\' counters', { error: e as Error });
      }
      if (ctl.open && this.discardTick === tick) this.discardTimer = setTimeout(() => void tick(), this.o.discardPollMs ?? DISCARD_POLL_MS);
    };
    this.discardTick = tick;
    void tick(); // the first read is the baseline
  }

  private discardTick?: () => Promise<void>;

  /** Stops the allocation watches (first, while the control session may still be open). */
  async stopWatches(): Promise<void> {
    clearTimeout(this.discardTimer);
    this.discardTimer = undefined;
    this.discardTick = undefined;
    for (const w of this.watches) await w.stop().catch(() => {});
    this.watches = [];
  }

  /** Stops the watches and closes every mapper. */
  async close(): Promise<void> {
    await this.stopWatches();
    for (const m of this.mappers.values()) await m.close().catch(() => {});
    this.mappers.clear();
  }

  /** Forgets the VM (detached from its control plane). */
  async detach(): Promise<void> {
    await this.close();
    this.model = undefined;
  }
}
