// `livemr host --config FILE`: runs the host agent until SIGTERM/SIGINT (see docs/host.md).
import { createLogger, HostAgent, loadConfig } from '../host/index.js';
import { command, UsageError } from './args.js';

export const commands = [command({
  name: 'host',
  summary: 'run the host agent until SIGTERM/SIGINT: VMs (by QMP socket) → shared files on the FUSE mount',
  options: { config: { type: 'string', arg: 'FILE', help: 'the agent configuration (JSON, docs/host.md), e.g. /etc/livemr/agent.json' } },
  async run({ values }) {
    if (!values.config) throw new UsageError('--config FILE is required');
    const cfg = loadConfig(values.config);
    const log = createLogger({ component: 'host' });
    const agent = await HostAgent.start(cfg, log);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info('signal', { signal: sig });
        void agent.stop().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
})];
