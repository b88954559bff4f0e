// What the panel shows of a host agent: its status reshaped for people (consent states named as the
// user thinks of them, per-file growth rate and freshness lag, where each file can be read from).
import { compositionName, type AgentStatus, type BigLogSource, type ShareRecordStatus } from '../host/index.js';
import type { CompositionInfo } from '../fs/index.js';

/** pending: waiting for the owner; granted: shared; the rest are final answers (src/guest/consent.ts). */
export type ConsentState = 'pending' | 'granted' | 'denied' | 'not-found' | 'revoked' | 'error';

/** How the panel names each share status (exhaustive: a new status does not compile without one). */
export const CONSENT_STATE = {
  requested: 'pending', 'pending-consent': 'pending', shared: 'granted', denied: 'denied', 'not-found': 'not-found',
  deleted: 'not-found', revoked: 'revoked', 'not-regular': 'error', 'not-mappable': 'error', 'unsupported-device': 'error',
  failed: 'error', unshared: 'error',
} as const satisfies Record<ShareRecordStatus, ConsentState>;

/** Takes any string: a status from a newer agent (over HTTP) that this panel does not know is an error. */
export function consentState(status: string): ConsentState {
  return Object.hasOwn(CONSENT_STATE, status) ? CONSENT_STATE[status as ShareRecordStatus] : 'error';
}

export interface Where { mountPath: string; webhdfs: string }

export interface FileView extends Where {
  vm: string; path: string; name: string;
  guestSize: number; servedSize: number; growthBytesPerSec: number; freshnessLagMs: number;
  pendingRanges: number; refused?: string; lastUpdateMs: number;
}

export interface ShareView { vm: string; path: string; state: ConsentState; status: ShareRecordStatus; message: string; updatedMs: number }

export interface VmView {
  name: string; host: string; qmp: string; channel: string; runState?: string; guest?: { guestId: string; software: string };
  disks: { serial: string | null; file: string; format: string; chain: string[] }[];
  freshnessLagMs: number; pendingRanges: number; lastError?: string;
  files: FileView[]; shares: ShareView[];
}

export interface ComposedView extends Where {
  name: string; host: string; fileName: string; size: number; segments: number; mtimeMs: number;
  /** guest files it is made of (user-composed files) */
  sources: BigLogSource[];
  /** a shared guest file's own composition, or a file composed from the panel / `livemr biglog` */
  kind: 'shared-file' | 'composed';
}

/** One agent of the panel: its API socket, its host once it answered, where its files are read. */
export interface HostView { socket: string; host: string | null; connected: boolean; webhdfs: string; error?: string }

export interface Inventory {
  host: string; mountpoint: string; webhdfs: string; uptimeMs: number; vms: VmView[]; composed: ComposedView[];
  /** every agent the panel is configured with (the inventory of one agent alone has none) */
  hosts?: HostView[];
}

/** Growth rate of each file over the last ~10 s of samples. */
export class RateTracker {
  private samples = new Map<string, { t: number; size: number }[]>();
  constructor(private readonly windowMs = 10_000) {}

  rate(name: string, size: number, now = Date.now()): number {
    const s = this.samples.get(name) ?? [];
    if (!s.length || now - s.at(-1)!.t >= 250 || size < s.at(-1)!.size) s.push({ t: now, size });
    while (s.length > 2 && now - s[0]!.t > this.windowMs) s.shift();
    if (size < s[0]!.size) s.splice(0, s.length - 1); // shrank: start over
    this.samples.set(name, s);
    const first = s[0]!;
    const dt = (now - first.t) / 1000;
    return dt >= 1 ? Math.max(0, (size - first.size) / dt) : 0;
  }
}

export function buildInventory(st: AgentStatus, comps: CompositionInfo[], bigLogs: { name: string; sources: BigLogSource[] }[], webhdfsBase: string, rates: RateTracker): Inventory {
  const now = Date.now();
  const where = (fileName: string): Where => ({ mountPath: `${st.mountpoint}/${fileName}`, webhdfs: `${webhdfsBase}/${fileName}` });
  const shared = new Set<string>();
  const vms = st.vms.map((v): VmView => {
    const files = v.files.map((f): FileView => {
      shared.add(f.name.replace(/^livemr_/, ''));
      return {
        vm: v.name, path: f.path, name: f.name, guestSize: f.guestSize, servedSize: f.servedSize,
        growthBytesPerSec: rates.rate(f.name, f.servedSize, now),
        freshnessLagMs: f.pendingSinceMs ? now - f.pendingSinceMs : 0,
        pendingRanges: f.pendingRanges, lastUpdateMs: f.lastUpdateMs, ...(f.refused ? { refused: f.refused } : {}),
        ...where(f.name.startsWith('livemr_') ? f.name : `livemr_${f.name}`),
      };
    });
    for (const s of v.shares) shared.add(compositionName(v.name, s.path));
    return {
      name: v.name, host: st.host, qmp: v.qmp, channel: v.channel, disks: v.disks, freshnessLagMs: v.freshnessLagMs, pendingRanges: v.pendingRanges,
      ...(v.runState ? { runState: v.runState } : {}), ...(v.guest ? { guest: v.guest } : {}), ...(v.lastError ? { lastError: v.lastError } : {}),
      files,
      shares: v.shares.map((s) => ({ vm: v.name, path: s.path, state: consentState(s.status), status: s.status, message: s.message, updatedMs: s.updatedMs })),
    };
  });
  const defs = new Map(bigLogs.map((b) => [b.name, b.sources]));
  const composed = comps.map((c): ComposedView => ({
    name: c.name, host: st.host, fileName: c.fileName, size: c.size, segments: c.segments, mtimeMs: c.mtimeMs,
    sources: defs.get(c.name) ?? [], kind: shared.has(c.name) && !defs.has(c.name) ? 'shared-file' : 'composed',
    ...where(c.fileName),
  }));
  return { host: st.host, mountpoint: st.mountpoint, webhdfs: webhdfsBase, uptimeMs: st.uptimeMs, vms, composed };
}
