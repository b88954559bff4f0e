// Composed read-only files on a FUSE mount (the paper's fsmapcreate / fsmapdelete, in user space).
// Programmatic API for the host agent; see docs/fs.md.

export { FsError, type FsErrorCode } from './errors.js';
export { SegmentList, ZERO_SOURCE, type SegmentTable, type SegmentView } from './segments.js';
export {
  CompositionStore,
  checkName,
  Composition,
  FILE_PREFIX,
  type CompositionInfo,
  type ComposeOptions,
  type ResolvedSegment,
  type SegmentSpec,
} from './store.js';
export { ComposedMount, cleanStaleMount, prepareMountpoint, resolveGroup, type MountOptions } from './mount.js';
export { JournalFollower, type FollowEvent } from './follower.js';
export { ControlClient, serveControl, socketPath, type Request } from './control.js';
export { runDaemon, type DaemonOptions } from './daemon.js';
export { addonPath, loadNative, type NativeAddon, type SendFileResult, type SendToken } from './native.js';
