// `livemr mount | umount | compose | decompose | ls`: the composed-files commands (docs/fs.md).
// compose / decompose / ls talk to the running `livemr mount` daemon over its control socket, or,
// when none runs, open the state directory themselves (the daemon replays it when it starts).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CompositionStore, ControlClient, runDaemon, type CompositionInfo, type SegmentSpec } from '../fs/index.js';
import { command, type Token, UsageError } from './args.js';

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

const STATE = {
  state: { type: 'string', arg: 'DIR', help: 'state directory (default $LIVEMR_STATE or /var/lib/livemr)' },
} as const;
const stateOf = (v: { state?: string | undefined }) => v.state ?? defaultState();

/** --segment and --zero in the order given: they are the file's pieces, front to back. */
function segmentsOf(tokens: Token[]): SegmentSpec[] {
  const out: SegmentSpec[] = [];
  for (const t of tokens) {
    if (t.kind !== 'option' || t.value === undefined) continue;
    if (t.name === 'segment') out.push(parseSegment(t.value));
    else if (t.name === 'zero') {
      const length = parseSize(t.value, '--zero LENGTH');
      if (length === 0) throw new UsageError('--zero needs a positive length');
      out.push({ zero: true, length });
    }
  }
  return out;
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

const mount = command({
  name: 'mount',
  summary: 'mount the composed files read-only on MOUNTPOINT (FUSE) and serve them until SIGTERM or `livemr umount`',
  args: 'MOUNTPOINT',
  positionals: 1,
  options: {
    ...STATE,
    group: { type: 'string', arg: 'GROUP', help: 'let members of GROUP read the files too (docs/fs.md); default: root only' },
    splice: { type: 'boolean', help: 'splice reads from the backing files (docs/fs.md)' },
    debug: { type: 'boolean', help: 'libfuse debug output' },
  },
  run: ({ values, positionals }) => runDaemon({
    mountpoint: positionals[0]!,
    stateDir: path.resolve(stateOf(values)),
    ...(values.group === undefined ? {} : { group: values.group }),
    splice: values.splice ?? false,
    debug: values.debug ?? false,
  }),
});

const umount = command({
  name: 'umount',
  summary: 'unmount: stop the daemon of the state directory, or unmount MOUNTPOINT with fusermount3',
  args: '[MOUNTPOINT]',
  positionals: [0, 1],
  options: STATE,
  async run({ values, positionals }) {
    const mp = positionals[0];
    if (mp) {
      const ok = spawnSync('fusermount3', ['-u', mp], { stdio: 'inherit' }).status === 0;
      if (!ok && spawnSync('fusermount3', ['-u', '-z', mp], { stdio: 'inherit' }).status !== 0) return 1;
      return 0;
    }
    const state = stateOf(values);
    const client = await ControlClient.connect(state);
    if (!client) {
      process.stderr.write(`livemr umount: no daemon listens in ${state}\n`);
      return 1;
    }
    await client.request({ op: 'shutdown' });
    client.close();
    // the daemon removes its lock once it has unmounted
    const lock = path.join(state, 'lock');
    for (let i = 0; i < 100 && fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 100));
    return fs.existsSync(lock) ? 1 : 0;
  },
});

const compose = command({
  name: 'compose',
  summary: 'create livemr_NAME, or extend it, from byte ranges of host files and zero runs, in the order given',
  args: 'NAME',
  positionals: 1,
  options: {
    ...STATE,
    segment: { type: 'string', multiple: true, arg: 'FILE:OFFSET:LENGTH', help: 'LENGTH bytes of FILE at OFFSET (decimal or 0x hex)' },
    zero: { type: 'string', multiple: true, arg: 'LENGTH', help: 'LENGTH zero bytes' },
    'direct-io': { type: 'boolean', help: 'serve the file with direct_io (no page cache on the mount)' },
  },
  notes: 'Talks to the running `livemr mount` daemon, or, when none runs, writes the state directory (replayed when it starts).',
  async run({ values, positionals, tokens }) {
    const segments = segmentsOf(tokens);
    if (segments.length === 0) throw new UsageError('give at least one --segment or --zero');
    const name = positionals[0]!;
    const directIo = values['direct-io'] ? true : undefined;
    for (const s of segments)
      if ('file' in s && !fs.existsSync(s.file)) process.stderr.write(`livemr compose: warning: ${s.file} does not exist (reads give EIO)\n`);
    const info = await withStore(
      stateOf(values),
      (c) => c.compose(name, segments, directIo),
      (s) => s.compose(name, segments, directIo === undefined ? {} : { directIo }),
    );
    process.stdout.write(`${info.fileName} ${info.size} bytes, ${info.segments} segments\n`);
    return 0;
  },
});

const decompose = command({
  name: 'decompose',
  summary: 'remove the composed file livemr_NAME',
  args: 'NAME',
  positionals: 1,
  options: STATE,
  async run({ values, positionals }) {
    const name = positionals[0]!;
    const removed = await withStore(stateOf(values), (c) => c.decompose(name), (s) => s.remove(name));
    if (!removed) {
      process.stderr.write(`livemr decompose: no composed file '${name}'\n`);
      return 1;
    }
    return 0;
  },
});

const ls = command({
  name: 'ls',
  summary: 'list the composed files',
  options: { ...STATE, json: { type: 'boolean', help: 'as JSON' } },
  async run({ values }) {
    const state = stateOf(values);
    const list = fs.existsSync(state) ? await withStore(state, (c) => c.list(), (s) => s.list()) : [];
    process.stdout.write(values.json ? JSON.stringify(list, null, 2) + '\n' : formatList(list));
    return 0;
  },
});

export const commands = [mount, umount, compose, decompose, ls];
