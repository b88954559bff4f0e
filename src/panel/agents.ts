// The panel's view of one host agent: an AgentClient on the agent's API socket, the last snapshots
// it sent (status, compositions, BigLogs: the event stream keeps them current, so views are built
// without a round trip), and where jobs read its files — the panel's own WebHDFS gateway over the
// agent's mount for the agent on this host (the panel's user reads it through the mount's group),
// else the `webhdfs` endpoint the config names (that host's livemr-gateway).
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { CompositionInfo } from '../fs/index.js';
import { LocalNamespace, MountSource, startGateway, type Gateway } from '../hdfs/index.js';
import { AgentClient, type AgentStatus, type BigLogInfo, type CompositionsEvent, type Logger } from '../host/index.js';
import type { AgentEndpoint } from './config.js';

export interface AgentLinkOptions {
  /** where the panel's own gateway listens (agents without `webhdfs`) */
  webhdfsListen: { host: string; port: number };
  /** who the panel's gateway serves (peer credentials on loopback: the job user, the panel, root) */
  admit?: (sock: Socket) => string | undefined;
  log: Logger;
}

export class AgentLink extends EventEmitter<{ change: [] }> {
  readonly client: AgentClient;
  status?: AgentStatus;
  compositions: CompositionInfo[] = [];
  bigLogs: BigLogInfo[] = [];
  connected = false;
  error?: string;
  gateway?: Gateway;
  private source?: MountSource;
  private stream?: { close(): void };
  private gatewayStarting?: Promise<void>;
  private stopped = false;
  private gatewayRetryAt = 0;

  constructor(readonly endpoint: AgentEndpoint, private readonly o: AgentLinkOptions) {
    super();
    this.client = new AgentClient(endpoint.socket);
  }

  /** webhdfs://host:port of the gateway that serves this agent's files ('' until it is known). */
  get webhdfsBase(): string {
    if (this.endpoint.webhdfs) return `webhdfs://${this.endpoint.webhdfs}`;
    return this.gateway ? `webhdfs://${this.o.webhdfsListen.host}:${this.gateway.port}` : '';
  }

  /** First snapshots (an unreachable agent is reported, and retried by the event stream), then follows. */
  async start(): Promise<void> {
    try {
      await this.refresh();
    } catch (e) {
      this.error = (e as Error).message;
      this.o.log.warn('agent unreachable', { socket: this.endpoint.socket, error: e as Error });
    }
    this.stream = this.client.follow({
      event: (name, data) => {
        if (name === 'status') this.setStatus(data as AgentStatus);
        else if (name === 'compositions') {
          const c = data as CompositionsEvent;
          this.compositions = c.compositions;
          this.bigLogs = c.bigLogs;
        } else return;
        this.emit('change');
      },
      state: (up, err) => {
        if (up) delete this.error;
        else this.error = err?.message ?? 'disconnected';
        if (this.connected === up) return; // retries while down are not news
        this.connected = up;
        if (up) this.o.log.info('agent connected', { socket: this.endpoint.socket });
        else this.o.log.warn('agent lost', { socket: this.endpoint.socket, ...(err ? { error: err } : {}) });
        this.emit('change');
      },
    });
    await this.gatewayStarting;
  }

  /** Fresh snapshots now (before a decision that must not act on a stale view). */
  async refresh(): Promise<void> {
    const [st, comps, bigLogs] = await Promise.all([this.client.status(), this.client.compositions(), this.client.bigLogs()]);
    this.setStatus(st);
    this.compositions = comps;
    this.bigLogs = bigLogs;
    delete this.error;
  }

  private setStatus(st: AgentStatus): void {
    this.status = st;
    if (!this.endpoint.webhdfs && !this.gatewayStarting && !this.stopped && Date.now() >= this.gatewayRetryAt) this.gatewayStarting = this.startGateway(st);
  }

  private async startGateway(st: AgentStatus): Promise<void> {
    try {
      const source = MountSource.open(st.mountpoint, { log: (l) => this.o.log.debug(l) });
      const ns = new LocalNamespace(source, { host: st.host, addr: '', url: '' });
      let gateway: Gateway;
      try {
        gateway = await startGateway({ namespace: ns, host: this.o.webhdfsListen.host, port: this.o.webhdfsListen.port, ...(this.o.admit ? { admit: this.o.admit } : {}) });
      } catch (e) {
        source.close();
        throw e;
      }
      ns.location = { host: st.host, addr: `${this.o.webhdfsListen.host}:${gateway.port}`, url: gateway.url };
      if (this.stopped) { await gateway.close(); source.close(); return; }
      this.source = source;
      this.gateway = gateway;
      source.subscribe(() => this.emit('change'));
      this.o.log.info('serving the agent\'s mount over WebHDFS', { mountpoint: st.mountpoint, url: gateway.url });
    } catch (e) {
      this.o.log.error('cannot serve the agent\'s mount over WebHDFS (is the panel\'s user in the mount\'s group?)', { mountpoint: st.mountpoint, error: e as Error });
      this.gatewayStarting = undefined; // tried again with a status at least 10 s later
      this.gatewayRetryAt = Date.now() + 10_000;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.close();
    await this.gatewayStarting;
    await this.gateway?.close();
    this.source?.close();
  }
}
