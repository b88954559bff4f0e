// `livemr panel --config FILE`: the control panel (REST API + web UI) over the API sockets of one or
// several host agents, until SIGTERM/SIGINT (see docs/panel.md).
import { createLogger } from '../host/index.js';
import { loadPanelConfig, Panel } from '../panel/index.js';
import { command, UsageError } from './args.js';

export const commands = [command({
  name: 'panel',
  summary: 'run the control panel (REST API and web UI over the host agents\' API sockets) until SIGTERM/SIGINT',
  options: { config: { type: 'string', arg: 'FILE', help: 'the panel configuration (JSON, docs/panel.md), e.g. /etc/livemr/panel.json' } },
  async run({ values }) {
    if (!values.config) throw new UsageError('--config FILE is required');
    const cfg = loadPanelConfig(values.config);
    const log = createLogger({ component: 'panel' });
    const panel = await Panel.start(cfg, log);
    process.stdout.write(`LiveMR panel: ${panel.url}/\ntoken: ${panel.token}${cfg.token ? '' : ` (also in ${cfg.stateDir}/panel.token)`}\nWebHDFS for jobs: ${panel.webhdfsBase}\n`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info('signal', { signal: sig });
        void panel.stop().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
})];
