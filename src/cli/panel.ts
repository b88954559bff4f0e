// `livemr panel --config FILE`: the control panel (REST API + web UI) with an embedded host agent,
// until SIGTERM/SIGINT (see docs/panel.md).
import { createLogger } from '../host/log.js';
import { loadPanelConfig } from '../panel/config.js';
import { Panel } from '../panel/server.js';
import { UsageError } from './main.js';

export async function run(argv: string[]): Promise<number> {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : undefined;
  if (!file || argv.length !== 2) throw new UsageError('usage: livemr panel --config FILE');
  const cfg = loadPanelConfig(file);
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
}
