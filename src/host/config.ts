// The host agent's configuration file (JSON; documented in docs/host.md). Validated strictly: unknown
// keys are errors (a typo must not silently disable something), every error names its JSON path.
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { LiveMrError } from '../errors/index.js';
import { DEFAULT_GUEST_LIMITS, parseLimits, type GuestLimits } from './limits.js';
import { VM_NAME } from './naming.js';

export interface VmConfig {
  /** short name used in file names (livemr_<name>_...) and metrics */
  name: string;
  /** QMP unix socket of the running QEMU (a monitor the agent may use exclusively); or `domain` */
  qmp?: string;
  /** libvirt domain name (needs the top-level `libvirt`); the agent never touches its monitor */
  domain?: string;
  /** host unix socket of an existing org.livemr.0 port; absent: the agent hot-plugs one */
  channel?: string;
  /** guest paths the agent asks to share on connect (the owner's consent still decides) */
  share: string[];
  /** this VM's bounds, when they differ from the agent's `limits` (each key optional) */
  limits?: GuestLimits;
}

export interface AgentConfig {
  mountpoint: string;
  stateDir: string;
  /** group allowed to read the mount (allow_other restricted to it); absent: root only */
  group?: string;
  /** host:port for the Prometheus /metrics and /status endpoint; null disables it */
  metrics: string | null;
  /** name of this KVM host as Hadoop should see it (block locations) */
  hostname?: string;
  /** where hot-plugged channel sockets go */
  runDir: string;
  /**
   * the agent's API socket for the panel and other members of `group` (mode 0660, group `group`;
   * 0600 without one): what root can do over <stateDir>/agent.sock, without being root
   */
  apiSocket?: string;
  /** libvirt connection for VMs given by `domain` and for discovery (docs/libvirt.md) */
  libvirt?: { uri: string };
  /** "*": also serve every running libvirt domain not named in `vms` (shares come from run-time requests) */
  domains?: '*';
  /** what each VM's guest may make the agent hold or do (docs/security.md); every key optional */
  limits: GuestLimits;
  vms: VmConfig[];
}

/** A libvirt domain name as a legal VM name: other characters become '-', at most 63 characters. */
export function vmNameForDomain(domain: string): string {
  const n = domain.replace(/[^A-Za-z0-9.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return n || 'domain';
}

export class ConfigError extends LiveMrError {
  override name = 'ConfigError';
  readonly code = 'HOST_CONFIG';
}

type Json = Record<string, unknown>;

function fail(path: string, msg: string): never {
  throw new ConfigError(`${path}: ${msg}`);
}

function only(obj: Json, path: string, keys: string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown key (allowed: ${keys.join(', ')})`);
}

function absPath(v: unknown, path: string): string {
  if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0')) fail(path, 'must be an absolute path');
  return v;
}

function optString(v: unknown, path: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !v) fail(path, 'must be a non-empty string');
  return v;
}

export function parseConfig(raw: unknown): AgentConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('$', 'must be a JSON object');
  const c = raw as Json;
  only(c, '$', ['mountpoint', 'stateDir', 'group', 'metrics', 'hostname', 'runDir', 'apiSocket', 'libvirt', 'domains', 'limits', 'vms']);
  const limits = parseLimits(c.limits, '$.limits', DEFAULT_GUEST_LIMITS, fail);
  let libvirt: { uri: string } | undefined;
  if (c.libvirt !== undefined) {
    if (typeof c.libvirt !== 'object' || c.libvirt === null || Array.isArray(c.libvirt)) fail('$.libvirt', 'must be an object');
    const l = c.libvirt as Json;
    only(l, '$.libvirt', ['uri']);
    const uri = l.uri === undefined ? 'qemu:///system' : l.uri;
    if (typeof uri !== 'string' || !/^[a-z][a-z0-9+]*:\/\//.test(uri)) fail('$.libvirt.uri', 'must be a libvirt URI such as qemu:///system');
    libvirt = { uri };
  }
  if (c.domains !== undefined && c.domains !== '*') fail('$.domains', 'must be "*" (every running libvirt domain)');
  if (c.domains === '*' && !libvirt) fail('$.domains', 'needs "libvirt": {"uri": ...}');
  const metrics = c.metrics === undefined ? '127.0.0.1:9477' : c.metrics;
  if (metrics !== null && (typeof metrics !== 'string' || !/^[\w.:[\]-]+:\d{1,5}$/.test(metrics))) {
    fail('$.metrics', 'must be "host:port" or null');
  }
  if (!Array.isArray(c.vms)) fail('$.vms', 'must be an array');
  const names = new Set<string>();
  const vms = c.vms.map((v: unknown, i: number): VmConfig => {
    const p = `$.vms[${i}]`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(p, 'must be an object');
    const vm = v as Json;
    only(vm, p, ['name', 'qmp', 'domain', 'channel', 'share', 'limits']);
    if (typeof vm.name !== 'string' || !VM_NAME.test(vm.name)) fail(`${p}.name`, 'must match [A-Za-z0-9][A-Za-z0-9.-]{0,62}');
    if (names.has(vm.name)) fail(`${p}.name`, `duplicate VM name '${vm.name}'`);
    names.add(vm.name);
    const share = vm.share ?? [];
    if (!Array.isArray(share)) fail(`${p}.share`, 'must be an array of absolute guest paths');
    if ((vm.qmp === undefined) === (vm.domain === undefined)) fail(p, 'give exactly one of "qmp" (a QMP socket) or "domain" (a libvirt domain)');
    if (vm.domain !== undefined) {
      if (typeof vm.domain !== 'string' || !vm.domain || vm.domain.length > 1024) fail(`${p}.domain`, 'must be a libvirt domain name');
      if (!libvirt) fail(`${p}.domain`, 'needs "libvirt": {"uri": ...} at the top level');
      if (vm.channel !== undefined) fail(`${p}.channel`, 'libvirt domains get their channel hot-plugged through libvirt');
    }
    return {
      name: vm.name,
      ...(vm.qmp === undefined ? { domain: vm.domain as string } : { qmp: absPath(vm.qmp, `${p}.qmp`) }),
      ...(vm.channel === undefined ? {} : { channel: absPath(vm.channel, `${p}.channel`) }),
      share: share.map((s: unknown, j: number) => absPath(s, `${p}.share[${j}]`)),
      ...(vm.limits === undefined ? {} : { limits: parseLimits(vm.limits, `${p}.limits`, limits, fail) }),
    };
  });
  const group = optString(c.group, '$.group');
  const hostname = optString(c.hostname, '$.hostname');
  return {
    mountpoint: absPath(c.mountpoint, '$.mountpoint'),
    stateDir: absPath(c.stateDir, '$.stateDir'),
    ...(group ? { group } : {}),
    ...(hostname ? { hostname } : {}),
    metrics: metrics as string | null,
    runDir: c.runDir === undefined ? '/run/livemr' : absPath(c.runDir, '$.runDir'),
    ...(c.apiSocket === undefined ? {} : { apiSocket: absPath(c.apiSocket, '$.apiSocket') }),
    ...(libvirt ? { libvirt } : {}),
    ...(c.domains === '*' ? { domains: '*' as const } : {}),
    limits,
    vms,
  };
}

export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(raw);
}
