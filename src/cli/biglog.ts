// `livemr biglog NAME VM:PATH...`: defines a BigLog (or adds sources to one) on a running agent;
// `livemr biglog --list`. A BigLog follows its sources' growth, in arrival order (docs/host.md).
import { agentRequest, stateDirFromArgs } from '../host/agent-client.js';
import { UsageError } from './main.js';

const USAGE = 'usage: livemr biglog NAME VM:/GUEST/PATH... [--state DIR | --config FILE]\n       livemr biglog --list [--json] [--state DIR | --config FILE]';

export async function run(argv: string[]): Promise<number> {
  const stateDir = await stateDirFromArgs(argv);
  const positional = argv.filter((a, i) => !a.startsWith('--') && !['--state', '--config'].includes(argv[i - 1] ?? ''));
  if (argv.includes('--list')) {
    const list = await agentRequest<{ name: string; sources: { vm: string; path: string }[]; size: number }[]>(stateDir, 'GET', '/biglogs');
    if (argv.includes('--json')) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    else for (const b of list) process.stdout.write(`livemr_${b.name}  ${b.size} bytes  ${b.sources.map((s) => `${s.vm}:${s.path}`).join(' ')}\n`);
    return 0;
  }
  const [name, ...specs] = positional;
  if (!name || specs.length === 0) throw new UsageError(USAGE);
  const sources = specs.map((s) => {
    const m = /^([^:]+):(\/.*)$/.exec(s);
    if (!m) throw new UsageError(`'${s}' is not VM:/GUEST/PATH\n${USAGE}`);
    return { vm: m[1]!, path: m[2]! };
  });
  const b = await agentRequest<{ name: string; size: number }>(stateDir, 'POST', '/biglogs', { name, sources });
  process.stdout.write(`livemr_${b.name}: ${b.size} bytes from ${sources.length} source(s)\n`);
  return 0;
}
