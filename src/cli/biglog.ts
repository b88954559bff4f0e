// `livemr biglog NAME VM:PATH...`: defines a BigLog (or adds sources to one) on a running agent;
// `livemr biglog --list`. A BigLog follows its sources' growth, in arrival order (docs/host.md).
import { agentRequest, agentStateDir } from '../host/index.js';
import { AGENT } from './agent-options.js';
import { command, UsageError } from './args.js';

export const commands = [command({
  name: 'biglog',
  summary: 'define a BigLog livemr_NAME joining shared files of several VMs (or add sources to it); --list lists them',
  args: '[NAME VM:/GUEST/PATH...]',
  positionals: [0, Infinity],
  options: {
    ...AGENT,
    list: { type: 'boolean', help: 'list the BigLogs instead' },
    json: { type: 'boolean', help: 'with --list: as JSON' },
  },
  async run({ values, positionals }) {
    const stateDir = await agentStateDir(values);
    if (values.list) {
      if (positionals.length) throw new UsageError('--list takes no NAME or sources');
      const list = await agentRequest<{ name: string; sources: { vm: string; path: string }[]; size: number }[]>(stateDir, 'GET', '/biglogs');
      if (values.json) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      else for (const b of list) process.stdout.write(`livemr_${b.name}  ${b.size} bytes  ${b.sources.map((s) => `${s.vm}:${s.path}`).join(' ')}\n`);
      return 0;
    }
    const [name, ...specs] = positionals;
    if (!name || specs.length === 0) throw new UsageError('give NAME and at least one VM:/GUEST/PATH (or --list)');
    const sources = specs.map((s) => {
      const m = /^([^:]+):(\/.*)$/.exec(s);
      if (!m) throw new UsageError(`'${s}' is not VM:/GUEST/PATH`);
      return { vm: m[1]!, path: m[2]! };
    });
    const b = await agentRequest<{ name: string; size: number }>(stateDir, 'POST', '/biglogs', { name, sources });
    process.stdout.write(`livemr_${b.name}: ${b.size} bytes from ${sources.length} source(s)\n`);
    return 0;
  },
})];
