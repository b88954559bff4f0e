// Loads the helper's N-API addon (src/guest/native/livemr_guest.c). In the guest it sits next to the
// bundle (/opt/livemr/); from the source tree (tests on the host) it is build/guest/.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FiemapExtent { logical: number; physical: number; length: number; flags: number }

export interface GuestNative {
  /** FS_IOC_FIEMAP over [start, start+length): byte extents, fs-relative; at most 65536 per call */
  fiemap(fd: number, flags: number, start: number, length: number): FiemapExtent[];
  /** the inode's generation number (FS_IOC_GETVERSION) */
  generation(fd: number): number;
  /** null when the attribute is not set */
  getxattr(path: string, name: string): Buffer | null;
  setxattr(path: string, name: string, value: Buffer): void;
  removexattr(path: string, name: string): void;
  listxattr(path: string): string[];
  FIEMAP_FLAG_SYNC: number;
}

/** linux/fiemap.h */
export const FIEMAP_EXTENT = {
  LAST: 0x1, UNKNOWN: 0x2, DELALLOC: 0x4, ENCODED: 0x8, DATA_ENCRYPTED: 0x80, NOT_ALIGNED: 0x100,
  DATA_INLINE: 0x200, DATA_TAIL: 0x400, UNWRITTEN: 0x800, MERGED: 0x1000, SHARED: 0x2000,
} as const;

const ADDON = 'livemr_guest.node';
let loaded: GuestNative | undefined;

export function native(): GuestNative {
  if (loaded) return loaded;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [process.env.LIVEMR_GUEST_ADDON, join(here, ADDON), resolve(here, '../../build/guest', ADDON)].filter(
    (p): p is string => !!p,
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`${ADDON} not found (looked in ${candidates.join(', ')}); run scripts/build-native-guest.sh`);
  loaded = createRequire(import.meta.url)(found) as GuestNative;
  return loaded;
}
