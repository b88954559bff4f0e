// The panel's configuration (JSON, strict like the agent's: unknown keys are errors naming their path).
// The panel does not run an agent: it talks to one or several through their API sockets (`agents`).
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../host/index.js';

/** One host agent the panel shows and drives. */
export interface AgentEndpoint {
  /** the agent's API socket (its config's `apiSocket`; a remote host's through `ssh -L`) */
  socket: string;
  /**
   * the WebHDFS endpoint jobs read this agent's files from, host:port (that host's livemr-gateway);
   * absent: the agent is on this host and the panel serves its mount itself (at most one such agent)
   */
  webhdfs?: string;
}

export interface PanelConfig {
  agents: AgentEndpoint[];
  /** host:port of the panel (default 127.0.0.1:8470; port 0 picks one) */
  listen: { host: string; port: number };
  /** fixed token (else a random one per start, written to <stateDir>/panel.token) */
  token?: string;
  /** job history, uploaded jars, outputs, the token (default /var/lib/livemr-panel, the panel user's) */
  stateDir: string;
  /** host:port of the panel's WebHDFS gateway over the local agent's mount (default 127.0.0.1:0) */
  webhdfs: { host: string; port: number };
  /** YARN ResourceManager host:port; absent: the local job runner on this machine */
  yarn?: string;
  /** the YARN cluster's client configuration directory ($HADOOP_CONF_DIR), first on the job's classpath */
  hadoopConf?: string;
  /** where YARN jobs write their outputs, a URI on the cluster's file system (hdfs://nn:8020/user/livemr/jobs) */
  jobOutput?: string;
  /** unprivileged account jobs run as (its uid/gid; also HADOOP_USER_NAME / WebHDFS user.name); never root, never the panel's own */
  jobUser: string;
  /** the panel user's parent (0711) of the jobs' sandboxes, which their user owns */
  jobWorkDir: string;
  /** queued jobs besides the running one */
  maxQueuedJobs: number;
  /** stored uploaded jars */
  maxJars: number;
  /** JSON-lines decisions of `livemr cache run` (its stdout); absent: the cache view is empty */
  cacheDecisions?: string;
  /** largest uploaded jar */
  maxJarBytes: number;
  /** local accounts besides jobUser that may read through the panel's WebHDFS gateway (loopback peer uid) */
  webhdfsUsers: string[];
}

function fail(path: string, msg: string): never {
  throw new ConfigError(`${path}: ${msg}`);
}

export function parseAddress(v: unknown, path: string, dflt: string): { host: string; port: number } {
  const s = v === undefined ? dflt : v;
  const m = typeof s === 'string' ? /^\[?([\w.:-]+?)\]?:(\d{1,5})$/.exec(s) : null;
  if (!m || Number(m[2]) > 65535) fail(path, 'must be "host:port"');
  return { host: m[1]!, port: Number(m[2]) };
}

/** `base` resolves relative socket paths (relative to the panel config's directory). */
export function parsePanelConfig(raw: unknown, base = process.cwd()): PanelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('$', 'must be a JSON object');
  const c = raw as Record<string, unknown>;
  const keys = ['agents', 'listen', 'token', 'stateDir', 'webhdfs', 'yarn', 'hadoopConf', 'jobOutput', 'jobUser', 'jobWorkDir', 'maxQueuedJobs', 'maxJars', 'cacheDecisions', 'maxJarBytes', 'webhdfsUsers'];
  if (c.agent !== undefined) fail('$.agent', 'the panel no longer runs its own agent: run livemr-agent with "apiSocket" and list that socket in "agents": [{"socket": ...}] (docs/panel.md)');
  for (const k of Object.keys(c)) if (!keys.includes(k)) fail(`$.${k}`, `unknown key (allowed: ${keys.join(', ')})`);
  if (!Array.isArray(c.agents) || c.agents.length === 0 || c.agents.length > 64) fail('$.agents', 'must be a list of 1-64 agents: [{"socket": "/run/livemr/agent-api.sock"}]');
  const agents = c.agents.map((a: unknown, i: number): AgentEndpoint => {
    const p = `$.agents[${i}]`;
    if (typeof a !== 'object' || a === null || Array.isArray(a)) fail(p, 'must be {"socket", "webhdfs"?}');
    const o = a as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['socket', 'webhdfs'].includes(k)) fail(`${p}.${k}`, 'unknown key (allowed: socket, webhdfs)');
    if (typeof o.socket !== 'string' || !o.socket) fail(`${p}.socket`, 'must be the path of the agent\'s API socket');
    if (o.webhdfs !== undefined) parseAddress(o.webhdfs, `${p}.webhdfs`, '');
    return { socket: resolve(base, o.socket), ...(o.webhdfs === undefined ? {} : { webhdfs: o.webhdfs as string }) };
  });
  if (agents.filter((a) => a.webhdfs === undefined).length > 1) fail('$.agents', 'at most one agent without "webhdfs" (the one on this host, whose mount the panel serves)');
  if (c.token !== undefined && (typeof c.token !== 'string' || c.token.length < 16 || /\s/.test(c.token))) fail('$.token', 'must be a string of at least 16 non-space characters');
  const abs = (v: unknown, p: string) => {
    if (typeof v !== 'string' || !isAbsolute(v)) fail(p, 'must be an absolute path');
    return v;
  };
  if (c.yarn !== undefined) parseAddress(c.yarn, '$.yarn', '');
  if (c.hadoopConf !== undefined) abs(c.hadoopConf, '$.hadoopConf');
  if (c.jobOutput !== undefined && (typeof c.jobOutput !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(c.jobOutput) || c.jobOutput.startsWith('file:')))
    fail('$.jobOutput', 'must be a URI on the cluster\'s file system (e.g. hdfs://namenode:8020/user/livemr/jobs)');
  const jobUser = c.jobUser ?? 'livemr-job';
  if (typeof jobUser !== 'string' || !/^[A-Za-z_][A-Za-z0-9._-]{0,31}$/.test(jobUser)) fail('$.jobUser', 'must be a user name');
  const maxJarBytes = c.maxJarBytes ?? 64 * 1024 * 1024;
  if (!Number.isSafeInteger(maxJarBytes) || (maxJarBytes as number) <= 0) fail('$.maxJarBytes', 'must be a positive integer');
  const webhdfsUsers = c.webhdfsUsers ?? [];
  if (!Array.isArray(webhdfsUsers) || webhdfsUsers.length > 64 || !webhdfsUsers.every((u) => typeof u === 'string' && /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/.test(u))) {
    fail('$.webhdfsUsers', 'must be a list of at most 64 user names');
  }
  const count = (k: string, dflt: number, max: number): number => {
    const v = c[k] ?? dflt;
    if (!Number.isSafeInteger(v) || (v as number) <= 0 || (v as number) > max) fail(`$.${k}`, `must be an integer from 1 to ${max}`);
    return v as number;
  };
  return {
    agents,
    listen: parseAddress(c.listen, '$.listen', '127.0.0.1:8470'),
    ...(c.token ? { token: c.token as string } : {}),
    stateDir: c.stateDir === undefined ? '/var/lib/livemr-panel' : abs(c.stateDir, '$.stateDir'),
    webhdfs: parseAddress(c.webhdfs, '$.webhdfs', '127.0.0.1:0'),
    ...(c.yarn ? { yarn: c.yarn as string } : {}),
    ...(c.hadoopConf ? { hadoopConf: c.hadoopConf as string } : {}),
    ...(c.jobOutput ? { jobOutput: c.jobOutput as string } : {}),
    jobUser,
    jobWorkDir: c.jobWorkDir === undefined ? '/var/lib/livemr-jobs' : abs(c.jobWorkDir, '$.jobWorkDir'),
    maxQueuedJobs: count('maxQueuedJobs', 16, 1024),
    maxJars: count('maxJars', 32, 4096),
    ...(c.cacheDecisions === undefined ? {} : { cacheDecisions: abs(c.cacheDecisions, '$.cacheDecisions') }),
    maxJarBytes: maxJarBytes as number,
    webhdfsUsers: webhdfsUsers as string[],
  };
}

export function loadPanelConfig(file: string): PanelConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  return parsePanelConfig(raw, dirname(resolve(file)));
}
