// The disk maps: one image mapper per guest disk (by virtio serial), built from the VM's live block
// graph, plus an allocation watch on each qcow2 disk. Rebuilt whenever the chain changes; the guest
// names disks by serial, so a disk without one cannot be shared from.
import { stat } from 'node:fs/promises';
import { openImage, type ImageMapper, type OpenImageOptions } from '../image/index.js';
import type { VmDisk, VmModel } from '../qmp/index.js';
import type { AllocationWatch, VmControlSession } from './control/index.js';
import { diskImageOptions } from './disk-image.js';
import type { Logger } from './log.js';

/** re-arm the write threshold this far past each crossing (host bytes of the image file) */
export const THRESHOLD_STEP = 16 << 20;

export interface DiskMapsOptions {
  log: Logger;
  /** QEMU allocated new clusters in this disk's top image (its L2 tables changed) */
  onAllocation: (serial: string) => void;
  /** opens a mapper (default: openImage) */
  open?: (file: string, o: OpenImageOptions) => Promise<ImageMapper>;
  /** the image file's size, where the first allocation threshold goes (default: stat) */
  fileSize?: (file: string) => Promise<number>;
}

export class DiskMaps {
  private mappers = new Map<string, ImageMapper>();
  private watches: AllocationWatch[] = [];
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

  /** Stops the allocation watches (first, while the control session may still be open). */
  async stopWatches(): Promise<void> {
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
