// The agent → aggregator message (the paper's DataNode → NameNode report), JSON over HTTP:
//
//   POST /livemr/v1/report   {agent, url, host, epoch, seq, full, files: [{name, length, mtimeMs}], removed: [name], bye?}
//   200 {"ok": true}   applied
//   409 {"resync": true}   the aggregator lacks this agent's state (restart, lost report): send a full report
//
// A full report replaces what the aggregator knows of the agent; an incremental one (seq = last + 1
// within the same epoch) carries only the files that changed since the last report. Agents send one
// as soon as a file changes, so a file that crosses a block boundary has its new block at once.

import { LiveMrError } from '../errors/index.js';

export const REPORT_PATH = '/livemr/v1/report';
export const TOKEN_HEADER = 'x-livemr-agent-token';
export const MAX_REPORT_BYTES = 64 * 1024 * 1024;

export interface ReportedFile {
  name: string;
  length: number;
  mtimeMs: number;
}

export interface Report {
  agent: string;
  /** base URL of the agent's WebHDFS endpoint */
  url: string;
  /** KVM host name for block locations */
  host: string;
  /** changes when the agent restarts */
  epoch: string;
  seq: number;
  full: boolean;
  files: ReportedFile[];
  removed: string[];
  /** the agent is going away: forget its files */
  bye?: boolean;
}

const ID_RE = /^[A-Za-z0-9._:-]{1,200}$/;
const NAME_RE = /^[^/\0]{1,255}$/;

export class ReportError extends LiveMrError {
  override name = 'ReportError';
  readonly code = 'HDFS_BAD_REPORT';
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Validates a decoded report; throws ReportError naming the first bad field. */
export function parseReport(v: unknown): Report {
  const bad = (why: string): never => {
    throw new ReportError(`bad report: ${why}`);
  };
  if (typeof v !== 'object' || v === null) bad('not an object');
  const r = v as Record<string, unknown>;
  if (typeof r.agent !== 'string' || !ID_RE.test(r.agent)) bad('agent');
  if (typeof r.url !== 'string') bad('url');
  let u: URL;
  try {
    u = new URL(r.url as string);
  } catch {
    return bad('url');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad('url scheme');
  if (typeof r.host !== 'string' || !ID_RE.test(r.host)) bad('host');
  if (typeof r.epoch !== 'string' || !ID_RE.test(r.epoch)) bad('epoch');
  if (!isCount(r.seq)) bad('seq');
  if (typeof r.full !== 'boolean') bad('full');
  if (!Array.isArray(r.files)) bad('files');
  const files = (r.files as unknown[]).map((f, i) => {
    const o = f as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.name !== 'string' || !NAME_RE.test(o.name)) bad(`files[${i}].name`);
    if (!isCount(o.length)) bad(`files[${i}].length`);
    if (!isCount(o.mtimeMs)) bad(`files[${i}].mtimeMs`);
    return { name: o.name as string, length: o.length as number, mtimeMs: o.mtimeMs as number };
  });
  const removed = r.removed === undefined ? [] : r.removed;
  if (!Array.isArray(removed) || !removed.every((n) => typeof n === 'string' && NAME_RE.test(n))) bad('removed');
  return {
    agent: r.agent as string,
    url: u.origin,
    host: r.host as string,
    epoch: r.epoch as string,
    seq: r.seq as number,
    full: r.full as boolean,
    files,
    removed: removed as string[],
    ...(r.bye === true ? { bye: true } : {}),
  };
}
