// `livemr status [--state DIR | --config FILE] [--json]`: asks a running agent over its root-only
// unix socket (DIR/agent.sock) and prints VMs, channels, shared files, pending ranges, freshness lag.
import { agentRequest, agentStateDir, type AgentStatus } from '../host/index.js';
import { AGENT } from './agent-options.js';
import { command } from './args.js';

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

export const commands = [command({
  name: 'status',
  summary: 'VMs, channels, shared files, pending ranges and freshness lag of a running host agent',
  options: { ...AGENT, json: { type: 'boolean', help: 'the status as JSON' } },
  async run({ values }) {
    const s = await agentRequest<AgentStatus>(await agentStateDir(values), 'GET', '/status');
    if (values.json) {
      process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      return 0;
    }
    const out: string[] = [`host ${s.host}  mount ${s.mountpoint}  ${s.compositions} composed files  up ${Math.round(s.uptimeMs / 1000)} s`];
    for (const vm of s.vms) {
      out.push(`vm ${vm.name}: ${vm.control?.kind ?? 'qmp'} ${vm.qmp}${vm.runState ? ` (${vm.runState})` : ''}, channel ${vm.channel}` +
        `${vm.guest ? `, guest ${vm.guest.guestId}` : ''}, ${vm.files.length} shared files, ${vm.pendingRanges} pending ranges, freshness lag ${vm.freshnessLagMs} ms`);
      if (vm.lastError) out.push(`  last error: ${vm.lastError}`);
      for (const f of vm.files) {
        out.push(`  livemr_${f.name}  ${f.path} (${f.disk})  served ${mib(f.servedSize)} of ${mib(f.guestSize)}` +
          `${f.pendingRanges ? `, ${f.pendingRanges} pending` : ''}${f.refused ? `, REFUSED: ${f.refused}` : ''}`);
      }
    }
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
})];
