// Host-side disk image mapper (raw and qcow2): guest disk offsets → byte ranges of image files.
export { openImage, probeFormat, resolveBackingName } from './image.js';
export type { ImageMapper, OpenImageOptions, MapOptions, BackingSpec, ChainEntry } from './image.js';
export type { Extent, ExtentKind, Segment } from './extent.js';
export { toSegments } from './extent.js';
export { PendingQueue, allocatedInTop } from './pending.js';
export type { PendingRange, PendingResolution } from './pending.js';
export { ImageError, UnsupportedImageError, CorruptImageError, ImageRangeError, ImageMetadataOverlapError } from './errors.js';
export { toQemuMap, toQemuEntry, mergeQemuMap, formatQemuMapJson } from './qemu-map.js';
export type { QemuMapEntry } from './qemu-map.js';
export type { ImageFormat } from './layer.js';
export type { RawWindow } from './raw.js';
export { readQcow2Header, readSnapshots } from './qcow2-header.js';
export type { Qcow2Header, Qcow2Snapshot } from './qcow2-header.js';
