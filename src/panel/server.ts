// The control panel: an unprivileged process that drives one or several host agents through their
// API sockets (agents.ts), serves the local agent's mount over WebHDFS to the jobs it runs, and
// offers a versioned REST API (/api/v1, JSON errors) plus a web UI built on it. Everything but the
// login page needs the token. Live updates: server-sent events.
import { createHash } from 'node:crypto';
import { mkdirSync, unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LiveMrError } from '../errors/index.js';
import { admitLocalUids, type Gateway } from '../hdfs/index.js';
import { createLogger, type BigLogSource, type Logger } from '../host/index.js';
import { badRequest, conflict, EventStreams, HttpError, notFound, onlyKeys, readBody, readJson, Router, sendError, sendJson, type Route } from '../http/index.js';
import { loginCookie, logoutCookie, newToken, requestToken, tokenMatches, writeTokenFile } from './auth.js';
import { readCacheView } from './cache-view.js';
import type { PanelConfig } from './config.js';
import { AgentLink } from './agents.js';
import { buildInventory, consentState, RateTracker, type Inventory } from './inventory.js';
import { EXAMPLE_PROGRAMS, JarStore, JobRunner, lookupAccount, type JobSpec } from './jobs.js';
import { uiAsset, loginPage } from './ui.js';

export const API = '/api/v1';
/** event streams open at once, and what may wait for one client before it is dropped (docs/security.md) */
export const EVENT_STREAM_LIMITS = { max: 64, maxQueuedBytes: 8 << 20 };
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const JAR_RE = /^[0-9a-f]{16}$/;

/** A guest path the panel may ask for: absolute, normalized, no '.'/'..' components, bounded. */
export function checkGuestPath(p: unknown): string {
  if (typeof p !== 'string' || !p) throw badRequest('path must be a non-empty string');
  if (!p.startsWith('/')) throw badRequest(`path '${p}' must be absolute`);
  if (Buffer.byteLength(p) > 4096 || p.includes('\0') || /[\n\r]/.test(p)) throw badRequest('path is too long or contains NUL / newlines');
  const parts = p.split('/').slice(1);
  if (parts.some((s) => s === '..' || s === '.')) throw badRequest(`path '${p}' contains '.' or '..' (path traversal is refused)`);
  if (parts.some((s) => s === '') ) throw badRequest(`path '${p}' is not normalized (empty component or trailing '/')`);
  return p;
}

/**
 * Who may read the local agent's files through the panel's gateway (issue 14 #8): it reads the
 * mount through the panel user's group, so it must not serve a local user the mount's 0440 refused.
 * Peer credentials on loopback decide: root, the panel's own account, the job user, and the accounts
 * of `webhdfsUsers` (e.g. a local YARN NodeManager's).
 */
function gatewayUids(cfg: PanelConfig, log: Logger): Set<number> {
  const uids = new Set<number>([0]);
  const self = process.getuid?.();
  if (self !== undefined) uids.add(self);
  for (const name of [cfg.jobUser, ...cfg.webhdfsUsers]) {
    const a = lookupAccount(name);
    if (a) uids.add(a.uid);
    else log.warn('no such account: it cannot read through the panel\'s WebHDFS gateway', { user: name });
  }
  return uids;
}

export class Panel {
  private sse = new EventStreams(EVENT_STREAM_LIMITS);
  private rates = new RateTracker();
  private inventoryTimer?: NodeJS.Timeout;
  private jobsTimer?: NodeJS.Timeout;
  private offs: (() => void)[] = [];
  private stopping?: Promise<void>;

  private constructor(
    readonly cfg: PanelConfig,
    readonly agents: AgentLink[],
    readonly jobs: JobRunner,
    readonly jars: JarStore,
    readonly token: string,
    private readonly server: Server,
    private readonly log: Logger,
  ) {}

  static async start(cfg: PanelConfig, log: Logger = createLogger({ component: 'panel' })): Promise<Panel> {
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    const token = cfg.token ?? newToken();
    if (!cfg.token) writeTokenFile(join(cfg.stateDir, 'panel.token'), token);
    const admit = admitLocalUids(gatewayUids(cfg, log));
    const agents = cfg.agents.map((e) => new AgentLink(e, { webhdfsListen: cfg.webhdfs, admit, log: log.child('agent') }));
    try {
      await Promise.all(agents.map((a) => a.start()));
      const jars = new JarStore(join(cfg.stateDir, 'jars'), cfg.maxJars);
      const jobs = new JobRunner({
        dir: join(cfg.stateDir, 'jobs'), jarsDir: join(cfg.stateDir, 'jars'), user: cfg.jobUser, workDir: cfg.jobWorkDir,
        maxQueued: cfg.maxQueuedJobs, ...(cfg.yarn ? { yarn: cfg.yarn } : {}),
        ...(cfg.hadoopConf ? { hadoopConf: cfg.hadoopConf } : {}), ...(cfg.jobOutput ? { outputBase: cfg.jobOutput } : {}),
      });
      if (jobs.unavailable) log.warn('jobs cannot run', { reason: jobs.unavailable });
      const server = createServer();
      const panel = new Panel(cfg, agents, jobs, jars, token, server, log);
      server.on('request', (req, res) => panel.handle(req, res));
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(cfg.listen.port, cfg.listen.host, () => resolve()));
      panel.wire();
      log.info('panel started', { url: panel.url, agents: cfg.agents.map((a) => a.socket), webhdfs: agents.map((a) => a.webhdfsBase) });
      return panel;
    } catch (e) {
      await Promise.all(agents.map((a) => a.stop()));
      throw e;
    }
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** The panel's own WebHDFS gateway (over the local agent's mount). */
  get gateway(): Gateway {
    const g = this.agents.find((a) => a.gateway)?.gateway;
    if (!g) throw new HttpError('agent-unreachable', 'no local agent\'s mount is served yet');
    return g;
  }

  /** webhdfs://host:port of the first agent's files. */
  get webhdfsBase(): string {
    return this.agents[0]?.webhdfsBase ?? '';
  }

  /** Every agent's VMs and files in one view; the top-level host fields are the first agent's. */
  inventory(): Inventory {
    const parts = this.agents.flatMap((a) => (a.status ? [{ a, inv: buildInventory(a.status, a.compositions, a.bigLogs, a.webhdfsBase, this.rates) }] : []));
    const first = parts[0]?.inv;
    return {
      host: first?.host ?? '', mountpoint: first?.mountpoint ?? '', webhdfs: first?.webhdfs ?? this.webhdfsBase, uptimeMs: first?.uptimeMs ?? 0,
      vms: parts.flatMap((p) => p.inv.vms), composed: parts.flatMap((p) => p.inv.composed),
      hosts: this.agents.map((a) => ({
        socket: a.endpoint.socket, host: a.status?.host ?? null, connected: a.connected, webhdfs: a.webhdfsBase, ...(a.error ? { error: a.error } : {}),
      })),
    };
  }

  /** The agent that serves VM `vm` (VM names are unique across a panel's agents). */
  private agentOf(vm: string): AgentLink | undefined {
    return this.agents.find((a) => a.status?.vms.some((v) => v.name === vm));
  }

  private wire(): void {
    const inv = () => {
      this.inventoryTimer ??= setTimeout(() => { this.inventoryTimer = undefined; this.broadcast('inventory', this.inventory()); }, 200);
    };
    for (const a of this.agents) {
      a.on('change', inv);
      this.offs.push(() => a.off('change', inv));
    }
    const jobs = () => {
      this.jobsTimer ??= setTimeout(() => { this.jobsTimer = undefined; this.broadcast('jobs', this.jobs.list()); }, 200);
    };
    this.jobs.on('change', jobs);
    // growth rates and lag age even without events; keeps proxies from closing idle streams
    const tick = setInterval(() => { if (this.sse.size) this.broadcast('inventory', this.inventory()); }, 2000);
    this.offs.push(() => clearInterval(tick));
    const file = this.cfg.cacheDecisions;
    if (file) {
      const onCache = () => this.broadcast('cache', readCacheView(file));
      watchFile(file, { interval: 1000 }, onCache);
      this.offs.push(() => unwatchFile(file, onCache));
    }
  }

  private broadcast(event: string, data: unknown): void {
    this.sse.broadcast(event, data);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    const url = new URL(req.url ?? '/', 'http://panel');
    this.route(req, res, url).catch((e: unknown) => {
      if (!(e instanceof LiveMrError)) this.log.error('request failed', { url: url.pathname, error: e as Error });
      sendError(res, e);
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const p = url.pathname;
    const m = req.method ?? 'GET';
    if (p === '/style.css' && m === 'GET') return uiAsset(res, 'style.css');
    if (p === '/login' && m === 'POST') return this.login(req, res);
    let authed = false;
    let badCookie: HttpError | undefined; // 401, never a 500 (issue 14, Low)
    try {
      authed = tokenMatches(requestToken(req), this.token);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      badCookie = e;
    }
    if (!p.startsWith(API)) {
      if (m !== 'GET') throw new HttpError('method-not-allowed', `${m} ${p} is not allowed`);
      if (p === '/logout') return void res.writeHead(303, { location: '/', 'set-cookie': logoutCookie }).end();
      if (badCookie) res.setHeader('set-cookie', logoutCookie);
      if (!authed) return badCookie ? loginPage(res, 401, 'Your login cookie was malformed; log in again.') : loginPage(res, 200);
      if (p === '/' || p === '/index.html') return uiAsset(res, 'index.html');
      if (p === '/app.js') return uiAsset(res, 'app.js');
      throw notFound(`no page ${p}`);
    }
    if (badCookie) throw badCookie;
    if (!authed) throw new HttpError('unauthorized', 'send Authorization: Bearer TOKEN (printed at start, in <stateDir>/panel.token)');
    return this.api.dispatch(req, res, url);
  }

  /** The REST API (docs/panel.md); a path with another method is 405, no path 404. */
  private readonly api = new Router(API)
    .on('GET', '/', ({ res }) => sendJson(res, 200, { version: 1, docs: 'docs/panel.md' }))
    .on('GET', '/inventory', ({ res }) => sendJson(res, 200, this.inventory()))
    .on('GET', '/vms/:name', ({ res, params }) => {
      const vm = this.inventory().vms.find((v) => v.name === params.name);
      if (!vm) throw notFound(`unknown VM '${params.name}'`);
      sendJson(res, 200, vm);
    })
    .on('GET', '/shares', ({ res }) => sendJson(res, 200, this.inventory().vms.flatMap((v) => v.shares)))
    .on('POST', '/shares', (r) => this.requestShare(r))
    .on('GET', '/composed', ({ res }) => sendJson(res, 200, this.inventory().composed))
    .on('GET', '/composed/:name', ({ res, params }) => this.composedDetail(res, params.name!))
    .on('POST', '/composed', (r) => this.compose(r))
    .on('GET', '/programs', ({ res }) => sendJson(res, 200, {
      examples: EXAMPLE_PROGRAMS, runner: this.cfg.yarn ? `yarn ${this.cfg.yarn}` : 'local', maxJarBytes: this.cfg.maxJarBytes,
      maxJars: this.cfg.maxJars, jobUser: this.cfg.jobUser, ...(this.jobs.unavailable ? { unavailable: this.jobs.unavailable } : {}),
    }))
    .on('POST', '/jars', (r) => this.uploadJar(r))
    .on('GET', '/jars', ({ res }) => sendJson(res, 200, this.jars.list()))
    .on('DELETE', '/jars/:id', ({ res, params }) => {
      const id = params.id!;
      if (this.jobs.jarInUse(id)) throw new HttpError('jar-in-use', `jar '${id}' is used by a queued or running job`);
      if (!this.jars.remove(id)) throw notFound(`no uploaded jar '${id}'`);
      sendJson(res, 200, { id, deleted: true });
    })
    .on('GET', '/jobs', ({ res }) => sendJson(res, 200, this.jobs.list()))
    .on('POST', '/jobs', (r) => this.submitJob(r))
    .on('GET', '/jobs/:id', ({ res, params }) => {
      const j = this.jobs.get(params.id!);
      if (!j) throw notFound(`no job '${params.id}'`);
      sendJson(res, 200, { ...j, log: this.jobs.logTail(j.id) });
    })
    .on('GET', '/jobs/:id/output', ({ res, params }) => {
      const o = this.jobs.output(params.id!);
      if (!o) throw notFound(`no job '${params.id}'`);
      sendJson(res, 200, o);
    })
    .on('POST', '/jobs/:id/cancel', ({ res, params }) => {
      const j = this.jobs.cancel(params.id!);
      if (!j) throw notFound(`no job '${params.id}'`);
      sendJson(res, 200, j);
    })
    .on('GET', '/cache', ({ res }) => sendJson(res, 200, readCacheView(this.cfg.cacheDecisions)))
    .on('GET', '/events', ({ req, res }) => this.events(req, res));

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, 4096);
    const token = new URLSearchParams(body.toString('utf8')).get('token') ?? '';
    if (!tokenMatches(token, this.token)) return loginPage(res, 401, 'That token is not valid.');
    res.writeHead(303, { location: '/', 'set-cookie': loginCookie(this.token) }).end();
  }

  private vmOrThrow(vm: unknown): { vm: string; agent: AgentLink } {
    if (typeof vm !== 'string' || !vm) throw badRequest('vm must be a VM name');
    const agent = this.agentOf(vm);
    if (!agent) throw notFound(`unknown VM '${vm}'`);
    return { vm, agent };
  }

  private async requestShare({ req, res }: Route): Promise<void> {
    const b = await readJson(req, 16 * 1024);
    onlyKeys(b, ['vm', 'path']);
    const { vm, agent } = this.vmOrThrow(b.vm);
    const path = checkGuestPath(b.path);
    const rec = await agent.client.requestShare(vm, path);
    this.log.info('share requested', { vm, path });
    sendJson(res, 202, { vm, path, state: consentState(rec.status), status: rec.status, message: rec.message, updatedMs: rec.updatedMs });
  }

  private async composedDetail(res: ServerResponse, name: string): Promise<void> {
    const c = this.inventory().composed.find((x) => x.name === name || x.fileName === name);
    const agent = c && this.agents.find((a) => a.compositions.some((x) => x.name === c.name));
    if (!c || !agent) throw notFound(`no composed file '${name}'`);
    const d = await agent.client.composition(c.name);
    sendJson(res, 200, { ...c, segmentList: d.segmentList, segmentListTruncated: d.segmentListTruncated });
  }

  private async compose({ req, res }: Route): Promise<void> {
    const b = await readJson(req, 64 * 1024);
    onlyKeys(b, ['name', 'sources']);
    if (typeof b.name !== 'string' || !NAME_RE.test(b.name)) throw badRequest('name must be 1-100 of [A-Za-z0-9._-], starting with a letter or digit');
    if (!Array.isArray(b.sources) || b.sources.length === 0 || b.sources.length > 64) throw badRequest('sources must be a list of 1-64 {vm, path}');
    await Promise.all(this.agents.map((a) => a.refresh().catch(() => {}))); // decide on the agents' state now
    const inv = this.inventory();
    const agents = new Set<AgentLink>();
    const sources = b.sources.map((s: unknown, i: number): BigLogSource => {
      if (typeof s !== 'object' || s === null || Array.isArray(s)) throw badRequest(`sources[${i}] must be {vm, path}`);
      const o = s as Record<string, unknown>;
      onlyKeys(o, ['vm', 'path'], `sources[${i}]`);
      const { vm, agent } = this.vmOrThrow(o.vm);
      agents.add(agent);
      const path = checkGuestPath(o.path);
      const share = inv.vms.find((v) => v.name === vm)!.shares.find((x) => x.path === path);
      const file = inv.vms.find((v) => v.name === vm)!.files.find((x) => x.path === path);
      if (!file && share?.state !== 'granted') throw conflict(`${vm}:${path} is not granted by its owner (${share ? share.state : 'never requested'})`);
      return { vm, path };
    });
    const existing = inv.composed.find((c) => c.name === b.name);
    if (existing && existing.kind !== 'composed') throw conflict(`'${b.name}' is a shared file's name`);
    if (existing && existing.sources.length === 0) throw conflict(`'${b.name}' exists and was not composed from guest files`);
    if (agents.size > 1) throw badRequest('a composed file is made on one host: its sources must be VMs of the same agent');
    const agent = [...agents][0]!;
    await agent.client.joinBigLog(b.name, sources); // a refusal keeps the agent's code (BIGLOG_NAME_TAKEN: 409)
    await agent.refresh();
    this.log.info('composed', { name: b.name, sources });
    sendJson(res, existing ? 200 : 201, this.inventory().composed.find((c) => c.name === b.name));
  }

  private async uploadJar({ req, res }: Route): Promise<void> {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (type !== 'application/java-archive') throw new HttpError('unsupported-media-type', 'upload the jar as application/java-archive');
    const body = await readBody(req, this.cfg.maxJarBytes);
    if (body.length < 22 || body.readUInt32LE(0) !== 0x04034b50) throw badRequest('not a jar (zip) file');
    const sha = createHash('sha256').update(body).digest('hex');
    const id = sha.slice(0, 16);
    this.jars.add(id, body);
    sendJson(res, 201, { id, size: body.length, sha256: sha });
  }

  private async submitJob({ req, res }: Route): Promise<void> {
    const b = await readJson(req, 64 * 1024);
    onlyKeys(b, ['program', 'inputs', 'args', 'jar']);
    const program = b.program;
    if (typeof program !== 'string' || !(program === 'jar' || Object.hasOwn(EXAMPLE_PROGRAMS, program))) {
      throw badRequest(`program must be one of ${[...Object.keys(EXAMPLE_PROGRAMS), 'jar'].join(', ')}`);
    }
    const args = b.args ?? [];
    if (!Array.isArray(args) || args.length > 16 || !args.every((a) => typeof a === 'string' && a.length <= 1024 && !a.includes('\0'))) {
      throw badRequest('args must be at most 16 strings of at most 1024 characters');
    }
    if (program === 'grep' && args.length !== 1) throw badRequest('grep takes exactly one argument: the regex');
    if (program !== 'grep' && program !== 'jar' && args.length) throw badRequest(`${program} takes no arguments`);
    let jar: string | undefined;
    if (program === 'jar') {
      if (typeof b.jar !== 'string' || !JAR_RE.test(b.jar)) throw badRequest('jar must be the id of an uploaded jar (POST /api/v1/jars)');
      if (!this.jars.has(b.jar)) throw notFound(`no uploaded jar '${b.jar}'`);
      jar = b.jar;
    } else if (b.jar !== undefined) throw badRequest('jar is only for program "jar"');
    if (!Array.isArray(b.inputs) || b.inputs.length === 0 || b.inputs.length > 32) throw badRequest('inputs must be a list of 1-32 composed file names');
    const comps = this.inventory().composed;
    const inputs = b.inputs.map((n: unknown) => {
      const c = typeof n === 'string' ? comps.find((x) => x.name === n || x.fileName === n) : undefined;
      if (!c) throw notFound(`no composed file '${String(n)}'`);
      return { name: c.name, uri: c.webhdfs };
    });
    const spec: JobSpec = { program, args: args as string[], inputs, ...(jar ? { jar } : {}) };
    const job = this.jobs.submit(spec);
    this.log.info('job submitted', { id: job.id, program, inputs: inputs.map((i) => i.name) });
    sendJson(res, 202, job);
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    const send = this.sse.open(req, res);
    send('inventory', this.inventory());
    send('jobs', this.jobs.list());
    send('cache', readCacheView(this.cfg.cacheDecisions));
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const off of this.offs) off();
      clearTimeout(this.inventoryTimer);
      clearTimeout(this.jobsTimer);
      this.sse.endAll();
      await new Promise<void>((resolve) => { this.server.close(() => resolve()); this.server.closeAllConnections(); });
      await this.jobs.stop();
      await Promise.all(this.agents.map((a) => a.stop()));
      this.log.info('panel stopped');
    })();
    return this.stopping;
  }
}
