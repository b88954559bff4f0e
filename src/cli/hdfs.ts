// `livemr hdfs`: the WebHDFS gateway for Hadoop (docs/hdfs.md).

import * as path from 'node:path';
import { CompositionStore, ControlClient } from '../fs/index.js';
import {
  composeFromLocal, DEFAULT_BLOCK_SIZE, GATEWAY_DEFAULTS, publishedFileResolver, readComposeConfig, runAgentGateway, runAggregator,
  type CommonOptions, type ComposeSink, type Running,
} from '../hdfs/index.js';
import { command, UsageError, type Values } from './args.js';
import { exportCmd } from './hdfs-export.js';

function parseSize(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`bad size '${v}'`);
  return n;
}

const COMMON = {
  listen: { type: 'string', arg: 'HOST:PORT', help: 'address to listen on (default 0.0.0.0:9870)' },
  'block-size': { type: 'string', arg: 'BYTES|128m', help: 'HDFS block size reported to clients' },
  users: { type: 'string', arg: "alice,bob|'*'", help: "users allowed by user.name (default '*')" },
  'default-user': { type: 'string', arg: 'U', help: 'user of requests without user.name' },
  owner: { type: 'string', arg: 'O', help: 'owner shown on the files' },
  group: { type: 'string', arg: 'G', help: 'group shown on the files' },
  token: { type: 'string', arg: 'T', help: 'shared token between host agents and the aggregator' },
  'max-connections': { type: 'string', arg: 'N', help: `open connections at most; more are closed as they come (default ${GATEWAY_DEFAULTS.maxConnections})` },
  'idle-timeout-ms': { type: 'string', arg: 'MS', help: `close a connection idle or sending its headers this long (default ${GATEWAY_DEFAULTS.idleTimeoutMs})` },
  'write-timeout-ms': { type: 'string', arg: 'MS', help: `cut a response whose client takes no byte this long (default ${GATEWAY_DEFAULTS.writeTimeoutMs})` },
} as const;

function positive(v: string, name: string): number {
  const n = /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!(n > 0)) throw new UsageError(`bad --${name} '${v}' (a positive integer)`);
  return n;
}

function common(values: Values<typeof COMMON>, log: (l: string) => void): CommonOptions {
  const listen = values.listen ?? '0.0.0.0:9870';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`bad --listen '${listen}' (HOST:PORT)`);
  const users = values.users;
  const o: CommonOptions = {
    listenHost: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0',
    port: Number(m[2]),
    blockSize: values['block-size'] !== undefined ? parseSize(values['block-size']) : DEFAULT_BLOCK_SIZE,
    users: users === undefined || users === '*' ? '*' : users.split(',').filter(Boolean),
    log,
  };
  for (const [k, key] of [['default-user', 'defaultUser'], ['owner', 'owner'], ['group', 'group']] as const) {
    const v = values[k];
    if (v !== undefined) o[key] = v;
  }
  for (const [k, key] of [['max-connections', 'maxConnections'], ['idle-timeout-ms', 'idleTimeoutMs'], ['write-timeout-ms', 'writeTimeoutMs']] as const) {
    const v = values[k];
    if (v !== undefined) o[key] = positive(v, k);
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
const log = (l: string) => process.stderr.write(`livemr hdfs: ${l}\n`);
const STATE = { state: { type: 'string', arg: 'DIR', help: 'state directory of the composed files (default $LIVEMR_STATE or /var/lib/livemr)' } } as const;

const serve = command({
  name: 'hdfs serve',
  summary: 'serve the composed files of a state directory, or of the FUSE mount, read-only over WebHDFS (the gateway of one host)',
  configFile: true,
  options: {
    ...STATE,
    mount: { type: 'string', arg: 'DIR', help: 'read the files through the FUSE mount at DIR instead (an unprivileged gateway: group read on the mount is enough)' },
    ...COMMON,
    'data-host': { type: 'string', arg: 'NAME', help: 'host name put in OPEN redirects (DataNode address)' },
    advertise: { type: 'string', arg: 'URL', help: 'URL the aggregator should use for this gateway' },
    aggregator: { type: 'string', arg: 'URL', help: 'report the files to this aggregator' },
    'agent-id': { type: 'string', arg: 'ID', help: 'with --aggregator: the id of this host' },
  },
  async run({ values }) {
    if (values.mount !== undefined && values.state !== undefined) throw new UsageError('give --state or --mount, not both');
    const o = { ...common(values, log), ...(values.mount !== undefined ? { mount: path.resolve(values.mount) } : { stateDir: path.resolve(values.state ?? defaultState()) }) };
    for (const [k, key] of [['data-host', 'dataHost'], ['advertise', 'advertise'], ['aggregator', 'aggregator'], ['agent-id', 'agentId'], ['token', 'token']] as const) {
      const v = values[k];
      if (v !== undefined) (o as Record<string, unknown>)[key] = v;
    }
    return untilSignal(await runAgentGateway(o));
  },
});

const aggregate = command({
  name: 'hdfs aggregate',
  summary: 'serve the union of the host gateways that report here; OPEN redirects to the host',
  configFile: true,
  options: COMMON,
  async run({ values }) {
    const token = values.token;
    return untilSignal(await runAggregator({ ...common(values, log), ...(token === undefined ? {} : { token }) }));
  },
});

const composeFromLocalCmd = command({
  name: 'hdfs compose-from-local',
  summary: 'make livemr_NAME from the {vm: guest_path} pairs of CONFIG that the host agent shares',
  args: 'CONFIG',
  positionals: 1,
  options: { ...STATE, name: { type: 'string', arg: 'NAME', help: "the composed file's name (default: from CONFIG)" } },
  async run({ values, positionals }) {
    const cfg = readComposeConfig(positionals[0]!, values.name);
    const state = values.state ?? defaultState();
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
  },
});

export const commands = [serve, aggregate, composeFromLocalCmd, exportCmd];
