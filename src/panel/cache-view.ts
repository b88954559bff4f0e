// The AC-SSD view: the cache loop (`livemr cache run`) prints one JSON decision per line; the panel
// reads the last ones from that file (bounded: only its tail) and shows the weights of the latest
// plan and the recent decisions. No file configured or none yet: an empty state that says why.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { Decision } from '../cache/index.js';

export interface CacheView {
  configured: boolean;
  source?: string;
  /** why there is nothing to show */
  empty?: string;
  /** weights of the latest decision that has a plan */
  weights?: { at: string; solver: string; fitness: number; rows: { name: string; app: string; ws: number; wi: number }[] };
  decisions: { at: string; step: number; action: string; reason: string; move?: number }[];
}

const TAIL_BYTES = 512 * 1024;

export function readCacheView(file: string | undefined, last = 20): CacheView {
  if (!file) return { configured: false, empty: 'No cache loop configured: set "cacheDecisions" to the file `livemr cache run` writes its decisions to.', decisions: [] };
  if (!existsSync(file)) return { configured: true, source: file, empty: `The cache loop has not written ${file} yet.`, decisions: [] };
  const size = statSync(file).size;
  const buf = Buffer.alloc(Math.min(size, TAIL_BYTES));
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, size - buf.length); } finally { closeSync(fd); }
  const lines = buf.toString('utf8').split('\n');
  if (size > buf.length) lines.shift(); // a cut first line
  const ds: Decision[] = [];
  for (const l of lines) {
    if (!l.trim()) continue;
    try {
      const d = JSON.parse(l) as Decision;
      if (d && typeof d.action === 'string' && typeof d.at === 'string') ds.push(d);
    } catch { /* not a decision line */ }
  }
  const planned = [...ds].reverse().find((d) => d.plan && Array.isArray(d.plan.rows));
  const view: CacheView = {
    configured: true, source: file,
    decisions: ds.slice(-last).reverse().map((d) => ({ at: d.at, step: d.step, action: d.action, reason: d.reason, ...(d.move === undefined ? {} : { move: d.move }) })),
  };
  if (planned?.plan) {
    view.weights = { at: planned.at, solver: planned.plan.solver, fitness: planned.plan.fitness, rows: planned.plan.rows.map((r) => ({ name: r.name, app: r.app, ws: r.ws, wi: r.wi })) };
  } else view.empty = ds.length ? 'No plan yet: the loop has only taken its baseline sample.' : `No decisions in ${file} yet.`;
  return view;
}
