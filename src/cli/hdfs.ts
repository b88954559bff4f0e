// `livemr hdfs`: the WebHDFS gateway for Hadoop (docs/hdfs.md).

import * as path from 'node:path';
import { ControlClient } from '../fs/control.js';
import { CompositionStore } from '../fs/store.js';
import { composeFromLocal, publishedFileResolver, readComposeConfig, type ComposeSink } from '../hdfs/compose-from-local.js';
import { runAgentGateway, runAggregator, type CommonOptions, type Running } from '../hdfs/daemon.js';
import { DEFAULT_BLOCK_SIZE } from '../hdfs/server.js';
import { UsageError } from './main.js';

const USAGE = `usage:
  livemr hdfs serve [--state DIR] [--listen HOST:PORT] [--data-host NAME] [--advertise URL]
                    [--aggregator URL [--agent-id ID] [--token T]] [COMMON]
      serve the composed files of a state directory read-only over WebHDFS (a host agent)
  livemr hdfs aggregate [--listen HOST:PORT] [--token T] [COMMON]
      serve the union of the host agents that report here; OPEN redirects to the agent
  livemr hdfs compose-from-local CONFIG [--name NAME] [--state DIR]
      make livemr_NAME from {vm: guest_path} pairs the host agent shares
COMMON: [--block-size BYTES|128m] [--users alice,bob|'*'] [--default-user U] [--owner O] [--group G]
DIR defaults to $LIVEMR_STATE or /var/lib/livemr; --listen defaults to 0.0.0.0:9870.`;

function parseSize(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`bad size '${v}'`);
  return n;
}

function parseArgs(argv: string[], valued: string[]): { positional: string[]; values: Map<string, string> } {
  const positional: string[] = [];
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') throw new UsageError(USAGE);
    if (a.startsWith('--')) {
      const [k, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
      if (!valued.includes(k)) throw new UsageError(`unknown option --${k}\n${USAGE}`);
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${k} needs a value`);
      values.set(k, v);
    } else positional.push(a);
  }
  return { positional, values };
}

const COMMON = ['listen', 'block-size', 'users', 'default-user', 'owner', 'group', 'token'];

function common(values: Map<string, string>, log: (l: string) => void): CommonOptions {
  const listen = values.get('listen') ?? '0.0.0.0:9870';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`bad --listen '${listen}' (HOST:PORT)`);
  const users = values.get('users');
  const o: CommonOptions = {
    listenHost: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0',
    port: Number(m[2]),
    blockSize: values.has('block-size') ? parseSize(values.get('block-size')!) : DEFAULT_BLOCK_SIZE,
    users: users === undefined || users === '*' ? '*' : users.split(',').filter(Boolean),
    log,
  };
  for (const [k, key] of [['default-user', 'defaultUser'], ['owner', 'owner'], ['group', 'group']] as const) {
    const v = values.get(k);
    if (v !== undefined) o[key] = v;
  }
  return o;
}

async function untilSignal(r: Running): Promise<number> {
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await r.stop();
  return 0;
}

const defaultState = () => process.env.LIVEMR_STATE ?? '/var/lib/livemr';

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const log = (l: string) => process.stderr.write(`livemr hdfs: ${l}\n`);
  switch (sub) {
    case 'serve': {
      const { positional, values } = parseArgs(rest, [...COMMON, 'state', 'data-host', 'advertise', 'aggregator', 'agent-id']);
      if (positional.length) throw new UsageError(`unexpected '${positional[0]}'\n${USAGE}`);
      const o = {
        ...common(values, log),
        stateDir: path.resolve(values.get('state') ?? defaultState()),
      };
      for (const [k, key] of [['data-host', 'dataHost'], ['advertise', 'advertise'], ['aggregator', 'aggregator'], ['agent-id', 'agentId'], ['token', 'token']] as const) {
        const v = values.get(k);
        if (v !== undefined) (o as Record<string, unknown>)[key] = v;
      }
      return untilSignal(await runAgentGateway(o));
    }
    case 'aggregate': {
      const { positional, values } = parseArgs(rest, COMMON);
      if (positional.length) throw new UsageError(`unexpected '${positional[0]}'\n${USAGE}`);
      const token = values.get('token');
      return untilSignal(await runAggregator({ ...common(values, log), ...(token === undefined ? {} : { token }) }));
    }
    case 'compose-from-local': {
      const { positional, values } = parseArgs(rest, ['name', 'state']);
      if (positional.length !== 1) throw new UsageError(USAGE);
      const cfg = readComposeConfig(positional[0]!, values.get('name'));
      const state = values.get('state') ?? defaultState();
      const client = await ControlClient.connect(state);
      const store = client ? undefined : CompositionStore.open(state);
      try {
        const sink: ComposeSink = client ?? store!;
        const resolver = publishedFileResolver((n) => (client ? client.segments(n) : store!.segments(n)));
        const r = await composeFromLocal(cfg, resolver, sink);
        process.stdout.write(`livemr_${r.name}: ${r.size} bytes from ${r.files} guest files\n`);
        return 0;
      } finally {
        client?.close();
        store?.close();
      }
    }
    default:
      throw new UsageError(USAGE);
  }
}
