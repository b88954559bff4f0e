// The NameNode-like aggregator: serves the union of its host agents' namespaces, built from their
// reports (report.ts), and answers OPEN with a redirect to the agent that holds the file.

import { EventEmitter } from 'node:events';
import type * as http from 'node:http';
import { badRequest, forbidden, HttpError, readBody, sendError, sendJson } from '../http/index.js';
import { byName, type DataLocation, type FileEntry, type Namespace } from './namespace.js';
import { MAX_REPORT_BYTES, parseReport, REPORT_PATH, TOKEN_HEADER, type Report, type ReportedFile } from './report.js';

interface AgentState {
  location: DataLocation;
  epoch: string;
  seq: number;
  files: Map<string, ReportedFile>;
}

export interface AggregatorEvents {
  /** a report was applied */
  report: [report: Report];
}

export class Aggregator extends EventEmitter<AggregatorEvents> implements Namespace {
  private readonly agents = new Map<string, AgentState>();
  /** file name → agent id that serves it (the first agent to report a name keeps it) */
  private readonly owners = new Map<string, string>();

  constructor(
    private readonly opts: { token?: string; log?: (line: string) => void } = {},
  ) {
    super();
  }

  get(name: string): FileEntry | undefined {
    const id = this.owners.get(name);
    const a = id === undefined ? undefined : this.agents.get(id);
    const f = a?.files.get(name);
    return f && { name, length: f.length, mtimeMs: f.mtimeMs, location: a!.location };
  }

  list(): FileEntry[] {
    const out: FileEntry[] = [];
    for (const name of this.owners.keys()) out.push(this.get(name)!);
    return out.sort(byName);
  }

  agentIds(): string[] {
    return [...this.agents.keys()];
  }

  /** Applies one report; false when the agent must resend a full one. */
  apply(r: Report): boolean {
    const cur = this.agents.get(r.agent);
    if (r.bye) {
      if (cur) this.drop(r.agent, cur);
      this.emit('report', r);
      return true;
    }
    if (!r.full && (!cur || cur.epoch !== r.epoch || r.seq !== cur.seq + 1)) return false;
    const u = new URL(r.url);
    const location: DataLocation = { host: r.host, addr: u.host, url: r.url };
    let a = cur;
    if (!a || r.full) {
      if (a) this.drop(r.agent, a);
      a = { location, epoch: r.epoch, seq: r.seq, files: new Map() };
      this.agents.set(r.agent, a);
    }
    a.location = location;
    a.seq = r.seq;
    for (const name of r.removed) {
      a.files.delete(name);
      if (this.owners.get(name) === r.agent) this.owners.delete(name);
    }
    for (const f of r.files) {
      const owner = this.owners.get(f.name);
      if (owner !== undefined && owner !== r.agent) {
        this.opts.log?.(`agent ${r.agent} reports ${f.name}, already served by agent ${owner}: ignored`);
        continue;
      }
      a.files.set(f.name, f);
      this.owners.set(f.name, r.agent);
    }
    this.emit('report', r);
    return true;
  }

  /** The report endpoint, as an extra route of the gateway's HTTP server. */
  route = (req: http.IncomingMessage, res: http.ServerResponse, url: URL): boolean => {
    if (url.pathname !== REPORT_PATH) return false;
    this.receive(req, res).catch((e: unknown) => sendError(res, e));
    return true;
  };

  private async receive(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST') throw new HttpError('method-not-allowed', 'POST a report');
    if (this.opts.token !== undefined && req.headers[TOKEN_HEADER] !== this.opts.token) {
      req.resume();
      throw forbidden('bad or missing agent token');
    }
    const body = await readBody(req, MAX_REPORT_BYTES);
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw badRequest(`report is not JSON: ${(e as Error).message}`);
    }
    const ok = this.apply(parseReport(v)); // ReportError: 400 (HDFS_BAD_REPORT)
    sendJson(res, ok ? 200 : 409, ok ? { ok: true } : { resync: true });
  }

  private drop(id: string, a: AgentState): void {
    for (const name of a.files.keys()) if (this.owners.get(name) === id) this.owners.delete(name);
    this.agents.delete(id);
  }
}
