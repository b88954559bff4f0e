// `livemr host --config FILE`: runs the host agent until SIGTERM/SIGINT (see docs/host.md).
import { HostAgent } from '../host/agent.js';
import { loadConfig } from '../host/config.js';
import { createLogger } from '../host/log.js';
import { UsageError } from './main.js';

export async function run(argv: string[]): Promise<number> {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : undefined;
  if (!file) throw new UsageError('usage: livemr host --config FILE');
  const cfg = loadConfig(file);
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
}
