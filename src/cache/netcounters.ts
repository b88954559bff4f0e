// Inter-VM network throughput from real host counters: an nftables table in the bridge family with
// one counting rule per ordered pair of guest addresses, hooked on bridge forwarding — the path frames
// take between two guests' taps on one host bridge. Byte counters are read as JSON (`nft -j`); deltas
// over the monitor interval give bytes/s per pair. Optionally run inside a network namespace.
// Why not per-tap counters: they give a VM's total traffic, not who it talked to; AC-SSD's IO dependency
// counts only peers of the same application.

import { execFile } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { ActuatorError, CacheInputError, CapabilityError } from './errors.js';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NETNS_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export interface PairBytes {
  from: string;
  to: string;
  bytes: number;
}

export interface NftOptions {
  /** run nft inside this network namespace (`ip netns exec NS nft ...`) */
  netns?: string;
  /** table name (bridge family), default livemr_cache */
  table?: string;
}

export class NftPairCounters {
  private readonly table: string;

  constructor(
    /** VM name → guest IP address */
    private readonly addresses: Record<string, string>,
    private readonly o: NftOptions = {},
  ) {
    this.table = o.table ?? 'livemr_cache';
    if (!NAME_RE.test(this.table)) throw new CacheInputError(`bad nftables table name '${this.table}'`);
    if (o.netns !== undefined && !NETNS_RE.test(o.netns)) throw new CacheInputError(`bad netns name '${o.netns}'`);
    for (const [vm, ip] of Object.entries(addresses)) {
      if (!NAME_RE.test(vm)) throw new CacheInputError(`VM name '${vm}' is not usable in an nftables comment`);
      if (!isIPv4(ip) && !isIPv6(ip)) throw new CacheInputError(`VM ${vm}: '${ip}' is not an IP address`);
    }
  }

  /** The ruleset (replaces a previous table of the same name). */
  ruleset(): string {
    const vms = Object.keys(this.addresses);
    const rules: string[] = [];
    for (const a of vms) {
      for (const b of vms) {
        if (a === b) continue;
        const ipA = this.addresses[a]!;
        const ipB = this.addresses[b]!;
        if (isIPv4(ipA) !== isIPv4(ipB)) continue;
        const fam = isIPv4(ipA) ? 'ip' : 'ip6';
        rules.push(`    ${fam} saddr ${ipA} ${fam} daddr ${ipB} counter comment "${a}>${b}"`);
      }
    }
    return [
      `table bridge ${this.table}`,
      `delete table bridge ${this.table}`,
      `table bridge ${this.table} {`,
      '  chain pairs {',
      '    type filter hook forward priority 0; policy accept;',
      ...rules,
      '  }',
      '}',
      '',
    ].join('\n');
  }

  async install(): Promise<void> {
    await this.nft(['-f', '-'], this.ruleset());
  }

  async remove(): Promise<void> {
    await this.nft(['delete', 'table', 'bridge', this.table]).catch(() => {});
  }

  /** Cumulative bytes per ordered pair since install. */
  async read(): Promise<PairBytes[]> {
    const out = await this.nft(['-j', 'list', 'table', 'bridge', this.table]);
    return parseNftCounters(out);
  }

  private async nft(args: string[], stdin?: string): Promise<string> {
    const [cmd, argv] = this.o.netns ? ['ip', ['netns', 'exec', this.o.netns, 'nft', ...args]] : ['nft', args];
    return new Promise((resolve, reject) => {
      const child = execFile(cmd, argv, { maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') reject(new CapabilityError('nft is not installed (apt-get install nftables)'));
        else reject(new ActuatorError(`nft ${args.join(' ')}: ${stderr.trim() || e.message}`, { cause: err }));
      });
      if (stdin !== undefined) child.stdin!.end(stdin);
    });
  }
}

/** Counters of rules commented "a>b" in `nft -j list table` output. */
export function parseNftCounters(json: string): PairBytes[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new ActuatorError('nft printed something that is not JSON');
  }
  const items = (doc as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new ActuatorError('nft JSON without an nftables array');
  const out: PairBytes[] = [];
  for (const item of items) {
    const rule = (item as { rule?: { comment?: unknown; expr?: unknown } }).rule;
    if (!rule || typeof rule.comment !== 'string' || !Array.isArray(rule.expr)) continue;
    const m = /^([^>]+)>([^>]+)$/.exec(rule.comment);
    const counter = rule.expr.find((e: { counter?: unknown }) => e && typeof e === 'object' && 'counter' in e) as
      | { counter: { bytes?: unknown } }
      | undefined;
    if (!m || !counter || typeof counter.counter.bytes !== 'number') continue;
    out.push({ from: m[1]!, to: m[2]!, bytes: counter.counter.bytes });
  }
  return out;
}

