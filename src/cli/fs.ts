// `livemr mount | umount | compose | decompose | ls`: the composed-files commands (docs/fs.md).
// compose / decompose / ls talk to the running `livemr mount` daemon over its control socket, or,
// when none runs, open the state directory themselves (the daemon replays it when it starts).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ControlClient } from '../fs/control.js';
import { runDaemon } from '../fs/daemon.js';
import { CompositionStore, type CompositionInfo, type SegmentSpec } from '../fs/store.js';
import { UsageError } from './main.js';

const USAGE = `usage:
  livemr mount MOUNTPOINT --state DIR [--group GROUP] [--splice] [--debug]
  livemr umount [MOUNTPOINT] [--state DIR]
  livemr compose NAME (--segment FILE:OFFSET:LENGTH | --zero LENGTH)... [--direct-io] [--state DIR]
  livemr decompose NAME [--state DIR]
  livemr ls [--json] [--state DIR]
DIR defaults to $LIVEMR_STATE or /var/lib/livemr.`;

function defaultState(): string {
  return process.env.LIVEMR_STATE ?? '/var/lib/livemr';
}

export function parseSize(s: string, what: string): number {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw new UsageError(`${what} '${s}' is not a non-negative integer`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} '${s}' is beyond 2^53`);
  return n;
}

/** FILE:OFFSET:LENGTH; FILE may itself contain ':' (the last two fields are the numbers). */
export function parseSegment(spec: string): SegmentSpec {
  const m = /^(.+):([^:]+):([^:]+)$/.exec(spec);
  if (!m) throw new UsageError(`--segment '${spec}' is not FILE:OFFSET:LENGTH`);
  const length = parseSize(m[3]!, 'LENGTH');
  if (length === 0) throw new UsageError(`--segment '${spec}' has length 0`);
  return { file: path.resolve(m[1]!), offset: parseSize(m[2]!, 'OFFSET'), length };
}

interface Parsed {
  positional: string[];
  state: string;
  flags: Set<string>;
  values: Map<string, string>;
  segments: SegmentSpec[];
}

function parse(argv: string[], flags: string[], valued: string[]): Parsed {
  const p: Parsed = { positional: [], state: defaultState(), flags: new Set(), values: new Map(), segments: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--state') p.state = value();
    else if (a === '--segment' && valued.includes(a)) p.segments.push(parseSegment(value()));
    else if (a === '--zero' && valued.includes(a)) {
      const length = parseSize(value(), '--zero LENGTH');
      if (length === 0) throw new UsageError('--zero needs a positive length');
      p.segments.push({ zero: true, length });
    } else if (valued.includes(a)) p.values.set(a, value());
    else if (flags.includes(a)) p.flags.add(a);
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}\n${USAGE}`);
    else p.positional.push(a);
  }
  return p;
}

/** Runs `fn` against the daemon when one listens, else against the state directory directly. */
async function withStore<T>(
  state: string,
  viaDaemon: (c: ControlClient) => Promise<T>,
  direct: (s: CompositionStore) => T,
): Promise<T> {
  const client = await ControlClient.connect(state);
  if (client) {
    try {
      return await viaDaemon(client);
    } finally {
      client.close();
    }
  }
  const store = CompositionStore.open(state);
  try {
    return direct(store);
  } finally {
    store.close();
  }
}

function formatList(list: CompositionInfo[]): string {
  const rows = list.map((f) => [f.fileName, String(f.size), String(f.segments), String(f.sources.length), new Date(f.mtimeMs).toISOString()]);
  const head = ['FILE', 'SIZE', 'SEGMENTS', 'SOURCES', 'MTIME'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'mount': {
      const p = parse(rest, ['--splice', '--debug'], ['--group']);
      if (p.positional.length !== 1) throw new UsageError(`mount needs exactly one MOUNTPOINT\n${USAGE}`);
      const group = p.values.get('--group');
      return runDaemon({
        mountpoint: p.positional[0]!,
        stateDir: path.resolve(p.state),
        ...(group === undefined ? {} : { group }),
        splice: p.flags.has('--splice'),
        debug: p.flags.has('--debug'),
      });
    }
    case 'umount': {
      const p = parse(rest, [], []);
      if (p.positional.length > 1) throw new UsageError(USAGE);
      const mp = p.positional[0];
      if (mp) {
        const ok = spawnSync('fusermount3', ['-u', mp], { stdio: 'inherit' }).status === 0;
        if (!ok && spawnSync('fusermount3', ['-u', '-z', mp], { stdio: 'inherit' }).status !== 0) return 1;
        return 0;
      }
      const client = await ControlClient.connect(p.state);
      if (!client) {
        process.stderr.write(`livemr umount: no daemon listens in ${p.state}\n`);
        return 1;
      }
      await client.request({ op: 'shutdown' });
      client.close();
      // the daemon removes its lock once it has unmounted
      const lock = path.join(p.state, 'lock');
      for (let i = 0; i < 100 && fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 100));
      return fs.existsSync(lock) ? 1 : 0;
    }
    case 'compose': {
      const p = parse(rest, ['--direct-io'], ['--segment', '--zero']);
      if (p.positional.length !== 1 || p.segments.length === 0)
        throw new UsageError(`compose needs NAME and at least one --segment or --zero\n${USAGE}`);
      const name = p.positional[0]!;
      const directIo = p.flags.has('--direct-io') ? true : undefined;
      for (const s of p.segments)
        if ('file' in s && !fs.existsSync(s.file)) process.stderr.write(`livemr compose: warning: ${s.file} does not exist (reads give EIO)\n`);
      const info = await withStore(
        p.state,
        (c) => c.compose(name, p.segments, directIo),
        (s) => s.compose(name, p.segments, directIo === undefined ? {} : { directIo }),
      );
      process.stdout.write(`${info.fileName} ${info.size} bytes, ${info.segments} segments\n`);
      return 0;
    }
    case 'decompose': {
      const p = parse(rest, [], []);
      if (p.positional.length !== 1) throw new UsageError(`decompose needs NAME\n${USAGE}`);
      const name = p.positional[0]!;
      const removed = await withStore(p.state, (c) => c.decompose(name), (s) => s.remove(name));
      if (!removed) {
        process.stderr.write(`livemr decompose: no composed file '${name}'\n`);
        return 1;
      }
      return 0;
    }
    case 'ls': {
      const p = parse(rest, ['--json'], []);
      if (p.positional.length) throw new UsageError(USAGE);
      const list = fs.existsSync(p.state) ? await withStore(p.state, (c) => c.list(), (s) => s.list()) : [];
      process.stdout.write(p.flags.has('--json') ? JSON.stringify(list, null, 2) + '\n' : formatList(list));
      return 0;
    }
    default:
      throw new UsageError(USAGE);
  }
}
