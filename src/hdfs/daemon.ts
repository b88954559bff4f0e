// Long-running gateway processes: a host agent's WebHDFS endpoint over a composition state
// directory (followed with inotify, so it runs beside the mount daemon or the host agent without
// touching their lock) or over the FUSE mount (an unprivileged gateway, mount-source.ts),
// optionally reporting to an aggregator; and the aggregator itself.

import * as os from 'node:os';
import { JournalFollower } from '../fs/index.js';
import { AgentReporter } from './agent.js';
import { Aggregator } from './aggregator.js';
import { MountSource } from './mount-source.js';
import { LocalNamespace } from './namespace.js';
import { startGateway, type Gateway, type GatewayLimits, type GatewayOptions } from './server.js';

export type CommonOptions = Omit<GatewayOptions, 'namespace' | 'extraRoute'> & GatewayLimits & { listenHost: string; port: number };

export type AgentOptions = CommonOptions & AgentGatewayOptions & ({ stateDir: string; mount?: undefined } | { mount: string; stateDir?: undefined });

interface AgentGatewayOptions {
  /** host name reported in block locations (default: this machine's) */
  dataHost?: string;
  /** URL clients use to reach this endpoint (default http://DATAHOST:PORT) */
  advertise?: string;
  aggregator?: string;
  agentId?: string;
  token?: string;
}

export interface Running {
  gateway: Gateway;
  stop(): Promise<void>;
}

export async function runAgentGateway(o: AgentOptions): Promise<Running> {
  const log = o.log ?? (() => {});
  const source = o.mount !== undefined ? MountSource.open(o.mount, { log }) : JournalFollower.open(o.stateDir, log);
  const dataHost = o.dataHost ?? os.hostname();
  const ns = new LocalNamespace(source, { host: dataHost, addr: '', url: '' });
  let gateway: Gateway;
  try {
    gateway = await startGateway({ ...o, namespace: ns, host: o.listenHost, port: o.port });
  } catch (e) {
    source.close();
    throw e;
  }
  const url = o.advertise ?? `http://${dataHost}:${gateway.port}`;
  ns.location = { host: dataHost, addr: new URL(url).host, url };
  let reporter: AgentReporter | undefined;
  if (o.aggregator) {
    reporter = new AgentReporter(source, ns, {
      aggregator: o.aggregator,
      agent: o.agentId ?? dataHost,
      url,
      host: dataHost,
      log,
      ...(o.token === undefined ? {} : { token: o.token }),
    });
    await reporter.start();
  }
  log(`serving ${source.names().length} composed files of ${o.mount ?? o.stateDir} at ${gateway.url}/webhdfs/v1 (advertised as ${url})`);
  return {
    gateway,
    async stop() {
      await reporter?.stop();
      await gateway.close();
      source.close();
    },
  };
}

export async function runAggregator(o: CommonOptions & { token?: string }): Promise<Running & { aggregator: Aggregator }> {
  const log = o.log ?? (() => {});
  const aggregator = new Aggregator({ ...(o.token === undefined ? {} : { token: o.token }), log });
  const gateway = await startGateway({ ...o, namespace: aggregator, extraRoute: aggregator.route, host: o.listenHost, port: o.port });
  log(`aggregating host agents at ${gateway.url} (reports: POST /livemr/v1/report)`);
  return { gateway, aggregator, stop: () => gateway.close() };
}
