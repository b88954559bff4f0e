// Loads the native addon (src/fs/native/livemr_fuse.c, built by scripts/build-native-fuse.sh into
// build/livemr_fuse.node) and describes its interface.

import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsError } from './errors.js';
import type { NativeTable } from './store.js';

declare const nativeMountBrand: unique symbol;
/** An opaque handle of one live FUSE session. */
export type NativeMount = { readonly [nativeMountBrand]: true };

export interface NativeMountOptions {
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  allowOther: boolean;
  splice: boolean;
  /** attribute / entry cache timeout, seconds */
  timeout: number;
  debug: boolean;
}

export interface NativeStats {
  reads: number;
  readBytes: number;
  readErrors: number;
}

export interface NativeAddon {
  /** Mounts and starts the session threads; onExit(rc) runs when the session has ended. */
  mount(mountpoint: string, opts: NativeMountOptions, onExit: (rc: number) => void): NativeMount;
  /** Installs (creates or swaps) the table of one file; returns its inode number. */
  setFile(m: NativeMount, fileName: string, table: NativeTable, invalFrom: number): number;
  removeFile(m: NativeMount, fileName: string): boolean;
  /** Lazy unmount (MNT_DETACH); returns 0 or an errno (EPERM when not root). */
  unmount(m: NativeMount): number;
  stats(m: NativeMount): NativeStats;
  /** Times the read path's segment lookup over `positions`, in batches. */
  benchLookup(
    table: NativeTable,
    positions: Float64Array,
    batch: number,
  ): { medianNs: number; meanNs: number; tableBytes: number; checksum: number };
  /** sendfile(2) of `count` bytes of inFd at `offset` to the socket outFd (livemr_sendfile.c);
   *  absent from addons built before it. */
  sendFile?(outFd: number, inFd: number, offset: number, count: number, waitMs: number, token?: SendToken): Promise<SendFileResult>;
  /** A cancel token for sendFile calls. */
  sendToken?(): SendToken;
  /** Stops the call using `token`; returns, once it cannot write another byte, the bytes it sent. */
  sendCancel?(token: SendToken): number;
  /** A memfd of `size` zero bytes (a sendfile source for holes). */
  zeroFd?(size: number): number;
}

declare const sendTokenBrand: unique symbol;
export type SendToken = { readonly [sendTokenBrand]: true };

export interface SendFileResult {
  sent: number;
  /** the input ended before `count` bytes */
  eof: boolean;
  /** the socket stayed full for waitMs */
  stalled: boolean;
  /** stopped by sendCancel */
  cancelled: boolean;
}

export function addonPath(): string {
  if (process.env.LIVEMR_FUSE_ADDON) return process.env.LIVEMR_FUSE_ADDON;
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '../../build/livemr_fuse.node');
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const file = addonPath();
  if (!fs.existsSync(file))
    throw new FsError('ENATIVE', `native FUSE addon ${file} is not built: run scripts/build-native-fuse.sh`);
  try {
    cached = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    throw new FsError('ENATIVE', `cannot load ${file}: ${(e as Error).message}`);
  }
  return cached;
}
