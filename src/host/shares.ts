// The share book: what this VM was asked to share and where each request stands. One status type
// for the whole agent (ShareRecordStatus: the guest's answers plus the host's own states), one
// transition function, and exhaustive maps from it — a new status does not compile until every map
// says what it means (docs/host.md#share-states).
import { SHARE_STATUS, type RemoveReason, type ShareStatus } from '../guest/index.js';

/** requested (host side) → a guest answer (SHARE_STATUS) → revoked / deleted / unshared / failed */
export const SHARE_RECORD_STATUS = ['requested', ...SHARE_STATUS, 'revoked', 'deleted', 'unshared'] as const;
export type ShareRecordStatus = (typeof SHARE_RECORD_STATUS)[number];

export interface ShareRecord {
  path: string;
  status: ShareRecordStatus;
  message: string;
  updatedMs: number;
}

/** What can happen to a share request. */
export type ShareEvent =
  /** the host asked for the path (config, a user, a request kept from an earlier run) */
  | { kind: 'requested' }
  /** the guest answered (shareStatus frame) */
  | { kind: 'answered'; status: ShareStatus }
  /** the guest reported the file's extents: it is shared */
  | { kind: 'file' }
  /** the guest stopped sharing the file */
  | { kind: 'removed'; reason: RemoveReason };

const AFTER_REMOVAL = {
  deleted: 'deleted', unshared: 'unshared', 'consent-revoked': 'revoked', failed: 'failed',
} as const satisfies Record<RemoveReason, ShareRecordStatus>;

/** The status after `ev`; undefined when the event changes nothing (a file report on a shared path). */
export function nextShareStatus(current: ShareRecordStatus | undefined, ev: ShareEvent): ShareRecordStatus | undefined {
  switch (ev.kind) {
    case 'requested': return 'requested';
    case 'answered': return ev.status;
    case 'file': return current === 'shared' ? undefined : 'shared';
    case 'removed': return AFTER_REMOVAL[ev.reason];
  }
}

/**
 * Whether a guest (re)connect asks for the path again. The guest remembers what it was asked (and
 * the owner's pending requests): re-asking for a path that waits for consent or was denied would
 * file a new request for its owner on every reconnect; only a new explicit request asks again.
 */
export const ASK_ON_HELLO = {
  requested: true, shared: true, 'pending-consent': false, denied: false, 'not-found': true, 'not-regular': true,
  'not-mappable': true, 'unsupported-device': true, failed: true, revoked: true, deleted: true, unshared: true,
} as const satisfies Record<ShareRecordStatus, boolean>;

/** Whether the path is asked for again after the guest's resync: only requests that got no answer (a
 *  share sent while the guest was still handshaking can be lost). */
export const ASK_AFTER_RESYNC = {
  requested: true, shared: false, 'pending-consent': false, denied: false, 'not-found': false, 'not-regular': false,
  'not-mappable': false, 'unsupported-device': false, failed: false, revoked: false, deleted: false, unshared: false,
} as const satisfies Record<ShareRecordStatus, boolean>;

/**
 * Records that only say how a share ended (or why it never began): the oldest of them are
 * forgotten when a book is over its size, so that a guest reporting ever new paths cannot grow it.
 */
const SETTLED = {
  requested: false, shared: false, 'pending-consent': false, denied: true, 'not-found': true, 'not-regular': true,
  'not-mappable': true, 'unsupported-device': true, failed: true, revoked: true, deleted: true, unshared: true,
} as const satisfies Record<ShareRecordStatus, boolean>;

/** The share records of one VM; configured paths are wanted even before they have a record. */
export class ShareBook {
  private readonly records = new Map<string, ShareRecord>();

  constructor(
    private readonly configured: readonly string[],
    /** paths requested at run time in earlier runs: shown as requested until the guest answers */
    requested: readonly string[] = [],
    private readonly onChange: () => void = () => {},
    /** records kept at most, beyond which the oldest settled ones are forgotten */
    private readonly maxRecords = 4096,
  ) {
    for (const path of requested) this.records.set(path, { path, status: 'requested', message: 'will be sent when the guest connects', updatedMs: Date.now() });
  }

  /** Applies `ev` to the path's record; returns the record (unchanged when the event changed nothing). */
  record(path: string, ev: ShareEvent, message: string): ShareRecord {
    const cur = this.records.get(path);
    const next = nextShareStatus(cur?.status, ev);
    if (next === undefined) return cur!; // only a file report on a path already shared
    const rec: ShareRecord = { path, status: next, message, updatedMs: Date.now() };
    this.records.delete(path); // newest last: the oldest settled records go first
    this.records.set(path, rec);
    if (this.records.size > this.maxRecords) {
      for (const [p, r] of this.records) {
        if (SETTLED[r.status] && !this.configured.includes(p)) { this.records.delete(p); break; }
      }
    }
    this.onChange();
    return rec;
  }

  /** Whether the host asked for `path` (configured or requested): a guest's status for another path is not taken. */
  asked(path: string): boolean {
    return this.records.has(path) || this.configured.includes(path);
  }

  get(path: string): ShareRecord | undefined { return this.records.get(path); }

  /** Every path this VM is asked to share: the config's and those requested at run time. */
  wanted(): string[] { return [...new Set([...this.configured, ...this.records.keys()])]; }

  /** Paths to ask for when the guest says hello (see ASK_ON_HELLO). */
  toAskOnHello(): string[] { return this.wanted().filter((p) => ASK_ON_HELLO[this.records.get(p)?.status ?? 'requested']); }

  /** Paths to ask for again after the guest's resync (see ASK_AFTER_RESYNC). */
  toAskAfterResync(): string[] { return this.wanted().filter((p) => ASK_AFTER_RESYNC[this.records.get(p)?.status ?? 'requested']); }

  /** Copies, in request order. */
  list(): ShareRecord[] { return [...this.records.values()].map((r) => ({ ...r })); }
}
